"""Client churn: after clients come and go, nothing of theirs stays in the gateway.

Memory after a reconnect storm returns to its baseline only if every
per-client structure is released: the hub's connection set, each channel's
subscriber sets and key states, and the connection objects themselves.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from tests.builders import make_batch, make_settings
from tests.harness import ScriptedSource, client, poll_until, running_gateway

pytestmark = pytest.mark.e2e

SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN"]
ROUNDS = 3
CLIENTS_PER_ROUND = 40


async def _one_client(ws_url: str, symbols: list[str], leave: asyncio.Event) -> None:
    async with client(ws_url) as c:
        await c.request({"op": "subscribe", "channel": "quotes", "symbols": symbols, "id": 1})
        await leave.wait()


async def test_connections_and_subscriptions_are_released_after_churn(tmp_path):
    source = ScriptedSource()
    async with running_gateway(make_settings(tmp_path), source=source) as gw:
        hub, quotes = gw.gateway.hub, gw.gateway.quotes
        aapl = gw.gateway.master.symbol_index["AAPL"]
        seen: list[weakref.ref[object]] = []
        for round_ in range(ROUNDS):
            leave = asyncio.Event()
            tasks = [
                asyncio.create_task(_one_client(gw.ws_url, SYMBOLS[: 1 + i % len(SYMBOLS)], leave))
                for i in range(CLIENTS_PER_ROUND)
            ]
            await poll_until(
                lambda: quotes.topic.subscriber_count() == CLIENTS_PER_ROUND,
                what="every client subscribed",
            )
            seen += [weakref.ref(c) for c in hub.connections]
            source.push(make_batch([aapl], bid=[100.0 + round_], ask=[100.5 + round_]))
            leave.set()
            await asyncio.gather(*tasks)
            await poll_until(lambda: not hub.connections, what="every connection unregistered")

        gc.collect()
        alive = [r for r in seen if r() is not None]

        assert len(seen) == ROUNDS * CLIENTS_PER_ROUND
        assert not alive, f"{len(alive)} of {len(seen)} connection objects still alive"
        assert quotes.topic.subscriber_count() == 0
        assert quotes.topic.key_count() == 0  # no key state outlives its last subscriber
