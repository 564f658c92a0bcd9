"""Heartbeats, keepalive pings and the slow-consumer rule, over real sockets."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest

from gateway.metrics import Counters
from gateway.settings import Settings
from gateway.ws import closecodes
from gateway.ws.connection import WebSocketConnection
from tests.builders import make_batch, make_settings
from tests.harness import (
    RawClient,
    ScriptedSource,
    assert_gap_free,
    client,
    poll_until,
    running_gateway,
    updates_for,
)

pytestmark = pytest.mark.e2e


async def test_quiet_connection_gets_app_level_heartbeats(tmp_path):
    settings = make_settings(
        tmp_path, ws={"heartbeat_interval_s": 0.1}, fanout={"sweep_interval_ms": 20}
    )
    async with running_gateway(settings, source=ScriptedSource()) as gw, client(gw.ws_url) as c:
        await c.request({"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 1})
        first = await c.until(lambda m: m["type"] == "heartbeat")
        second = await c.until(lambda m: m["type"] == "heartbeat")

    assert second["ts_sent"] - first["ts_sent"] >= 0.1 * 1e9


async def test_client_that_never_answers_pings_is_closed_with_1011(tmp_path):
    settings = make_settings(
        tmp_path,
        ws={"ping_interval_s": 0.1, "ping_timeout_s": 0.2},
        fanout={"sweep_interval_ms": 20},
    )
    async with running_gateway(settings, source=ScriptedSource()) as gw:
        raw = RawClient(gw.ws_url)
        await raw.connect()
        await raw.send({"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"]})
        code = await raw.close_code()
        raw.close()

    assert code == closecodes.INTERNAL_ERROR


async def test_client_answering_pings_stays_connected(tmp_path):
    settings = make_settings(
        tmp_path,
        ws={"ping_interval_s": 0.05, "ping_timeout_s": 0.1},
        fanout={"sweep_interval_ms": 10},
    )
    async with running_gateway(settings, source=ScriptedSource()) as gw, client(gw.ws_url) as c:
        await c.request({"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 1})
        # Several ping intervals and timeouts pass while the client keeps answering.
        await c.until(lambda m: m["type"] == "heartbeat", timeout_s=10)
        pong = await c.request({"op": "ping", "id": "alive"})

    assert pong["type"] == "pong"


def slow_consumer_settings(tmp_path: Path, **sections: dict[str, object]) -> Settings:
    """Small socket buffers, a short grace period and a fast sweep."""
    fanout = {
        "slow_consumer_grace_ms": 200,
        "sweep_interval_ms": 20,
        "write_buffer_high_bytes": 8192,
        "write_buffer_low_bytes": 2048,
    }
    return make_settings(tmp_path, fanout=fanout, **sections)


async def push_until_a_slow_close(
    source: ScriptedSource,
    ix: list[int],
    counters: Counters,
    after_each: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Push batches until a client has been over its bound for the grace period."""
    price = 100.0
    while counters.slow_consumer_closes == 0:
        price += 1.0
        source.push(make_batch(ix, bid=[price] * len(ix), ask=[price + 0.5] * len(ix)))
        await poll_until(source.is_drained, what="the batch to apply")
        if after_each is not None:
            await after_each()
        assert price < 100_000, "the slow client was never closed"


async def test_client_that_stops_reading_is_closed_as_slow_while_others_get_every_latest_value(
    tmp_path,
):
    source = ScriptedSource()
    async with running_gateway(slow_consumer_settings(tmp_path), source=source) as gw:
        master = gw.gateway.master
        symbols = list(master.symbols[:100])
        ix = [master.symbol_index[s] for s in symbols]
        counters = gw.gateway.metrics.counters
        async with client(gw.ws_url) as healthy:
            slow = RawClient(gw.ws_url)
            await slow.connect(receive_buffer_bytes=4096)
            subscribe = {"op": "subscribe", "channel": "quotes", "symbols": symbols}
            await slow.send(subscribe)
            await healthy.request({**subscribe, "id": 1})

            await push_until_a_slow_close(source, ix, counters, after_each=healthy.frame)

            final = np.arange(len(ix), dtype=np.float64) + 1_000_000.0
            source.push(make_batch(ix, bid=final.tolist(), ask=(final + 0.5).tolist()))
            # Every symbol's final value arrives (a frame's keys come in no
            # particular order).
            expected = dict(zip(symbols, final.tolist(), strict=True))
            while expected:
                message = await healthy.until(lambda m: m.get("key") in expected)
                if message["bid"] == expected[message["key"]]:
                    del expected[message["key"]]
            slow_code = await slow.close_code()
            slow.close()

    assert counters.slow_consumer_closes == 1
    assert counters.ws_closes[str(closecodes.SLOW_CONSUMER)] == 1
    assert slow_code == closecodes.SLOW_CONSUMER
    for symbol in symbols:
        assert_gap_free(updates_for(healthy.received, symbol))


async def test_a_slow_client_that_ignores_the_close_is_reset_not_left_draining(tmp_path):
    # Its backlog sits in the kernel ahead of the close frame; a plain close
    # would keep sending it for as long as the client takes to read it.
    settings = slow_consumer_settings(tmp_path, ws={"close_timeout_s": 0.2})
    source = ScriptedSource()
    async with running_gateway(settings, source=source) as gw:
        master = gw.gateway.master
        ix = list(range(100))
        counters = gw.gateway.metrics.counters
        slow = RawClient(gw.ws_url)
        await slow.connect(receive_buffer_bytes=4096)
        await slow.send({"op": "subscribe", "channel": "quotes", "symbols": master.symbols[:100]})
        await push_until_a_slow_close(source, ix, counters)
        connections = gw.server.server_state.connections
        await poll_until(
            lambda: not any(isinstance(c, WebSocketConnection) for c in connections),
            what="the server to drop the connection",
        )

        with pytest.raises(ConnectionResetError):
            await slow.close_code()
        slow.close()


async def test_updates_conflated_for_a_client_closed_as_slow_are_counted(tmp_path):
    # The client never reads again: what its outbox merged away is never sent,
    # but it was conflated all the same and the metric must say so.
    source = ScriptedSource()
    async with running_gateway(slow_consumer_settings(tmp_path), source=source) as gw:
        master = gw.gateway.master
        ix = list(range(100))
        counters = gw.gateway.metrics.counters
        slow = RawClient(gw.ws_url)
        await slow.connect(receive_buffer_bytes=4096)
        await slow.send({"op": "subscribe", "channel": "quotes", "symbols": master.symbols[:100]})
        await push_until_a_slow_close(source, ix, counters)
        conflated = counters.ws_updates_conflated
        slow.close()

    # At least every batch after the socket filled up, for each of 100 symbols.
    assert conflated >= 100


async def test_conflated_updates_state_their_seq_range(tmp_path):
    # A client that is behind receives one update per symbol for several
    # batches, with seq_from naming the first seq it stands for.
    settings = make_settings(
        tmp_path,
        fanout={
            "slow_consumer_grace_ms": 60_000,
            "write_buffer_high_bytes": 4096,
            "write_buffer_low_bytes": 1024,
        },
    )
    source = ScriptedSource()
    async with running_gateway(settings, source=source) as gw:
        master = gw.gateway.master
        symbols = list(master.symbols[:50])
        ix = [master.symbol_index[s] for s in symbols]
        slow = RawClient(gw.ws_url)
        await slow.connect(receive_buffer_bytes=4096)
        await slow.send({"op": "subscribe", "channel": "quotes", "symbols": symbols})
        hub = gw.gateway.hub
        price = 0.0
        while not any(conn.outbox.conflated for conn in hub.connections):
            price += 1.0
            source.push(make_batch(ix, bid=[price] * len(ix), ask=[price + 0.5] * len(ix)))
            await poll_until(source.is_drained, what="the batch to apply")
            assert price < 100_000, "the client never fell behind"
        # Now read everything that was queued for the slow client.
        while not any(m.get("bid") == price for m in updates_for(slow.messages, symbols[-1])):
            await slow.read_some(5.0)
        slow.close()
        conflated = gw.gateway.metrics.counters.ws_updates_conflated

    assert conflated > 0
    for symbol in symbols:
        updates = updates_for(slow.messages, symbol)
        assert_gap_free(updates)
        assert updates[-1]["bid"] == price
    assert any("seq_from" in m for m in slow.messages)


async def test_kernel_send_buffer_of_each_connection_is_capped(tmp_path):
    settings = make_settings(tmp_path, fanout={"socket_send_buffer_bytes": 32_768})
    async with running_gateway(settings, source=ScriptedSource()) as gw, client(gw.ws_url) as c:
        await c.request({"op": "ping", "id": 1})
        (connection,) = gw.gateway.hub.connections
        assert isinstance(connection, WebSocketConnection)
        assert connection._transport is not None
        sock = connection._transport.get_extra_info("socket")
        send_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)

    # Linux doubles the value it is given, for its bookkeeping.
    assert 32_768 <= send_buffer <= 2 * 32_768
