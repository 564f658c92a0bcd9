"""``python -m load_tests.bench orders`` and ``... ledger``: the order path's figures.

``orders`` starts each deployment in turn (``embedded``: ``tickgate run``
on its inbox and SQLite ledger; ``kafka``: the split deployment, the API
producing to a Tansu broker and ``tickgate ledger run`` on PostgreSQL),
then drives ``POST /v1/orders`` open-loop (``load_tests.orderstorm``) with
a share of duplicate keys at rising offered rates. At each rate it runs
``--repeat`` times and reports the median and range of accepted/s,
replays/s and the latency percentiles; the sustainable rate is the highest
rate of the ladder, before the first miss, whose median p99 is within
``--p99-limit-ms`` with no error.

``ledger`` reports, in one run: postings/s into PostgreSQL batched vs one
transaction per order (``python -m bench ledger``, a separate process: it
drives the ledger's store directly); end-to-end orders/s from submit to
the fill event, on the split deployment (the fill read from the Kafka
events topic) and on the embedded one (from the ``orders`` channel, its
only public event stream), with the p99 of submit-to-fill; and the p99 of
submit-to-fill on the ``orders`` channel at ``--channel-rate`` on both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from load_tests.deploy import Deployment, deployment
from load_tests.fills import FillMatcher, KafkaFillWatcher, WsFillWatcher
from load_tests.ordermix import build_schedule, spread, sustainable_rate
from load_tests.orderstorm import StormConfig, run_storm
from load_tests.result import Latency
from load_tests.stats import latency_of
from load_tests.tokens import mint_token

__all__ = [
    "add_ledger_arguments",
    "add_orders_arguments",
    "format_order_figures",
    "ledger_bench",
    "orders_bench",
]

TARGETS = {
    "orders_per_s_kafka_at_p99_25ms": 2_000.0,
    "ledger_batched_ratio": 10.0,
    "end_to_end_orders_per_s_postgres": 5_000.0,
    "channel_p99_ms_at_1000_per_s": 50.0,
}
_KINDS = {"embedded": "embedded", "kafka": "split"}


def _rates(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def add_orders_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rates", type=_rates, default=_rates("50,100,250,500,1000,1500,2000,3000,4000")
    )
    p.add_argument(
        "--target-rate",
        type=float,
        default=2_000.0,
        help="also run at this rate, whether or not the ladder reached it (0: do not)",
    )
    p.add_argument("--duration-s", type=float, default=6.0, help="length of each run")
    p.add_argument("--repeat", type=int, default=3, help="runs per rate")
    p.add_argument("--duplicate-share", type=float, default=0.3)
    p.add_argument("--p99-limit-ms", type=float, default=25.0)
    p.add_argument(
        "--deployments", default="embedded,kafka", help="comma-separated: embedded, kafka"
    )
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--accounts", type=int, default=200)
    p.add_argument("--tick-rate", type=float, default=500.0, help="the simulator's ticks/s")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", help="keep the deployments' logs here")


def add_ledger_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rates", type=_rates, default=_rates("100,250,500,1000,2000,5000"))
    p.add_argument("--duration-s", type=float, default=6.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument(
        "--fill-p99-limit-ms",
        type=float,
        default=1_000.0,
        help="a rate is sustained while every order fills and the fill p99 stays within this",
    )
    p.add_argument("--channel-rate", type=float, default=1_000.0)
    p.add_argument("--deployments", default="kafka,embedded")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--accounts", type=int, default=200)
    p.add_argument("--tick-rate", type=float, default=500.0)
    p.add_argument("--skip-postings", action="store_true", help="skip python -m bench ledger")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out")


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, file=sys.stderr, flush=True)  # noqa: T201 - progress of a long benchmark


def _work(args: argparse.Namespace, prefix: str) -> Path:
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    return work


def _token(dep: Deployment) -> str:
    return mint_token(
        dep.secret,
        subject=f"bench-{uuid.uuid4().hex[:8]}",
        accounts=["*"],
        scope="orders:write orders:read",
        issuer="tickgate",
    )


def _ws_token(dep: Deployment) -> str:
    return mint_token(
        dep.secret, subject="bench-reader", accounts=dep.accounts, scope="read", issuer="tickgate"
    )


async def _storm(
    dep: Deployment,
    token: str,
    rate: float,
    args: argparse.Namespace,
    *,
    duplicate_share: float,
    seed: int,
    on_accepted: Callable[[str, int], None] | None = None,
    duration_s: float | None = None,
) -> dict[str, Any]:
    schedule = build_schedule(
        rate, duration_s or args.duration_s, duplicate_share=duplicate_share, seed=seed
    )
    result = await run_storm(
        StormConfig(
            api_url=dep.api_url,
            token=token,
            schedule=schedule,
            accounts=dep.accounts,
            key_prefix=uuid.uuid4().hex,
            connections=args.connections,
            on_accepted=on_accepted,
        )
    )
    return result.figures()


def _summary(runs: Sequence[dict[str, Any]], rate: float) -> dict[str, Any]:
    def values(*path: str) -> list[float | None]:
        out = []
        for run in runs:
            value: Any = run
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            out.append(value)
        return out

    return {
        "offered_per_s": rate,
        "accepted_per_s": spread(values("accepted_per_s")).as_dict(),
        "replayed_per_s": spread(values("replayed_per_s")).as_dict(),
        "p50_ms": spread(values("latency_ms", "p50")).as_dict(),
        "p99_ms": spread(values("latency_ms", "p99")).as_dict(),
        "p999_ms": spread(values("latency_ms", "p999")).as_dict(),
        "errors": [run["errors"] for run in runs],
        "in_progress": [run["outcomes"].get("in_progress", 0) for run in runs],
        "send_lag_p99_ms": spread(values("send_lag_ms", "p99")).as_dict(),
        "generator_cpu_pct": spread(values("generator_cpu_pct")).as_dict(),
        "codes": [run["codes"] for run in runs if run["codes"]],
        "first_error": next((run["first_error"] for run in runs if run["first_error"]), None),
    }


async def orders_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run the ``orders`` benchmark; return its figures."""
    work = _work(args, "tickgate-orderbench-")
    load_start = os.getloadavg()
    results: dict[str, Any] = {}
    for name in (n.strip() for n in args.deployments.split(",") if n.strip()):
        kind = _KINDS[name]
        _say(args, f"== {name}: starting the {kind} deployment")
        with deployment(kind, work / name, accounts=args.accounts, tick_rate=args.tick_rate) as dep:
            token = _token(dep)
            # A warm-up: connections, caches and the first fills, outside the figures.
            await _storm(
                dep, token, 50.0, args, duplicate_share=args.duplicate_share, seed=0, duration_s=2
            )
            steps = []
            for rate in args.rates:
                runs = []
                for n in range(args.repeat):
                    runs.append(
                        await _storm(
                            dep, token, rate, args, duplicate_share=args.duplicate_share, seed=n + 1
                        )
                    )
                    _say(args, f"   {name} {rate:,.0f}/s run {n + 1}: {_line(runs[-1])}")
                step = _summary(runs, rate)
                step["holds"] = (
                    step["p99_ms"]["median"] is not None
                    and step["p99_ms"]["median"] <= args.p99_limit_ms
                    and not any(step["errors"])
                )
                steps.append(step)
                if not step["holds"]:
                    break
            at_target = None
            if args.target_rate and all(s["offered_per_s"] != args.target_rate for s in steps):
                runs = []
                for n in range(args.repeat):
                    runs.append(
                        await _storm(
                            dep,
                            token,
                            args.target_rate,
                            args,
                            duplicate_share=args.duplicate_share,
                            seed=n + 1,
                        )
                    )
                    _say(
                        args, f"   {name} {args.target_rate:,.0f}/s run {n + 1}: {_line(runs[-1])}"
                    )
                at_target = _summary(runs, args.target_rate)
        results[name] = {
            "steps": steps,
            "at_target_rate": at_target,
            "sustainable_per_s": sustainable_rate(
                [(s["offered_per_s"], s["p99_ms"]["median"], not any(s["errors"])) for s in steps],
                args.p99_limit_ms,
            ),
        }
    kafka = results.get("kafka", {}).get("sustainable_per_s")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "cpus": os.cpu_count(),
        "duration_s": args.duration_s,
        "repeat": args.repeat,
        "duplicate_share": args.duplicate_share,
        "p99_limit_ms": args.p99_limit_ms,
        "deployments": results,
        "targets": {
            "orders_per_s_kafka_at_p99_25ms": {
                "target": TARGETS["orders_per_s_kafka_at_p99_25ms"],
                "actual": kafka,
                "met": kafka is not None
                and kafka >= TARGETS["orders_per_s_kafka_at_p99_25ms"]
                and args.p99_limit_ms <= 25.0,
            }
        },
        "work_dir": str(work),
    }


def _line(run: dict[str, Any]) -> str:
    latency = run["latency_ms"]
    return (
        f"accepted {run['accepted_per_s']:,.0f}/s, replayed {run['replayed_per_s']:,.0f}/s, "
        f"p50 {latency['p50']} p99 {latency['p99']} p999 {latency['p999']} ms, "
        f"errors {run['errors']}, in progress {run['outcomes'].get('in_progress', 0)}"
    )


def _postings(args: argparse.Namespace) -> dict[str, Any] | None:
    # bench/ imports the ledger's packages; load_tests must not, so it is a child process.
    root = Path(__file__).resolve().parent.parent
    if not (root / "bench" / "ledger.py").exists():
        return None
    done = subprocess.run(
        [sys.executable, "-m", "bench", "ledger", "--json"],
        cwd=root,
        capture_output=True,
        check=True,
        timeout=1800,
    )
    figures: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return figures


async def _fill_run(
    dep: Deployment,
    token: str,
    rate: float,
    args: argparse.Namespace,
    *,
    seed: int,
    channel: str,
) -> dict[str, Any]:
    matcher = FillMatcher()
    watcher: KafkaFillWatcher | WsFillWatcher
    if channel == "kafka":
        assert dep.kafka_bootstrap is not None
        assert dep.events_topic is not None
        watcher = KafkaFillWatcher(dep.kafka_bootstrap, dep.events_topic, matcher)
    else:
        watcher = WsFillWatcher(dep.ws_url, _ws_token(dep), dep.accounts, matcher)
    await watcher.start()
    try:
        start = time.monotonic_ns()
        storm = await _storm(
            dep, token, rate, args, duplicate_share=0.0, seed=seed, on_accepted=matcher.accepted
        )
        await matcher.wait_settled(timeout_s=30.0)
    finally:
        await watcher.stop()
    latency: Latency = latency_of(matcher.latency)
    fill_span_s = (matcher.last_fill_ns - start) / 1e9 if matcher.last_fill_ns else None
    return {
        "accepted_per_s": storm["accepted_per_s"],
        "submit_p99_ms": storm["latency_ms"]["p99"],
        "errors": storm["errors"],
        "filled": matcher.filled,
        "rejected": matcher.rejected,
        "unfilled": len(matcher.pending),
        # Fills over the time from the first send to the last fill: a backlog stretches it.
        "filled_per_s": round(matcher.filled / fill_span_s, 1) if fill_span_s else 0.0,
        "fill_p50_ms": latency.p50,
        "fill_p99_ms": latency.p99,
        "fill_p999_ms": latency.p999,
    }


def _fill_summary(runs: Sequence[dict[str, Any]], rate: float) -> dict[str, Any]:
    return {
        "offered_per_s": rate,
        "filled_per_s": spread([r["filled_per_s"] for r in runs]).as_dict(),
        "fill_p50_ms": spread([r["fill_p50_ms"] for r in runs]).as_dict(),
        "fill_p99_ms": spread([r["fill_p99_ms"] for r in runs]).as_dict(),
        "submit_p99_ms": spread([r["submit_p99_ms"] for r in runs]).as_dict(),
        "unfilled": [r["unfilled"] for r in runs],
        "rejected": [r["rejected"] for r in runs],
        "errors": [r["errors"] for r in runs],
    }


async def ledger_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run the ``ledger`` benchmark; return its figures."""
    work = _work(args, "tickgate-ledgerbench-")
    load_start = os.getloadavg()
    postings = None
    if not args.skip_postings:
        _say(args, "== postings/s: python -m bench ledger")
        postings = _postings(args)
    end_to_end: dict[str, Any] = {}
    for name in (n.strip() for n in args.deployments.split(",") if n.strip()):
        kind = _KINDS[name]
        channel = "kafka" if kind == "split" else "ws"
        _say(args, f"== {name}: starting the {kind} deployment")
        with deployment(kind, work / name, accounts=args.accounts, tick_rate=args.tick_rate) as dep:
            token = _token(dep)
            await _storm(dep, token, 50.0, args, duplicate_share=0.0, seed=0, duration_s=2)
            steps = []
            for rate in args.rates:
                runs = []
                for n in range(args.repeat):
                    runs.append(
                        await _fill_run(dep, token, rate, args, seed=n + 1, channel=channel)
                    )
                    _say(args, f"   {name} {rate:,.0f}/s run {n + 1}: {runs[-1]}")
                step = _fill_summary(runs, rate)
                p99 = step["fill_p99_ms"]["median"]
                step["holds"] = (
                    p99 is not None
                    and p99 <= args.fill_p99_limit_ms
                    and not any(step["unfilled"])
                    and not any(step["errors"])
                )
                steps.append(step)
                if not step["holds"]:
                    break
            sustained = [s for s in steps if s["holds"]]
            channel_runs = []
            for n in range(args.repeat):
                channel_runs.append(
                    await _fill_run(dep, token, args.channel_rate, args, seed=n + 11, channel="ws")
                )
                _say(args, f"   {name} orders channel run {n + 1}: {channel_runs[-1]}")
        end_to_end[name] = {
            "fill_event_from": "kafka" if channel == "kafka" else "orders channel",
            "steps": steps,
            "sustained_filled_per_s": sustained[-1]["filled_per_s"] if sustained else None,
            "sustained_at_offered_per_s": sustained[-1]["offered_per_s"] if sustained else None,
            "orders_channel": _fill_summary(channel_runs, args.channel_rate),
        }
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "cpus": os.cpu_count(),
        "postings": postings,
        "end_to_end": end_to_end,
        "targets": _ledger_targets(postings, end_to_end, args),
        "work_dir": str(work),
    }


def _ledger_targets(
    postings: dict[str, Any] | None, end_to_end: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    ratio = (postings or {}).get("postgres", {}).get("ratio")
    kafka = end_to_end.get("kafka", {})
    sustained = (kafka.get("sustained_filled_per_s") or {}).get("median")
    channel = {
        name: (e["orders_channel"]["fill_p99_ms"] or {}).get("median")
        for name, e in end_to_end.items()
    }
    return {
        "ledger_batched_ratio": {
            "target": TARGETS["ledger_batched_ratio"],
            "actual": ratio,
            "met": ratio is not None and ratio >= TARGETS["ledger_batched_ratio"],
        },
        "end_to_end_orders_per_s_postgres": {
            "target": TARGETS["end_to_end_orders_per_s_postgres"],
            "actual": sustained,
            "met": sustained is not None
            and sustained >= TARGETS["end_to_end_orders_per_s_postgres"],
        },
        "channel_p99_ms_at_1000_per_s": {
            "target": TARGETS["channel_p99_ms_at_1000_per_s"],
            "actual": channel,
            "met": args.channel_rate >= 1_000
            and bool(channel)
            and all(
                v is not None and v <= TARGETS["channel_p99_ms_at_1000_per_s"]
                for v in channel.values()
            ),
        },
    }


def _cell(spread_: dict[str, Any] | None, unit: str = "") -> str:
    if not spread_ or spread_.get("median") is None:
        return "-"
    return f"{spread_['median']:,.1f}{unit} ({spread_['min']:,.1f}-{spread_['max']:,.1f})"


def _order_step(step: dict[str, Any]) -> str:
    return (
        f"  offered {step['offered_per_s']:>7,.0f}/s  accepted {_cell(step['accepted_per_s'])}"
        f"  replayed {_cell(step['replayed_per_s'])}  p50 {_cell(step['p50_ms'])}"
        f"  p99 {_cell(step['p99_ms'])}  p999 {_cell(step['p999_ms'])} ms"
        f"  errors {step['errors']}{'' if step['holds'] else '  MISSED'}"
    )


def _fill_step(step: dict[str, Any]) -> str:
    return (
        f"  offered {step['offered_per_s']:>7,.0f}/s  filled {_cell(step['filled_per_s'])}"
        f"  fill p50 {_cell(step['fill_p50_ms'])}  p99 {_cell(step['fill_p99_ms'])} ms"
        f"  unfilled {step['unfilled']}{'' if step['holds'] else '  MISSED'}"
    )


def format_order_figures(figures: dict[str, Any]) -> str:
    """The figures of ``orders`` or ``ledger`` as text: median (range) per row."""
    load = figures["load_average"]
    lines = [
        f"{figures['date']}, {figures['cpus']} CPUs, load average "
        f"{load['start'][0]:.1f} at the start, {load['end'][0]:.1f} at the end"
    ]
    for name, result in figures.get("deployments", {}).items():
        lines.append(f"\n{name}: sustainable {result['sustainable_per_s']} orders/s")
        lines += [_order_step(step) for step in result["steps"]]
        if result.get("at_target_rate"):
            target = result["at_target_rate"]
            target["holds"] = (target["p99_ms"]["median"] or 1e9) <= figures["p99_limit_ms"]
            lines.append("  at the target rate:")
            lines.append(_order_step(target))
    postings = figures.get("postings")
    if postings:
        for store in ("postgres", "sqlite"):
            if store in postings:
                p = postings[store]
                lines.append(
                    f"\n{store} postings/s: one order per transaction "
                    f"{_cell(p['baseline_postings_per_s'])}, batches of {p['batch_size']} "
                    f"{_cell(p['batched_postings_per_s'])}: {p['ratio']}x"
                )
    for name, result in figures.get("end_to_end", {}).items():
        lines.append(
            f"\n{name} end to end (fill event from {result['fill_event_from']}): sustained "
            f"{_cell(result['sustained_filled_per_s'])} fills/s at "
            f"{result['sustained_at_offered_per_s']} offered"
        )
        lines += [_fill_step(step) for step in result["steps"]]
        channel = result["orders_channel"]
        lines.append(
            f"  orders channel at {channel['offered_per_s']:,.0f}/s: submit-to-fill p50 "
            f"{_cell(channel['fill_p50_ms'])}, p99 {_cell(channel['fill_p99_ms'])} ms, "
            f"unfilled {channel['unfilled']}"
        )
    for name, target in figures["targets"].items():
        state = "met" if target["met"] else "MISSED"
        lines.append(f"target {name} {target['target']:g}: {state} (actual {target['actual']})")
    return "\n".join(lines)
