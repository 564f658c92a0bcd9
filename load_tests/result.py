"""The result of a load-test run: what ``result.json`` holds, and how it is read back.

Times are seconds from the start of the run (the first connection attempt).
Latencies are milliseconds. ``closes`` counts connections the server closed
(by close code), except those of the deliberately slow clients, which are
in ``slow_closes``. ``delivered`` counts update messages received by
the clients; ``produced`` the updates the server published for the keys
they watched (the advance of each key's seq), so ``produced - delivered`` is
what conflation merged away and ``delivered <= produced`` always holds on a
correct server. ``all_connected_s`` is the time from the first connection
attempt to the last client's first completed handshake, and
``max_connect_s`` the longest any client took from its first attempt to its
first handshake (retries included); both None if some client never
connected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "Latency",
    "Phase",
    "RunResult",
    "ServerMemory",
    "SloCheck",
    "TimelinePoint",
]


@dataclass(frozen=True, slots=True)
class Latency:
    """Percentiles of tick-to-client latency (receive time minus ``ts_event``), in ms."""

    count: int = 0
    p50: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    """One interval (normally one second) of the run, ending at ``t``.

    ``latency`` is the quotes' and ``portfolio_latency`` the portfolio
    updates'. ``rss_mb`` is the server's resident memory at the end of the
    interval, when it could be read. The failures of the interval:
    ``gaps``, ``errors`` (protocol error messages), ``closes`` (connections
    the server closed, the deliberately slow clients' excepted) and
    ``connect_failures``.
    """

    t: float
    delivered_per_s: float
    latency: Latency
    connected: int
    rss_mb: float | None = None
    portfolio_latency: Latency = field(default_factory=Latency)
    gaps: int = 0
    errors: int = 0
    closes: int = 0
    connect_failures: int = 0


@dataclass(frozen=True, slots=True)
class Phase:
    """A named part of the scenario (``steady``; ``baseline``, ``spike``, ``recovery``)."""

    name: str
    start_s: float
    end_s: float
    delivered_per_s: float
    latency: Latency


@dataclass(frozen=True, slots=True)
class ServerMemory:
    """The server's resident memory in MB, from ``source`` (``metrics`` or ``proc``).

    ``before_spike`` and ``after_spike`` are the last reading before the spike
    and the last of the run (the end of the recovery); ``growth_pct`` is the
    change from the first quarter of the run to the last (for ``soak``).
    """

    source: str | None = None
    start: float | None = None
    peak: float | None = None
    end: float | None = None
    before_spike: float | None = None
    after_spike: float | None = None
    growth_pct: float | None = None


@dataclass(frozen=True, slots=True)
class SloCheck:
    """One objective of ``--slo``: ``actual`` compared with ``limit`` by ``op``."""

    name: str
    op: str
    limit: float
    actual: float | None
    ok: bool


@dataclass(frozen=True, slots=True)
class RunResult:
    """Everything ``result.json`` holds (see the module docstring for the units)."""

    scenario: str
    url: str
    started_at: str
    duration_s: float
    clients: int
    symbols_per_client: int
    connected_max: int
    connected_end: int
    delivered: int
    delivered_per_s: float
    produced: int
    conflated: int
    snapshots: int
    frames: int
    payload_bytes: int
    latency_ms: Latency
    portfolio_latency_ms: Latency
    gaps: int
    protocol_errors: dict[str, int]
    closes: dict[str, int]
    slow_closes: dict[str, int]
    reconnects: int
    connect_failures: int
    connect_errors: dict[str, int]
    generator: dict[str, Any]
    server: ServerMemory
    phases: list[Phase]
    timeline: list[TimelinePoint]
    spike_window: tuple[float, float] | None = None
    all_connected_s: float | None = None
    max_connect_s: float | None = None
    slo: list[SloCheck] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def slo_ok(self) -> bool:
        """Whether every objective holds (true without objectives)."""
        return all(check.ok for check in self.slo)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; ``latency_ms`` keeps the keys ``p50``, ``p99`` and ``p999``."""
        out = asdict(self)
        out["slo_ok"] = self.slo_ok
        return out
