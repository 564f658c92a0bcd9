"""The upstream source against a small vendor feed served by the ``websockets`` library."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.builders import make_settings
from tests.harness import client, poll_until, running_gateway
from tests.servers import free_port

pytestmark = pytest.mark.integration

# The vendor's own field names and millisecond timestamps, mapped by settings.
VENDOR_FIELDS = {
    "field_symbol": "s",
    "field_bid": "b",
    "field_ask": "a",
    "field_last": "p",
    "field_size": "q",
    "field_ts_event": "t",
    "field_seq": "n",
    "ts_unit": "ms",
}


class Vendor:
    """A feed that records subscriptions and sends what the test queues."""

    def __init__(self) -> None:
        self.port = free_port()
        self.subscriptions: list[object] = []
        self.connections: list[ServerConnection] = []
        self.outgoing: asyncio.Queue[object] = asyncio.Queue()

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        reader = asyncio.create_task(self._record_subscriptions(ws))
        await ws.send(orjson.dumps({"type": "hello"}).decode())  # a control message
        try:
            while not reader.done():
                message = asyncio.ensure_future(self.outgoing.get())
                await asyncio.wait({message, reader}, return_when=asyncio.FIRST_COMPLETED)
                if not message.done():
                    message.cancel()
                    return
                await ws.send(orjson.dumps(message.result()).decode())
        finally:
            reader.cancel()

    async def _record_subscriptions(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self.subscriptions.append(orjson.loads(raw))

    def tick(self, symbol: str, bid: float, seq: int) -> dict[str, object]:
        return {"s": symbol, "b": bid, "a": bid + 0.5, "t": time.time_ns() // 1_000_000, "n": seq}


@pytest.fixture
async def vendor() -> AsyncIterator[Vendor]:
    feed = Vendor()
    async with serve(feed.handler, "127.0.0.1", feed.port):
        yield feed


def upstream_settings(tmp_path, vendor: Vendor, **extra: object):
    return make_settings(
        tmp_path,
        feed={"source": "upstream", "staleness_check_ms": 50},
        upstream={
            "url": f"ws://127.0.0.1:{vendor.port}",
            "symbols": ("AAPL", "MSFT"),
            "subscribe_template": '{"action":"subscribe","params":$symbols}',
            "reconnect_initial_ms": 50,
            "reconnect_max_ms": 200,
            **VENDOR_FIELDS,
            **extra,
        },
    )


async def test_vendor_ticks_are_mapped_and_reach_clients(tmp_path, vendor):
    async with running_gateway(upstream_settings(tmp_path, vendor)) as gw, client(gw.ws_url) as c:
        await c.request({"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 1})
        await poll_until(lambda: vendor.subscriptions, what="the subscription")
        vendor.outgoing.put_nowait([vendor.tick("AAPL", 270.0, 1), vendor.tick("MSFT", 500.0, 2)])
        update = await c.until(lambda m: m["type"] == "update")

    assert vendor.subscriptions == [{"action": "subscribe", "params": ["AAPL", "MSFT"]}]
    assert (update["key"], update["bid"], update["ask"], update["stale"]) == (
        "AAPL",
        270.0,
        270.5,
        False,
    )
    assert update["ts_event"] % 1_000_000 == 0  # milliseconds scaled to nanoseconds


async def test_dropped_connection_reconnects_and_resubscribes(tmp_path, vendor):
    # Reconnecting waits at least 250 ms, so the staleness check (50 ms) sees the outage.
    settings = upstream_settings(tmp_path, vendor, reconnect_initial_ms=500, reconnect_max_ms=1000)
    async with running_gateway(settings) as gw, client(gw.ws_url) as c:
        await c.request({"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 1})
        await poll_until(lambda: vendor.connections, what="the first connection")
        vendor.outgoing.put_nowait(vendor.tick("AAPL", 270.0, 1))
        await c.until(lambda m: m["type"] == "update" and m["bid"] == 270.0)
        vendor.connections[0].transport.abort()  # the vendor drops us, no close frame
        stale = await c.until(lambda m: m["type"] == "update" and m["stale"])
        await poll_until(lambda: len(vendor.subscriptions) == 2, what="the resubscription")
        vendor.outgoing.put_nowait(vendor.tick("AAPL", 271.0, 2))
        fresh = await c.until(lambda m: m["type"] == "update" and m["bid"] == 271.0)
        connects = gw.gateway.metrics.counters.feed_connects

    assert (stale["bid"], stale["stale"]) == (270.0, True)
    assert vendor.subscriptions[0] == vendor.subscriptions[1]
    assert fresh["stale"] is False
    assert connects == 2


async def test_sequence_gap_is_counted_and_answered_by_resubscribing(tmp_path, vendor):
    async with running_gateway(upstream_settings(tmp_path, vendor)) as gw:
        await poll_until(lambda: vendor.subscriptions, what="the subscription")
        for seq in (1, 2, 5):
            vendor.outgoing.put_nowait(vendor.tick("AAPL", 100.0 + seq, seq))
        ix = gw.gateway.master.symbol_index["AAPL"]
        await poll_until(lambda: gw.gateway.book.bid[ix] == 105.0, what="the third tick")
        counters = gw.gateway.metrics.counters
        await poll_until(lambda: len(vendor.subscriptions) == 2, what="the resubscription")

    assert counters.feed_gaps == 1
    assert len(vendor.connections) == 1  # resubscribed on the same connection


async def test_unusable_vendor_messages_are_counted_and_skipped(tmp_path, vendor):
    async with running_gateway(upstream_settings(tmp_path, vendor)) as gw:
        await poll_until(lambda: vendor.subscriptions, what="the subscription")
        vendor.outgoing.put_nowait({"s": "AAPL", "b": "cheap", "a": 1.0, "t": 1, "n": 1})
        vendor.outgoing.put_nowait(vendor.tick("AAPL", -1.0, 2))
        vendor.outgoing.put_nowait(vendor.tick("AAPL", 99.0, 3))
        ix = gw.gateway.master.symbol_index["AAPL"]
        await poll_until(lambda: gw.gateway.book.bid[ix] == 99.0, what="the good tick")
        counters = gw.gateway.metrics.counters

    assert counters.records_refused["bad_record"] == 1
    assert counters.ticks_rejected["negative"] == 1


async def test_feed_that_is_down_at_start_is_retried_until_it_comes_up(tmp_path):
    feed = Vendor()
    async with running_gateway(upstream_settings(tmp_path, feed)) as gw:
        await poll_until(lambda: not gw.gateway.source.is_up, what="the source to be down")
        async with serve(feed.handler, "127.0.0.1", feed.port):
            await poll_until(lambda: gw.gateway.source.is_up, what="the source up", timeout_s=10)
            subscriptions = list(feed.subscriptions)

    assert subscriptions == [{"action": "subscribe", "params": ["AAPL", "MSFT"]}]


async def test_vendor_that_renumbers_after_a_resubscribe_causes_no_resubscribe_loop(
    tmp_path, vendor
):
    async with running_gateway(upstream_settings(tmp_path, vendor)) as gw:
        await poll_until(lambda: vendor.subscriptions, what="the subscription")
        for seq in (10, 11, 15):  # a gap: the source resubscribes
            vendor.outgoing.put_nowait(vendor.tick("AAPL", float(seq), seq))
        await poll_until(lambda: len(vendor.subscriptions) == 2, what="the resubscription")
        for seq in (1, 2, 3):  # the vendor starts its numbering again
            vendor.outgoing.put_nowait(vendor.tick("AAPL", 100.0 + seq, seq))
        ix = gw.gateway.master.symbol_index["AAPL"]
        await poll_until(lambda: gw.gateway.book.bid[ix] == 103.0, what="the renumbered ticks")
        counters = gw.gateway.metrics.counters

    assert counters.feed_gaps == 1
    assert len(vendor.subscriptions) == 2
