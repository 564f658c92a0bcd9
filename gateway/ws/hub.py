"""The connection hub: what every WebSocket connection shares.

It owns the live connections, routes subscribe and unsubscribe commands to
their channel, and runs the sweep: one timer for all connections that checks
deadlines, heartbeats, keepalive pings and the slow-consumer rule.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping
from typing import Protocol

import orjson

from gateway.access import PrincipalSlots
from gateway.auth import TokenVerifier
from gateway.clock import Clock
from gateway.metrics import Metrics
from gateway.settings import AccessSettings, AuthSettings, FanoutSettings, WebSocketSettings
from gateway.ws.session import ChannelSpec, ClientSession, Command, Subscribe
from gateway.ws.topic import Channel, Subscriber

__all__ = ["HUB_STATE_KEY", "Connection", "ConnectionHub"]

logger = logging.getLogger(__name__)

HUB_STATE_KEY = "tickgate.hub"
"""Key of the hub in the ASGI lifespan state, where connections find it."""


class Connection(Subscriber, Protocol):
    """A live connection as the hub drives it."""

    def on_sweep(self, now_ns: int) -> None:
        """Run the periodic checks of this connection."""
        ...

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake with ``code``."""
        ...


class ConnectionHub:
    """Shared state and timers of every WebSocket connection."""

    def __init__(
        self,
        *,
        ws: WebSocketSettings,
        fanout: FanoutSettings,
        auth: AuthSettings,
        access: AccessSettings,
        channels: Mapping[str, Channel],
        specs: Mapping[str, ChannelSpec],
        verifier: TokenVerifier,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self.ws = ws
        self.fanout = fanout
        self._allow_anonymous = auth.allow_anonymous_quotes
        self.principal_slots = PrincipalSlots(access.max_connections_per_principal)
        self._channels = dict(channels)
        self._specs = dict(specs)
        self._verifier = verifier
        self.clock = clock
        self.metrics = metrics
        self.connections: set[Connection] = set()
        self.is_accepting = True
        self._conn_ids = itertools.count(1)
        metrics.gauge("ws_clients", "Open WebSocket connections.", lambda: len(self.connections))

    def register_channel(self, channel: Channel, spec: ChannelSpec) -> None:
        """Serve another channel; call before the server accepts connections."""
        self._channels[channel.name] = channel
        self._specs[spec.name] = spec

    def open_session(self, now_ns: int) -> tuple[int, ClientSession]:
        """Return a connection id and a fresh protocol session."""
        session = ClientSession(
            self.ws,
            channels=self._specs,
            verifier=self._verifier,
            allow_anonymous_quotes=self._allow_anonymous,
            decode_json=orjson.loads,
            principal_slots=self.principal_slots,
            now_ns=now_ns,
        )
        return next(self._conn_ids), session

    def register(self, connection: Connection) -> None:
        """Add an open connection."""
        self.connections.add(connection)
        self.metrics.counters.ws_connections += 1

    def unregister(self, connection: Connection) -> None:
        """Drop a connection and all of its subscriptions; idempotent."""
        if connection in self.connections:
            self.connections.discard(connection)
            for channel in self._channels.values():
                channel.remove(connection)

    def execute(self, connection: Connection, command: Command) -> None:
        """Apply a session command to its channel."""
        channel = self._channels[command.channel]
        if isinstance(command, Subscribe):
            channel.subscribe(connection, command)
        else:
            channel.unsubscribe(connection, command)

    def sweep(self, now_ns: int) -> None:
        """Run every connection's periodic checks."""
        for connection in list(self.connections):
            connection.on_sweep(now_ns)

    def close_all(self, code: int, reason: str) -> None:
        """Stop accepting and close every connection with ``code``."""
        self.is_accepting = False
        for connection in list(self.connections):
            connection.close(code, reason)

    async def run_sweeper(self) -> None:
        """Sweep every ``fanout.sweep_interval_ms`` until cancelled."""
        interval_s = self.fanout.sweep_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.sweep(self.clock.now_ns())
            except Exception:
                logger.exception("connection sweep failed", extra={"event": "ws.sweep_failed"})
