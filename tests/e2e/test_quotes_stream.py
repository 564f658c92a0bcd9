"""Quotes over a real WebSocket: snapshot, gap-free deltas, absolute values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.builders import make_batch, make_settings
from tests.harness import (
    ScriptedSource,
    assert_gap_free,
    client,
    poll_until,
    running_gateway,
    updates_for,
)

pytestmark = pytest.mark.e2e


async def test_subscribe_gets_ack_then_snapshots_then_gap_free_updates(tmp_path):
    settings = make_settings(tmp_path, simulator={"tick_rate_per_s": 20_000.0})
    symbols = ["AAPL", "MSFT", "EURUSD", "ESZ6"]
    async with running_gateway(settings) as gw, client(gw.ws_url) as c:
        await c.send({"op": "subscribe", "channel": "quotes", "symbols": symbols, "id": 1})
        first = await c.frame()
        ack, snapshots = first[0], first[1 : 1 + len(symbols)]

        await c.until(lambda m: m["type"] == "update" and m["seq"] >= 0, timeout_s=10)
        while min(len(updates_for(c.received, s)) for s in symbols) < 20:
            await c.frame()

    assert ack["type"] == "subscribed"
    assert ack["id"] == 1
    assert ack["keys"] == symbols
    assert ack["epoch"] == gw.gateway.epoch
    assert [s["key"] for s in snapshots] == symbols
    assert all(s["type"] == "snapshot" and s["epoch"] == ack["epoch"] for s in snapshots)
    for symbol in symbols:
        assert_gap_free(updates_for(c.received, symbol))


async def test_updates_carry_absolute_values_and_timestamps(tmp_path):
    source = ScriptedSource()
    settings = make_settings(tmp_path)
    async with running_gateway(settings, source=source) as gw, client(gw.ws_url) as c:
        ix = gw.gateway.master.symbol_index["AAPL"]
        await c.request({"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 1})
        snapshot = await c.until(lambda m: m["type"] == "snapshot")
        source.push(make_batch([ix], bid=[100.0], ask=[100.5], ts_event=5_000))
        quote = await c.until(lambda m: m["type"] == "update")
        source.push(make_batch([ix], last=[100.25], size=[300.0], ts_event=6_000))
        trade = await c.until(lambda m: m["type"] == "update")

    assert snapshot["bid"] is None  # the scripted source had sent nothing yet
    assert snapshot["stale"] is True
    assert (quote["bid"], quote["ask"], quote["last"], quote["ts_event"]) == (
        100.0,
        100.5,
        None,
        5_000,
    )
    assert quote["stale"] is False
    # The trade tick leaves the quote as it was: every update is the full state.
    assert (trade["bid"], trade["ask"], trade["last"], trade["size"]) == (
        100.0,
        100.5,
        100.25,
        300.0,
    )
    assert trade["seq"] == quote["seq"] + 1 == snapshot["seq"] + 2
    assert trade["ts_sent"] >= trade["ts_recv"]


async def test_unsubscribe_acks_and_stops_updates_for_that_symbol_only(tmp_path):
    source = ScriptedSource()
    async with (
        running_gateway(make_settings(tmp_path), source=source) as gw,
        client(gw.ws_url) as c,
    ):
        index = gw.gateway.master.symbol_index
        a, b = index["AAPL"], index["MSFT"]
        await c.request(
            {"op": "subscribe", "channel": "quotes", "symbols": ["AAPL", "MSFT"], "id": 1}
        )
        ack = await c.request(
            {"op": "unsubscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 2}
        )
        before = len(c.received)
        for price in (10.0, 11.0, 12.0):
            source.push(make_batch([a, b], bid=[price, price], ask=[price + 1, price + 1]))
        await c.until(lambda m: m.get("key") == "MSFT" and m.get("bid") == 12.0)

    assert ack == {**ack, "type": "unsubscribed", "keys": ["AAPL"], "channel": "quotes"}
    after = c.received[before:]
    assert [m["bid"] for m in updates_for(after, "MSFT")] == [10.0, 11.0, 12.0]
    assert updates_for(after, "AAPL") == []


async def test_each_batch_reaches_a_keeping_up_client_as_one_frame(tmp_path):
    source = ScriptedSource()
    async with (
        running_gateway(make_settings(tmp_path), source=source) as gw,
        client(gw.ws_url) as c,
    ):
        index = gw.gateway.master.symbol_index
        symbols = ["AAPL", "MSFT", "NVDA"]
        await c.request({"op": "subscribe", "channel": "quotes", "symbols": symbols, "id": 1})
        source.push(
            make_batch([index[s] for s in symbols], bid=[1.0, 2.0, 3.0], ask=[1.5, 2.5, 3.5])
        )
        frame = await c.frame()

    assert sorted(m["key"] for m in frame) == sorted(symbols)


async def test_staleness_flip_is_published_when_the_feed_goes_down(tmp_path):
    source = ScriptedSource()
    settings = make_settings(tmp_path, feed={"staleness_check_ms": 20})
    async with running_gateway(settings, source=source) as gw, client(gw.ws_url) as c:
        ix = gw.gateway.master.symbol_index["AAPL"]
        await c.request({"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 1})
        source.push(make_batch([ix], bid=[50.0], ask=[50.1], ts_recv=gw.gateway.clock.now_ns()))
        fresh = await c.until(lambda m: m.get("bid") == 50.0)
        source.is_up = False
        stale = await c.until(lambda m: m["type"] == "update" and m["stale"] is True)

    assert fresh["stale"] is False
    assert (stale["bid"], stale["ask"], stale["seq"]) == (50.0, 50.1, fresh["seq"] + 1)


async def test_two_clients_on_one_symbol_see_identical_sequences(tmp_path):
    source = ScriptedSource()
    async with running_gateway(make_settings(tmp_path), source=source) as gw:
        ix = gw.gateway.master.symbol_index["AAPL"]
        async with client(gw.ws_url) as c1, client(gw.ws_url) as c2:
            for c in (c1, c2):
                await c.request(
                    {"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 1}
                )
            prices = np.arange(1.0, 21.0)
            for p in prices:
                source.push(make_batch([ix], bid=[p], ask=[p + 0.5]))
            for c in (c1, c2):
                await c.until(lambda m: m.get("bid") == 20.0)

    seq1 = [(m["seq"], m["bid"]) for m in updates_for(c1.received, "AAPL")]
    seq2 = [(m["seq"], m["bid"]) for m in updates_for(c2.received, "AAPL")]
    assert seq1[-1] == seq2[-1]
    assert_gap_free(updates_for(c1.received, "AAPL"))
    assert_gap_free(updates_for(c2.received, "AAPL"))


async def test_source_batches_are_applied_before_the_next_is_read(tmp_path):
    # The scripted source counts acknowledgements; all pushed batches get applied.
    source = ScriptedSource()
    async with running_gateway(make_settings(tmp_path), source=source) as gw:
        ix = gw.gateway.master.symbol_index["AAPL"]
        for p in range(1, 51):
            source.push(make_batch([ix], bid=[float(p)], ask=[p + 0.5]))
        await poll_until(lambda: source.applied == 50, what="50 batches applied")
        book = gw.gateway.book

    assert book.bid[ix] == 50.0
    assert gw.gateway.metrics.counters.ticks_accepted == 50


@pytest.mark.parametrize("deflate", [False, True])
async def test_frames_are_whole_with_and_without_per_message_deflate(tmp_path, deflate):
    # Without an extension the gateway frames messages itself; with deflate
    # the WebSocket library compresses and frames them.
    settings = make_settings(
        tmp_path, ws={"per_message_deflate": deflate}, simulator={"tick_rate_per_s": 20_000.0}
    )
    symbols = ["AAPL", "MSFT"]
    compression = "deflate" if deflate else None
    async with running_gateway(settings) as gw, client(gw.ws_url, compression=compression) as c:
        await c.send({"op": "subscribe", "channel": "quotes", "symbols": symbols, "id": 1})
        while min(len(updates_for(c.received, s)) for s in symbols) < 10:
            await c.frame()
        extensions = [type(e).__name__ for e in c.ws.protocol.extensions]

    assert extensions == (["PerMessageDeflate"] if deflate else [])
    for symbol in symbols:
        assert_gap_free(updates_for(c.received, symbol))


async def test_max_rate_ms_spaces_a_keys_updates_and_delivers_its_latest_state(tmp_path):
    source = ScriptedSource()
    gap_ms = 200
    async with (
        running_gateway(make_settings(tmp_path), source=source) as gw,
        client(gw.ws_url) as c,
    ):
        index = gw.gateway.master.symbol_index
        a, b = index["AAPL"], index["MSFT"]
        await c.request(
            {
                "op": "subscribe",
                "channel": "quotes",
                "symbols": ["AAPL"],
                "id": 1,
                "max_rate_ms": gap_ms,
            }
        )
        await c.request({"op": "subscribe", "channel": "quotes", "symbols": ["MSFT"], "id": 2})
        prices = [10.0 + k for k in range(10)]
        for price in prices:  # in much less than gap_ms on any machine that runs the tests
            source.push(make_batch([a, b], bid=[price, price], ask=[price + 1, price + 1]))
            await poll_until(source.is_drained, what="the batch applied")
        await c.until(lambda m: m.get("key") == "AAPL" and m.get("bid") == prices[-1])
        await c.until(lambda m: m.get("key") == "MSFT" and m.get("bid") == prices[-1])

    limited = updates_for(c.received, "AAPL")
    assert_gap_free(limited)  # conflated, with seq_from, never a gap
    assert len(limited) < len(prices)
    sent = [m["ts_sent"] for m in limited[1:]]  # the updates after the snapshot
    assert all(later - earlier >= gap_ms * 1_000_000 for earlier, later in itertools.pairwise(sent))
    # The other subscription on the same connection gets every update (a
    # staleness flip, when the scripted feed pauses, is one more).
    other = updates_for(c.received, "MSFT")[1:]
    assert all("seq_from" not in m for m in other)
    assert [m["bid"] for m in other if not m["stale"]] == prices
