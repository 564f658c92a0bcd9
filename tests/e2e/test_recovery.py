"""Resubscribing to quotes after a reconnect: the latest state, or a fresh snapshot."""

from __future__ import annotations

import pytest

from tests.builders import make_batch, make_settings
from tests.harness import Message, ScriptedSource, client, poll_until, running_gateway, updates_for

pytestmark = pytest.mark.e2e


async def _push_bids(gw, source, symbol, bids):
    ix = gw.gateway.master.symbol_index[symbol]
    for bid in bids:
        source.push(make_batch([ix], bid=[bid], ask=[bid + 0.5]))
    await poll_until(source.is_drained, what="batches applied")


async def _subscribe_and_read(gw, symbols, until_bid):
    async with client(gw.ws_url) as c:
        await c.request({"op": "subscribe", "channel": "quotes", "symbols": symbols, "id": 1})
        for symbol in symbols:

            def is_priced(m: Message, s: str = symbol) -> bool:
                return bool(m.get("key") == s and m.get("bid") == until_bid)

            await c.until(is_priced)
    return c


async def test_resubscribe_sends_the_latest_quote_standing_for_the_missed_updates(tmp_path):
    source = ScriptedSource()
    async with running_gateway(make_settings(tmp_path), source=source) as gw:
        await _push_bids(gw, source, "AAPL", [1.0, 2.0])
        first = await _subscribe_and_read(gw, ["AAPL"], until_bid=2.0)
        last_seq = updates_for(first.received, "AAPL")[-1]["seq"]
        await _push_bids(gw, source, "AAPL", [3.0, 4.0, 5.0])
        async with client(gw.ws_url) as second:
            ack = await second.request(
                {
                    "op": "subscribe",
                    "channel": "quotes",
                    "symbols": ["AAPL"],
                    "epoch": gw.gateway.epoch,
                    "last_seq": last_seq,
                    "id": 2,
                }
            )
            latest = await second.until(lambda m: m["type"] != "heartbeat")
            await _push_bids(gw, source, "AAPL", [6.0])
            following = await second.until(lambda m: m["type"] == "update")

    assert (ack["type"], ack["recovered"]) == ("subscribed", True)
    assert latest["type"] == "update"
    assert (latest["seq_from"], latest["seq"], latest["bid"]) == (last_seq + 1, last_seq + 3, 5.0)
    assert ("seq_from" in following, following["seq"], following["bid"]) == (
        False,
        last_seq + 4,
        6.0,
    )


async def test_resubscribe_with_another_epoch_gets_a_snapshot_marked_not_recovered(tmp_path):
    source = ScriptedSource()
    async with running_gateway(make_settings(tmp_path), source=source) as gw:
        await _push_bids(gw, source, "AAPL", [1.0, 2.0])
        async with client(gw.ws_url) as c:
            ack = await c.request(
                {
                    "op": "subscribe",
                    "channel": "quotes",
                    "symbols": ["AAPL"],
                    "epoch": "an-epoch-from-before-a-restart",
                    "last_seq": 1,
                    "id": 1,
                }
            )
            snapshot = await c.until(lambda m: m["type"] == "snapshot")

    assert ack["recovered"] is False
    assert (snapshot["recovered"], snapshot["bid"], snapshot["seq"]) == (False, 2.0, 2)


async def test_resubscribe_recovers_every_key_however_far_behind(tmp_path):
    source = ScriptedSource()
    async with running_gateway(make_settings(tmp_path), source=source) as gw:
        await _push_bids(gw, source, "AAPL", [1.0])
        await _push_bids(gw, source, "MSFT", [1.0])
        await _push_bids(gw, source, "NVDA", [1.0])
        first = await _subscribe_and_read(gw, ["AAPL", "MSFT", "NVDA"], until_bid=1.0)
        seqs = {s: updates_for(first.received, s)[-1]["seq"] for s in ("AAPL", "MSFT", "NVDA")}
        await _push_bids(gw, source, "AAPL", [2.0])
        await _push_bids(gw, source, "MSFT", [float(b) for b in range(2, 60)])  # nobody watches
        async with client(gw.ws_url) as c:
            ack = await c.request(
                {
                    "op": "subscribe",
                    "channel": "quotes",
                    "symbols": ["AAPL", "MSFT", "NVDA"],
                    "epoch": gw.gateway.epoch,
                    "last_seq": seqs,
                    "id": 1,
                }
            )
            updates = [await c.until(lambda m: m["type"] == "update") for _ in range(2)]

    assert ack["recovered"] is True
    by_key = {u["key"]: u for u in updates}
    assert (by_key["AAPL"]["seq"], by_key["AAPL"]["bid"]) == (seqs["AAPL"] + 1, 2.0)
    assert "seq_from" not in by_key["AAPL"]
    assert (by_key["MSFT"]["seq_from"], by_key["MSFT"]["seq"]) == (
        seqs["MSFT"] + 1,
        seqs["MSFT"] + 58,
    )
    assert by_key["MSFT"]["bid"] == 59.0
    assert not [m for m in c.received if m["type"] == "snapshot" or m.get("key") == "NVDA"]


async def test_resubscribe_ahead_of_the_server_gets_snapshots_for_every_key(tmp_path):
    source = ScriptedSource()
    async with running_gateway(make_settings(tmp_path), source=source) as gw:
        await _push_bids(gw, source, "AAPL", [1.0, 2.0])
        await _push_bids(gw, source, "MSFT", [1.0])
        async with client(gw.ws_url) as c:
            ack = await c.request(
                {
                    "op": "subscribe",
                    "channel": "quotes",
                    "symbols": ["AAPL", "MSFT"],
                    "epoch": gw.gateway.epoch,
                    "last_seq": {"AAPL": 1, "MSFT": 9},
                    "id": 1,
                }
            )
            snapshots = [await c.until(lambda m: m["type"] == "snapshot") for _ in range(2)]

    assert ack["recovered"] is False
    assert [(s["key"], s["bid"], s["seq"]) for s in snapshots] == [
        ("AAPL", 2.0, 2),
        ("MSFT", 1.0, 1),
    ]
    assert all(s["recovered"] is False for s in snapshots)
    assert not [m for m in c.received if m["type"] == "update"]  # never a partial recovery
