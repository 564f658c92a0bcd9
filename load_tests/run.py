"""Running a scenario: the fleet, the load driver, the server's memory, the result.

The run talks to the deployment only through its public interfaces: the
instrument list (``GET /v1/instruments``), ``/metrics`` (the standard
``process_resident_memory_bytes``), the WebSocket protocol, the admin
spike endpoint, and, with the Kafka driver, the ``md.ticks`` topic.

Clients subscribe to ``symbols_per_client`` symbols drawn without
replacement from a Zipf-like popularity (the symbol of rank r is picked
with weight 1 / r^s, ranks shuffled with the seed), and a share of them to
the ``portfolio`` channel of one account each, with a token minted from the
deployment's signing secret.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import orjson

from load_tests.drivers import Driver, make_driver
from load_tests.fleet import ClientSpec, Fleet
from load_tests.result import Phase, RunResult, ServerMemory, TimelinePoint
from load_tests.slo import Objective, evaluate
from load_tests.stats import Sample, Totals, latency_of
from load_tests.tokens import mint_token

__all__ = ["RunConfig", "build_specs", "http_base", "run"]

_GENERATOR_LIMIT_PCT = 85.0
_SLOW_SYMBOLS = 200


@dataclass(frozen=True, slots=True)
class RunConfig:
    """One run; see ``tickgate-load --help`` for each field."""

    scenario: str
    url: str
    clients: int
    symbols_per_client: int
    duration_s: float
    out: Path
    objectives: tuple[Objective, ...] = ()
    http_url: str | None = None
    workers: int = 2
    ramp_per_s: float = 500.0
    interval_s: float = 1.0
    portfolio_share: float = 0.0
    accounts: int = 1000
    account_format: str = "DEMO-{:04d}"
    jwt_secret: str | None = None
    issuer: str = "tickgate"
    zipf_s: float = 1.0
    seed: int = 1
    slow_clients: int = 0
    server_pid: int | None = None
    progress: bool = True
    spike_at_s: float | None = None
    spike_s: float | None = None
    rate_multiplier: float = 10.0
    vol_multiplier: float = 5.0
    driver: str = "admin"
    kafka_bootstrap: str | None = None
    kafka_topic: str = "md.ticks"
    tick_rate: float = 1000.0
    extra: dict[str, Any] = field(default_factory=dict)

    def spike_window(self) -> tuple[float, float] | None:
        """(start, end) of the spike in seconds from the start, for ``spike`` runs."""
        if self.scenario != "spike":
            return None
        start = self.spike_at_s if self.spike_at_s is not None else self.duration_s / 3
        length = self.spike_s if self.spike_s is not None else self.duration_s / 3
        return start, min(self.duration_s, start + length)


def http_base(ws_url: str) -> str:
    """``ws://host:port/ws`` -> ``http://host:port``."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def build_specs(config: RunConfig, symbols: Sequence[str]) -> list[ClientSpec]:
    """Every client's subscription, token and ramp time (seeded, so runs repeat)."""
    rng = np.random.default_rng(config.seed)
    k = min(config.symbols_per_client, len(symbols))
    order = rng.permutation(len(symbols))
    weights = 1.0 / np.arange(1, len(symbols) + 1) ** config.zipf_s
    popularity = weights / weights.sum()
    portfolio_clients = round(config.clients * config.portfolio_share)
    if portfolio_clients and config.jwt_secret is None:
        raise ValueError("portfolio clients need --jwt-secret (or --jwt-secret-file)")
    specs: list[ClientSpec] = []
    portfolios = 0
    for i in range(config.clients):
        headers: tuple[tuple[str, str], ...] = ()
        slow = i < config.slow_clients
        # Portfolio clients are spread through the fleet, one account each.
        is_portfolio = portfolio_clients and i % max(1, config.clients // portfolio_clients) == 0
        if is_portfolio and not slow and portfolios < portfolio_clients:
            portfolios += 1
            account = config.account_format.format(i % config.accounts + 1)
            channel, keys = "portfolio", (account,)
            scope, accounts = "read", [account]
        else:
            # A deliberately slow client watches many symbols, so it falls
            # behind soon whatever the tick rate.
            size = min(len(symbols), _SLOW_SYMBOLS, max(k, 10 * k)) if slow else k
            picks = rng.choice(len(symbols), size=size, replace=False, p=popularity)
            channel, keys = "quotes", tuple(symbols[order[j]] for j in picks)
            scope, accounts = "read", []
        if config.jwt_secret is not None:
            token = mint_token(
                config.jwt_secret,
                subject=f"load-{i}",
                accounts=accounts,
                scope=scope,
                issuer=config.issuer,
            )
            headers = (("Authorization", f"Bearer {token}"),)
        specs.append(
            ClientSpec(
                index=i,
                channel=channel,
                keys=keys,
                start_at_s=i / config.ramp_per_s,
                headers=headers,
                slow=slow,
            )
        )
    return specs


def fetch_symbols(http_url: str, *, include_options: bool = False) -> list[str]:
    """The deployment's instruments (``GET /v1/instruments``), options left out by default."""
    with urllib.request.urlopen(f"{http_url}/v1/instruments", timeout=10) as response:  # noqa: S310
        rows = orjson.loads(response.read())
    return [str(row["symbol"]) for row in rows if include_options or row.get("type") != "option"]


class MemoryReader:
    """The server's resident memory in MB: /proc/<pid>/status when local, else /metrics."""

    def __init__(self, http_url: str, pid: int | None) -> None:
        self._http_url = http_url
        self._pid = pid
        self.source: str | None = "proc" if pid is not None else "metrics"

    def read_mb(self) -> float | None:
        try:
            if self._pid is not None:
                text = Path(f"/proc/{self._pid}/status").read_text(encoding="ascii")
                for line in text.splitlines():
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
                return None
            url = f"{self._http_url}/metrics"
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                for line in response.read().decode().splitlines():
                    if line.startswith("process_resident_memory_bytes "):
                        return float(line.split()[1]) / 1e6
        except (OSError, ValueError):
            return None
        return None


@dataclass(slots=True)
class _Aggregate:
    """Samples added up per interval and over the run."""

    workers: int
    intervals: dict[int, Totals] = field(default_factory=lambda: defaultdict(Totals))
    connected: dict[int, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    cpu_s: defaultdict[int, float] = field(default_factory=lambda: defaultdict(float))
    total: Totals = field(default_factory=Totals)
    last_index: int = 0

    def add(self, sample: Sample) -> None:
        index = abs(sample.index)
        self.intervals[index].add(sample)
        if sample.index > 0:  # a last sample is taken after the clients closed
            self.connected[index][sample.worker] = sample.connected
        self.cpu_s[sample.worker] += sample.cpu_s
        self.total.add(sample)
        self.last_index = max(self.last_index, index)

    def connected_at(self, index: int) -> int:
        # Each worker's latest level at or before ``index`` (a sample may be late).
        total = 0
        for worker in range(self.workers):
            levels = [i for i, by in self.connected.items() if i <= index and worker in by]
            if levels:
                total += self.connected[max(levels)][worker]
        return total


async def run(config: RunConfig, *, stream: TextIO = sys.stderr) -> RunResult:
    """Run the scenario and return its result (nothing is written)."""
    http_url = config.http_url or http_base(config.url)
    symbols = await asyncio.to_thread(fetch_symbols, http_url)
    if not symbols:
        raise RuntimeError(f"{http_url}/v1/instruments lists no instruments")
    specs = build_specs(config, symbols)
    fleet = Fleet(
        config.url, specs, workers=config.workers, interval_s=config.interval_s, seed=config.seed
    )
    memory = MemoryReader(http_url, config.server_pid)
    driver = make_driver(config, http_url, symbols)
    window = config.spike_window()
    aggregate = _Aggregate(fleet.workers)
    rss: dict[int, float] = {}
    t0 = time.time() + 0.5
    started_at = dt.datetime.fromtimestamp(t0, tz=dt.UTC).isoformat()
    fleet.start(t0)
    await driver.start(t0)
    try:
        await _drive(config, fleet, driver, memory, aggregate, rss, window, t0, stream)
    finally:
        fleet.stop()
        await _collect_finals(fleet, aggregate)
        await asyncio.to_thread(fleet.join)
        await driver.stop()
    return _result(config, aggregate, rss, memory.source, window, started_at, fleet.workers, driver)


async def _drive(
    config: RunConfig,
    fleet: Fleet,
    driver: Driver,
    memory: MemoryReader,
    aggregate: _Aggregate,
    rss: dict[int, float],
    window: tuple[float, float] | None,
    t0: float,
    stream: TextIO,
) -> None:
    spike: asyncio.Task[None] | None = None
    reported = 0
    end = t0 + config.duration_s
    while time.time() < end:
        for sample in await asyncio.to_thread(fleet.poll, 0.2):
            aggregate.add(sample)
        elapsed = time.time() - t0
        if window is not None and spike is None and elapsed >= window[0]:
            # In the background: an overloaded server may take its time.
            spike = asyncio.create_task(
                driver.spike(window[1] - window[0], config.rate_multiplier, config.vol_multiplier)
            )
        index = int(elapsed // config.interval_s)
        if index > reported and index >= 1:
            reported = index
            reading = await asyncio.to_thread(memory.read_mb)
            if reading is not None:
                rss[index] = reading
            if config.progress:
                _progress(stream, config, aggregate, index, rss.get(index))
        if fleet.alive() == 0:
            raise RuntimeError("every worker process exited early")
    if spike is not None:
        await spike


async def _collect_finals(fleet: Fleet, aggregate: _Aggregate) -> None:
    deadline = time.monotonic() + 15.0
    while fleet.finished < fleet.workers and time.monotonic() < deadline:
        for sample in await asyncio.to_thread(fleet.poll, 0.2):
            aggregate.add(sample)


def _progress(
    stream: TextIO, config: RunConfig, aggregate: _Aggregate, index: int, rss_mb: float | None
) -> None:
    totals = aggregate.intervals.get(index - 1) or Totals()
    latency = latency_of(totals.quotes_latency)
    p99 = f"{latency.p99:.1f}" if latency.p99 is not None else "-"
    memory = f"{rss_mb:.0f} MB" if rss_mb is not None else "-"
    start = "\r" if stream.isatty() else ""
    end = "" if stream.isatty() else "\n"
    stream.write(
        f"{start}[{index * config.interval_s:6.0f}/{config.duration_s:.0f} s] "
        f"clients {aggregate.connected_at(index - 1):>6}  "
        f"delivered/s {totals.counts.delivered / config.interval_s:>9,.0f}  "
        f"p99 {p99:>7} ms  gaps {aggregate.total.counts.gaps}  rss {memory}   {end}"
    )
    stream.flush()


def phase_of(t_end: float, interval_s: float, bounds: Sequence[tuple[str, float, float]]) -> str:
    """The phase of the interval ending at ``t_end``: the one holding its middle.

    Each interval belongs to exactly one phase, so no interval is counted
    twice where a phase boundary falls inside it (a 20 s run's default spike
    window starts at 6.67 s). ``bounds`` are (name, start, end) in order;
    the middle lies in [start, end), or past the last end for the last phase.
    """
    middle = t_end - interval_s / 2
    for name, _, end in bounds:
        if middle < end:
            return name
    return bounds[-1][0]


def _phases(
    config: RunConfig, aggregate: _Aggregate, window: tuple[float, float] | None
) -> list[Phase]:
    bounds: list[tuple[str, float, float]]
    if window is None:
        bounds = [("steady", 0.0, config.duration_s)]
    else:
        bounds = [
            ("baseline", 0.0, window[0]),
            ("spike", window[0], window[1]),
            ("recovery", window[1], config.duration_s),
        ]
    totals = {name: Totals() for name, _, _ in bounds}
    intervals = dict.fromkeys(totals, 0)
    for index, interval in aggregate.intervals.items():
        t_end = index * config.interval_s
        if t_end > config.duration_s:
            continue  # the closing interval, after the run (as in the timeline)
        name = phase_of(t_end, config.interval_s, bounds)
        totals[name].counts.add(interval.counts)
        totals[name].quotes_latency.add(interval.quotes_latency)
        intervals[name] += 1
    return [
        Phase(
            name,
            start,
            end,
            totals[name].counts.delivered / (max(intervals[name], 1) * config.interval_s),
            latency_of(totals[name].quotes_latency),
        )
        for name, start, end in bounds
    ]


def _memory(
    source: str | None, rss: dict[int, float], window: tuple[float, float] | None, interval_s: float
) -> ServerMemory:
    if not rss:
        return ServerMemory(source=None)
    ordered = [rss[i] for i in sorted(rss)]
    quarter = max(1, len(ordered) // 4)
    first, last = np.mean(ordered[:quarter]), np.mean(ordered[-quarter:])
    before = None
    if window is not None:
        earlier = [rss[i] for i in sorted(rss) if i * interval_s <= window[0]]
        before = earlier[-1] if earlier else None
    return ServerMemory(
        source=source,
        start=ordered[0],
        peak=max(ordered),
        end=ordered[-1],
        before_spike=before,
        after_spike=ordered[-1] if window is not None else None,
        growth_pct=round(float((last - first) / first * 100), 2) if first else None,
    )


def _result(
    config: RunConfig,
    aggregate: _Aggregate,
    rss: dict[int, float],
    memory_source: str | None,
    window: tuple[float, float] | None,
    started_at: str,
    workers: int,
    driver: Driver,
) -> RunResult:
    total = aggregate.total
    counts = total.counts
    elapsed = max(config.duration_s, config.interval_s)
    timeline = [
        _timeline_point(config, aggregate, index, rss.get(index))
        for index in sorted(aggregate.intervals)
        if index * config.interval_s <= config.duration_s  # not the closing interval
    ]
    cpu_pct = [round(aggregate.cpu_s[w] / elapsed * 100, 1) for w in range(workers)]
    closes = dict(sorted(total.closes.items()))
    server = _memory(memory_source, rss, window, config.interval_s)
    result = RunResult(
        scenario=config.scenario,
        url=config.url,
        started_at=started_at,
        duration_s=config.duration_s,
        clients=config.clients,
        symbols_per_client=config.symbols_per_client,
        connected_max=max((p.connected for p in timeline), default=0),
        connected_end=timeline[-1].connected if timeline else 0,
        delivered=counts.delivered,
        delivered_per_s=round(counts.delivered / elapsed, 1),
        produced=counts.produced,
        conflated=counts.conflated,
        snapshots=counts.snapshots,
        frames=total.frames,
        payload_bytes=total.payload_bytes,
        latency_ms=latency_of(total.quotes_latency),
        portfolio_latency_ms=latency_of(total.portfolio_latency),
        gaps=counts.gaps,
        protocol_errors=dict(sorted(counts.errors.items())),
        closes=closes,
        slow_closes=dict(sorted(total.slow_closes.items())),
        reconnects=total.reconnects,
        connect_failures=total.connect_failures,
        connect_errors=dict(sorted(total.connect_errors.items())),
        all_connected_s=(
            round(total.last_first_connect_s - (total.first_attempt_s or 0.0), 3)
            if total.first_connects >= config.clients
            else None
        ),
        max_connect_s=(
            round(total.max_connect_s, 3) if total.first_connects >= config.clients else None
        ),
        generator={
            "workers": workers,
            "cpu_pct": cpu_pct,
            "max_cpu_pct": max(cpu_pct, default=0.0),
            "limited": max(cpu_pct, default=0.0) >= _GENERATOR_LIMIT_PCT,
            "cpus": os.cpu_count(),
            "driver": driver.describe(),
        },
        server=server,
        phases=_phases(config, aggregate, window),
        timeline=timeline,
        spike_window=window,
        config=_config_json(config),
    )
    return dataclasses.replace(result, slo=evaluate(config.objectives, _actuals(result, config)))


def _timeline_point(
    config: RunConfig, aggregate: _Aggregate, index: int, rss_mb: float | None
) -> TimelinePoint:
    interval = aggregate.intervals[index]
    return TimelinePoint(
        t=index * config.interval_s,
        delivered_per_s=interval.counts.delivered / config.interval_s,
        latency=latency_of(interval.quotes_latency),
        connected=aggregate.connected_at(index),
        rss_mb=rss_mb,
        portfolio_latency=latency_of(interval.portfolio_latency),
        gaps=interval.counts.gaps,
        errors=sum(interval.counts.errors.values()),
        closes=sum(interval.closes.values()),
        connect_failures=interval.connect_failures,
    )


def _actuals(result: RunResult, config: RunConfig) -> dict[str, float | None]:
    phases = {p.name: p for p in result.phases}
    server = result.server
    after_spike = None
    if server.before_spike and server.after_spike is not None:
        after_spike = (server.after_spike - server.before_spike) / server.before_spike * 100
    return {
        "p50_ms": result.latency_ms.p50,
        "p99_ms": result.latency_ms.p99,
        "p999_ms": result.latency_ms.p999,
        "max_ms": result.latency_ms.max,
        "spike_p99_ms": phases["spike"].latency.p99 if "spike" in phases else None,
        "baseline_p99_ms": phases["baseline"].latency.p99 if "baseline" in phases else None,
        "gaps": result.gaps,
        "errors": sum(result.protocol_errors.values()),
        "closes": sum(result.closes.values()),
        "reconnects": result.reconnects,
        "connect_failures": result.connect_failures,
        "rss_growth_pct": server.growth_pct,
        "rss_after_spike_pct": after_spike,
        "delivered_per_s": result.delivered_per_s,
        "connected_pct": result.connected_end / config.clients * 100 if config.clients else None,
    }


def _config_json(config: RunConfig) -> dict[str, Any]:
    hidden = {"jwt_secret", "objectives", "out", "extra"}
    out = {
        name: getattr(config, name) for name in config.__dataclass_fields__ if name not in hidden
    }
    out["objectives"] = [f"{o.name}{o.op}{o.limit:g}" for o in config.objectives]
    out["out"] = str(config.out)
    return out
