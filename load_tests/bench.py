"""``python -m load_tests.bench``: the gateway against a naive server, under the same load.

    python -m load_tests.bench fanout [--json]
    python -m load_tests.bench capacity [--json]
    python -m load_tests.bench orders [--json]
    python -m load_tests.bench ledger [--json]

``fanout`` writes a synthetic universe (5,000 instruments), then for each
server in turn (``tickgate run`` on its simulator, and the naive baseline of
``load_tests/baselines/naive.py`` with its own generator) starts it on a
free port with the same tick rate, drives it with the same fleet (1,000
clients x 20 symbols) through the ``spike`` scenario (``--baseline-s`` at
20,000 ticks/s, ``--spike-s`` at 10x the rate and 3x the volatility, then
``--recovery-s``), and stops it. A third run puts ``--slow-clients``
deliberately slow clients into the gateway's fleet, to check that only they
are closed. It prints the figures of both and their ratios.

It then searches, for each server, the most updates/s it delivers with a
p99 within the baseline target (100 ms): the ``fanout`` scenario at rising
tick rates (``--probe-rates``) until the target is missed. That is the
comparison "at equal or better p99"; the ratio of the two is reported.

``capacity`` runs the ``fanout`` scenario on the gateway at growing client
counts and reports the largest at which the baseline targets hold (p99 at
most 100 ms, no gap, no close) in every run.

Every configuration runs ``--runs`` times (3), each on a fresh server, and
the figures are the median and the range (min-max) of the runs, never the
best one; a target counts as met only if it holds in every run. Besides
latency and throughput, each run reports the server's CPU-seconds per
million delivered updates (its ``/proc/<pid>/stat`` CPU time over the run,
all of its threads), the time from the first connection attempt until
every client had connected (clients ramp up at ``--ramp-per-s``) and the
longest any one client took to connect.

``orders`` and ``ledger`` measure the order path (``load_tests/orderbench.py``
describes them).

Servers run as separate processes, started with this interpreter; the
fleet's workers are separate processes too. Nothing is imported from the
gateway's packages: the gateway is started by its command line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import uvloop

from load_tests.churn import add_churn_arguments, churn_bench, format_churn
from load_tests.orderbench import (
    add_ledger_arguments,
    add_orders_arguments,
    format_order_figures,
    ledger_bench,
    orders_bench,
)
from load_tests.report import write_report
from load_tests.result import RunResult
from load_tests.run import RunConfig, run
from load_tests.universe import write_universe

__all__ = ["main"]

TARGETS = {
    "p99_ms_baseline": 100.0,
    "p99_ms_spike": 250.0,
    "rss_after_spike_pct": 10.0,
    "ratio_delivered": 3.0,
}


@dataclass(frozen=True, slots=True)
class Server:
    """A server process under test."""

    name: str
    ws_url: str
    http_url: str
    process: subprocess.Popen[bytes]
    secret: str | None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {timeout_s} s")


@contextmanager
def _server(
    name: str,
    args: argparse.Namespace,
    universe: Path,
    work: Path,
    *,
    tick_rate: float | None = None,
) -> Iterator[Server]:
    port = _free_port()
    rate = tick_rate if tick_rate is not None else args.tick_rate
    secret = secrets.token_hex(32)
    env = dict(os.environ)
    if name == "gateway":
        env |= {
            "TICKGATE_DATA_DIR": str(work / "gateway-data"),
            "TICKGATE_FEED_INSTRUMENTS_FILE": str(universe),
            "TICKGATE_SIMULATOR_TICK_RATE_PER_S": str(rate),
            "TICKGATE_AUTH_JWT_SECRET": secret,
            "TICKGATE_PORTFOLIO_DEMO_ACCOUNTS": "0",
            "TICKGATE_LOG_LEVEL": "WARNING",
        }
        # Its own order-API port too: the default (8001) may be taken on a
        # shared host, and the gateway stops when it cannot bind it.
        command = [
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--port",
            str(port),
            "--api-port",
            str(_free_port()),
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "load_tests.baselines.naive",
            "--port",
            str(port),
            "--instruments-file",
            str(universe),
            "--tick-rate",
            str(rate),
        ]
    log = (work / f"{name}.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    http_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(http_url, process)
        yield Server(name, f"ws://127.0.0.1:{port}/ws", http_url, process, secret)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cpu_s(pid: int) -> float | None:
    # utime + stime of every thread, in clock ticks (fields 14 and 15 of stat).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_per_million(cpu_s: float | None, delivered: int) -> float | None:
    return round(cpu_s / delivered * 1e6, 2) if cpu_s is not None and delivered else None


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure as its median and range over the runs (others from the first run)."""
    out: dict[str, Any] = {"runs": runs}
    for key, first in runs[0].items():
        values = [r.get(key) for r in runs]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if numbers and len(numbers) == len(values):
            out[key] = {
                "median": statistics.median(numbers),
                "min": min(numbers),
                "max": max(numbers),
            }
        elif all(isinstance(v, int | float) or v is None for v in values) and numbers:
            # Some runs lack the figure (a client never connected): the range
            # of the others, and how many lacked it.
            out[key] = {
                "median": statistics.median(numbers),
                "min": min(numbers),
                "max": max(numbers),
                "missing": len(values) - len(numbers),
            }
        else:
            out[key] = first
    return out


def _median(summary: dict[str, Any], key: str) -> Any:
    value = summary.get(key)
    return value["median"] if isinstance(value, dict) and "median" in value else value


def _worst(summary: dict[str, Any], key: str, *, high: bool = True) -> float | None:
    """The worst run's value (the largest when ``high``); None if a run lacked it."""
    value = summary.get(key)
    if not isinstance(value, dict) or value.get("missing"):
        return None
    return float(value["max"] if high else value["min"])


def _spike_config(args: argparse.Namespace, server: Server, out: Path, slow: int) -> RunConfig:
    duration = args.baseline_s + args.spike_s + args.recovery_s
    return RunConfig(
        scenario="spike",
        url=server.ws_url,
        http_url=server.http_url,
        clients=args.clients,
        symbols_per_client=args.symbols_per_client,
        duration_s=duration,
        out=out,
        workers=args.workers,
        jwt_secret=server.secret,
        slow_clients=slow,
        server_pid=server.process.pid,
        progress=not args.json,
        spike_at_s=float(args.baseline_s),
        spike_s=float(args.spike_s),
        rate_multiplier=args.rate_multiplier,
        vol_multiplier=args.vol_multiplier,
        driver="admin",
        ramp_per_s=args.ramp_per_s,
    )


def _figures(result: RunResult, peak_rss_mb: float | None, cpu_s: float | None) -> dict[str, Any]:
    phases = {p.name: p for p in result.phases}
    server = result.server
    after_pct = None
    if server.before_spike and server.after_spike is not None:
        after_pct = round((server.after_spike - server.before_spike) / server.before_spike * 100, 2)
    return {
        "delivered_per_s": result.delivered_per_s,
        "delivered_per_s_baseline": round(phases["baseline"].delivered_per_s, 1),
        "delivered_per_s_spike": round(phases["spike"].delivered_per_s, 1),
        "p50_ms_baseline": phases["baseline"].latency.p50,
        "p99_ms_baseline": phases["baseline"].latency.p99,
        "p999_ms_baseline": phases["baseline"].latency.p999,
        "p50_ms_spike": phases["spike"].latency.p50,
        "p99_ms_spike": phases["spike"].latency.p99,
        "p999_ms_spike": phases["spike"].latency.p999,
        "p99_ms_recovery": phases["recovery"].latency.p99,
        "gaps": result.gaps,
        "protocol_errors": sum(result.protocol_errors.values()),
        "slow_consumer_closes": sum(result.slow_closes.values()),
        "slow_close_codes": result.slow_closes,
        "other_closes": sum(result.closes.values()),
        "connected_max": result.connected_max,
        "connect_failures": result.connect_failures,
        "all_connected_s": result.all_connected_s,
        "max_connect_s": result.max_connect_s,
        "server_cpu_s": round(cpu_s, 2) if cpu_s is not None else None,
        "cpu_s_per_million": _cpu_per_million(cpu_s, result.delivered),
        "peak_rss_mb": round(peak_rss_mb, 1) if peak_rss_mb is not None else None,
        "rss_before_spike_mb": server.before_spike,
        "rss_after_spike_mb": server.after_spike,
        "rss_after_spike_pct": after_pct,
        "generator_cpu_pct": result.generator["cpu_pct"],
        "generator_limited": result.generator["limited"],
    }


async def _measure(
    name: str, args: argparse.Namespace, universe: Path, work: Path, *, slow: int = 0
) -> dict[str, Any]:
    runs = []
    for i in range(args.runs):
        label = f"{name}-slow" if slow else name
        label += f"-{i + 1}"
        if not args.json:
            print(f"\n== {label}", file=sys.stderr)  # noqa: T201
        with _server(name, args, universe, work) as server:
            cpu_before = _cpu_s(server.process.pid)
            result = await run(_spike_config(args, server, work / label, slow))
            cpu_after = _cpu_s(server.process.pid)
            peak = _peak_rss_mb(server.process.pid)
        write_report(result, work / label)
        cpu = cpu_after - cpu_before if cpu_after is not None and cpu_before is not None else None
        runs.append(_figures(result, peak, cpu))
    return _summary(runs)


async def _throughput_at_p99(
    name: str, args: argparse.Namespace, universe: Path, work: Path
) -> dict[str, Any]:
    # The most updates/s delivered with p99 within the baseline target: the
    # fanout scenario at rising tick rates until the target is missed.
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    for rate in args.probe_rates:
        if not args.json:
            print(f"\n== {name} at {rate:,.0f} ticks/s", file=sys.stderr)  # noqa: T201
        runs: list[dict[str, Any]] = []
        for i in range(args.runs):
            with _server(name, args, universe, work, tick_rate=rate) as server:
                result = await run(
                    RunConfig(
                        scenario="fanout",
                        url=server.ws_url,
                        http_url=server.http_url,
                        clients=args.clients,
                        symbols_per_client=args.symbols_per_client,
                        duration_s=args.probe_s,
                        out=work / f"{name}-probe-{rate:.0f}-{i + 1}",
                        workers=args.workers,
                        jwt_secret=server.secret,
                        server_pid=server.process.pid,
                        progress=not args.json,
                        ramp_per_s=args.ramp_per_s,
                    )
                )
            runs.append(
                {
                    "delivered_per_s": result.delivered_per_s,
                    "p99_ms": result.latency_ms.p99,
                    "gaps": result.gaps,
                    "closes": sum(result.closes.values()),
                    "connected_end": result.connected_end,
                }
            )
        summary = _summary(runs)
        p99 = _median(summary, "p99_ms")
        step: dict[str, Any] = {
            "tick_rate": rate,
            "delivered_per_s": _median(summary, "delivered_per_s"),
            "delivered_per_s_range": [
                summary["delivered_per_s"]["min"],
                summary["delivered_per_s"]["max"],
            ],
            "p99_ms": p99,
            "p99_ms_range": [summary["p99_ms"].get("min"), summary["p99_ms"].get("max")]
            if isinstance(summary["p99_ms"], dict)
            else [None, None],
            "gaps": sum(r["gaps"] for r in runs),
            "closes": sum(r["closes"] for r in runs),
            "connected_end": min(r["connected_end"] for r in runs),
        }
        # The median run's p99 within the target; no gap, close or missing
        # client in any run.
        step["holds"] = (
            p99 is not None
            and p99 <= TARGETS["p99_ms_baseline"]
            and step["gaps"] == 0
            and step["closes"] == 0
            and step["connected_end"] == args.clients
        )
        steps.append(step)
        if not step["holds"]:
            break
        best = step
    return {
        "max_delivered_per_s": best["delivered_per_s"] if best else 0.0,
        "at_tick_rate": best["tick_rate"] if best else None,
        "steps": steps,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


async def _fanout(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="tickgate-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    universe = work / "instruments.csv"
    write_universe(universe, args.instruments)
    gateway = await _measure("gateway", args, universe, work)
    baseline = await _measure("baseline", args, universe, work)
    slow = await _measure("gateway", args, universe, work, slow=args.slow_clients)

    def m(summary: dict[str, Any], key: str) -> Any:
        return _median(summary, key)

    def worst(summary: dict[str, Any], key: str) -> float:
        value = _worst(summary, key)
        return 1e9 if value is None else value

    ratio_delivered = _ratio(m(gateway, "delivered_per_s"), m(baseline, "delivered_per_s"))
    at_p99: dict[str, Any] | None = None
    if args.probe_rates:
        gateway_probe = await _throughput_at_p99("gateway", args, universe, work)
        baseline_probe = await _throughput_at_p99("baseline", args, universe, work)
        at_p99 = {
            "p99_ms_limit": TARGETS["p99_ms_baseline"],
            "gateway": gateway_probe,
            "baseline": baseline_probe,
            "ratio": _ratio(
                gateway_probe["max_delivered_per_s"], baseline_probe["max_delivered_per_s"]
            ),
        }
    # Every target must hold in every run: the worst run decides.
    rss_worst = max(
        (abs(r["rss_after_spike_pct"]) for r in gateway["runs"] if r["rss_after_spike_pct"]),
        default=None,
    )
    targets = {
        "p99_ms_baseline": worst(gateway, "p99_ms_baseline") <= TARGETS["p99_ms_baseline"],
        "p99_ms_spike": worst(gateway, "p99_ms_spike") <= TARGETS["p99_ms_spike"],
        "p99_ms_spike_with_slow_clients": worst(slow, "p99_ms_spike") <= TARGETS["p99_ms_spike"],
        "zero_gaps": worst(gateway, "gaps") == 0 and worst(slow, "gaps") == 0,
        "only_slow_clients_closed": worst(gateway, "other_closes") == 0
        and worst(slow, "other_closes") == 0
        and all(r["slow_consumer_closes"] == args.slow_clients for r in slow["runs"]),
        "rss_after_spike_within_10pct": all(
            r["rss_after_spike_pct"] is not None for r in gateway["runs"]
        )
        and (rss_worst or 0.0) <= TARGETS["rss_after_spike_pct"],
        "ratio_delivered_at_least_3": (ratio_delivered or 0) >= TARGETS["ratio_delivered"],
        "ratio_at_equal_p99_at_least_3": at_p99 is not None
        and (at_p99["ratio"] or 0) >= TARGETS["ratio_delivered"],
        "p99_equal_or_better": worst(gateway, "p99_ms_baseline")
        <= (m(baseline, "p99_ms_baseline") or 1e9)
        and worst(gateway, "p99_ms_spike") <= (m(baseline, "p99_ms_spike") or 1e9),
    }
    return {
        "load": {
            "clients": args.clients,
            "symbols_per_client": args.symbols_per_client,
            "instruments": args.instruments,
            "tick_rate": args.tick_rate,
            "baseline_s": args.baseline_s,
            "spike_s": args.spike_s,
            "recovery_s": args.recovery_s,
            "rate_multiplier": args.rate_multiplier,
            "vol_multiplier": args.vol_multiplier,
            "workers": args.workers,
            "ramp_per_s": args.ramp_per_s,
            "runs": args.runs,
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg()[0],
        },
        "gateway": gateway,
        "baseline": baseline,
        "gateway_with_slow_clients": slow | {"slow_clients": args.slow_clients},
        "ratio_delivered": ratio_delivered,
        "ratio_delivered_baseline_phase": _ratio(
            m(gateway, "delivered_per_s_baseline"), m(baseline, "delivered_per_s_baseline")
        ),
        "ratio_delivered_spike_phase": _ratio(
            m(gateway, "delivered_per_s_spike"), m(baseline, "delivered_per_s_spike")
        ),
        "ratio_p99_baseline": _ratio(m(baseline, "p99_ms_baseline"), m(gateway, "p99_ms_baseline")),
        "ratio_p99_spike": _ratio(m(baseline, "p99_ms_spike"), m(gateway, "p99_ms_spike")),
        "throughput_at_equal_p99": at_p99,
        "targets": targets,
        "work_dir": str(work),
    }


async def _capacity(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="tickgate-capacity-"))
    work.mkdir(parents=True, exist_ok=True)
    universe = work / "instruments.csv"
    write_universe(universe, args.instruments)
    steps = []
    best = None
    clients = args.start
    while clients <= args.max:
        runs = []
        for i in range(args.runs):
            with _server("gateway", args, universe, work) as server:
                config = RunConfig(
                    scenario="fanout",
                    url=server.ws_url,
                    http_url=server.http_url,
                    clients=clients,
                    symbols_per_client=args.symbols_per_client,
                    duration_s=args.duration_s,
                    out=work / f"fanout-{clients}-{i + 1}",
                    workers=args.workers,
                    jwt_secret=server.secret,
                    server_pid=server.process.pid,
                    progress=not args.json,
                    ramp_per_s=args.ramp_per_s,
                )
                cpu_before = _cpu_s(server.process.pid)
                result = await run(config)
                cpu_after = _cpu_s(server.process.pid)
            cpu = (
                cpu_after - cpu_before if cpu_after is not None and cpu_before is not None else None
            )
            runs.append(
                {
                    "delivered_per_s": result.delivered_per_s,
                    "p50_ms": result.latency_ms.p50,
                    "p99_ms": result.latency_ms.p99,
                    "gaps": result.gaps,
                    "closes": sum(result.closes.values()),
                    "connected_end": result.connected_end,
                    "all_connected_s": result.all_connected_s,
                    "max_connect_s": result.max_connect_s,
                    "cpu_s_per_million": _cpu_per_million(cpu, result.delivered),
                    "generator_cpu_pct": result.generator["cpu_pct"],
                    "generator_limited": result.generator["limited"],
                    "targets_hold": result.latency_ms.p99 is not None
                    and result.latency_ms.p99 <= TARGETS["p99_ms_baseline"]
                    and result.gaps == 0
                    and not result.closes
                    and result.connected_end == clients,
                }
            )
        holds = all(r["targets_hold"] for r in runs)
        steps.append({"clients": clients, "targets_hold": holds, **_summary(runs)})
        if not holds:
            break
        best = clients
        clients += args.step
    return {
        "capacity_clients": best,
        "tick_rate": args.tick_rate,
        "symbols_per_client": args.symbols_per_client,
        "steps": steps,
        "work_dir": str(work),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m load_tests.bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("fanout", "capacity"):
        p = commands.add_parser(name)
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument("--symbols-per-client", type=int, default=20)
        p.add_argument("--instruments", type=int, default=5000)
        p.add_argument("--tick-rate", type=float, default=20_000.0)
        p.add_argument("--workers", type=int, default=2)
        p.add_argument("--runs", type=int, default=3, help="runs of each configuration")
        p.add_argument(
            "--ramp-per-s", type=float, default=500.0, help="clients starting per second"
        )
        p.add_argument("--out", help="keep the runs' reports here (default: a temporary directory)")
    fanout = commands.choices["fanout"]
    fanout.add_argument("--clients", type=int, default=1000)
    fanout.add_argument("--baseline-s", type=float, default=20.0)
    fanout.add_argument("--spike-s", type=float, default=10.0)
    fanout.add_argument("--recovery-s", type=float, default=10.0)
    fanout.add_argument("--rate-multiplier", type=float, default=10.0)
    fanout.add_argument("--vol-multiplier", type=float, default=3.0)
    fanout.add_argument("--slow-clients", type=int, default=5)
    fanout.add_argument(
        "--probe-rates",
        type=lambda text: [float(x) for x in text.split(",") if x],
        default=[
            5_000.0,
            10_000.0,
            20_000.0,
            25_000.0,
            30_000.0,
            40_000.0,
            60_000.0,
            80_000.0,
            100_000.0,
            120_000.0,
        ],
        help="tick rates for the throughput-at-equal-p99 search ('' to skip it)",
    )
    fanout.add_argument("--probe-s", type=float, default=15.0)
    capacity = commands.choices["capacity"]
    capacity.add_argument("--start", type=int, default=1000)
    capacity.add_argument("--step", type=int, default=500)
    capacity.add_argument("--max", type=int, default=5000)
    capacity.add_argument("--duration-s", type=float, default=20.0)
    add_orders_arguments(commands.add_parser("orders", help="the order API, open-loop"))
    add_ledger_arguments(commands.add_parser("ledger", help="postings/s and submit-to-fill"))
    add_churn_arguments(commands.add_parser("churn", help="memory after client churn"))
    return parser


def _print_fanout(result: dict[str, Any]) -> None:
    rows = (
        "delivered_per_s",
        "delivered_per_s_baseline",
        "delivered_per_s_spike",
        "p50_ms_baseline",
        "p99_ms_baseline",
        "p999_ms_baseline",
        "p50_ms_spike",
        "p99_ms_spike",
        "p999_ms_spike",
        "gaps",
        "slow_consumer_closes",
        "other_closes",
        "connected_max",
        "connect_failures",
        "all_connected_s",
        "max_connect_s",
        "cpu_s_per_million",
        "peak_rss_mb",
        "rss_before_spike_mb",
        "rss_after_spike_mb",
        "rss_after_spike_pct",
    )
    load = result["load"]
    lines = [
        f"{load['runs']} runs of each; median [min-max]; load average {load['load_average']:.1f}",
        f"{'':26}{'gateway':>26}{'baseline':>26}{'gw + slow':>26}",
    ]
    for row in rows:
        cells = [result[k].get(row) for k in ("gateway", "baseline", "gateway_with_slow_clients")]
        lines.append(f"{row:26}" + "".join(f"{_range_cell(c):>26}" for c in cells))
    lines.append(
        f"ratio delivered: {result['ratio_delivered']} (baseline phase "
        f"{result['ratio_delivered_baseline_phase']}, spike phase "
        f"{result['ratio_delivered_spike_phase']})"
    )
    lines.append(
        f"ratio p99 (naive / gateway): baseline {result['ratio_p99_baseline']}, "
        f"spike {result['ratio_p99_spike']}"
    )
    at_p99 = result["throughput_at_equal_p99"]
    if at_p99 is not None:
        lines.append(
            f"most updates/s with p99 <= {at_p99['p99_ms_limit']:g} ms: gateway "
            f"{at_p99['gateway']['max_delivered_per_s']:,.0f} "
            f"(at {at_p99['gateway']['at_tick_rate']} ticks/s), baseline "
            f"{at_p99['baseline']['max_delivered_per_s']:,.0f} "
            f"(at {at_p99['baseline']['at_tick_rate']} ticks/s): ratio {at_p99['ratio']}"
        )
    lines += [
        f"target {name}: {'met' if ok else 'MISSED'}" for name, ok in result["targets"].items()
    ]
    print("\n".join(lines))  # noqa: T201


def _range_cell(value: object) -> str:
    if isinstance(value, dict) and "median" in value:
        text = f"{_cell(value['median'])} [{_cell(value['min'])}-{_cell(value['max'])}]"
        return text + (f" ({value['missing']} none)" if value.get("missing") else "")
    return _cell(value)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m load_tests.bench``."""
    args = _parser().parse_args(argv)
    if args.command == "churn":
        churn = asyncio.run(churn_bench(args))
        print(orjson.dumps(churn).decode() if args.json else format_churn(churn))  # noqa: T201
        return 0
    if args.command in ("orders", "ledger"):
        bench = orders_bench if args.command == "orders" else ledger_bench
        figures = uvloop.run(bench(args))
        if args.json:
            print(orjson.dumps(figures).decode())  # noqa: T201
        else:
            print(format_order_figures(figures))  # noqa: T201
        return 0
    if args.command == "fanout":
        result = asyncio.run(_fanout(args))
        if args.json:
            print(orjson.dumps(result).decode())  # noqa: T201
        else:
            _print_fanout(result)
    else:
        result = asyncio.run(_capacity(args))
        if args.json:
            print(orjson.dumps(result).decode())  # noqa: T201
        else:
            for step in result["steps"]:
                cells = ", ".join(
                    f"{k} {_range_cell(step[k])}"
                    for k in ("p99_ms", "delivered_per_s", "all_connected_s", "cpu_s_per_million")
                )
                verdict = "hold" if step["targets_hold"] else "MISSED"
                print(f"{step['clients']} clients: {cells}; targets {verdict}")  # noqa: T201
            print(f"capacity: {result['capacity_clients']} clients")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
