"""``python -m load_tests.bench churn``: the gateway's memory after clients come and go.

A reconnect storm is normal for a market-data gateway; memory it takes
must come back once the clients are gone. Each run starts a fresh
``tickgate run`` (the simulator, the default demo accounts) and measures
its resident set (``VmRSS`` from /proc):

1. ``start``: after a warm-up, with no client;
2. ``churn``: ``--cycles`` connect, subscribe, snapshot, disconnect cycles,
   ``--concurrency`` at a time; then idle again (``after_churn``);
3. ``watchers``: ``--watchers`` clients each watching one portfolio
   account for ``--watch-s``; then idle again (``after_watchers``).

The figure is each idle RSS against ``start`` in percent; the target is
within 20%. ``--runs`` runs, printed as median [min-max].
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect

from load_tests.deploy import free_port, healthy, process_logged, wait_for
from load_tests.tokens import mint_token

__all__ = ["add_churn_arguments", "churn_bench", "format_churn"]

TARGET_IDLE_RSS_PCT = 20.0
_SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "EURUSD", "GOOGL")


def add_churn_arguments(p: argparse.ArgumentParser) -> None:
    """The ``churn`` command's options."""
    p.add_argument("--cycles", type=int, default=50_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--watchers", type=int, default=200)
    p.add_argument(
        "--demo-accounts", type=int, default=1000, help="seeded accounts (at least --watchers)"
    )
    p.add_argument("--watch-s", type=float, default=20.0)
    p.add_argument("--warm-up-s", type=float, default=10.0)
    p.add_argument("--settle-s", type=float, default=10.0, help="idle time before each reading")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def rss_mb(pid: int) -> float:
    """The process's resident set in MB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def growth_pct(start: float, now: float) -> float:
    """``now`` against ``start``, in percent."""
    return (now - start) / start * 100


@contextmanager
def _gateway(
    work: Path, secret: str, demo_accounts: int
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = dict(os.environ) | {
        "TICKGATE_PORTFOLIO_DEMO_ACCOUNTS": str(demo_accounts),
        "TICKGATE_DATA_DIR": str(work / "data"),
        "TICKGATE_AUTH_JWT_SECRET": secret,
        "TICKGATE_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "gateway", "run", "--port", str(port)]
    command += ["--api-port", str(free_port())]
    log = work / "gateway.log"
    with process_logged(command, env, log) as process:
        http_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: healthy(http_url), "tickgate run", process, log)
        yield f"ws://127.0.0.1:{port}/ws", process


async def _cycle(ws_url: str, k: int) -> None:
    async with connect(ws_url, max_size=None, compression=None) as ws:  # ws_url has a token
        symbols = list(_SYMBOLS[: 1 + k % len(_SYMBOLS)])
        await ws.send(
            orjson.dumps({"op": "subscribe", "channel": "quotes", "symbols": symbols}).decode()
        )
        while True:  # the snapshot arrives in the frame after or with the ack
            frame = orjson.loads(await ws.recv())
            if any(m.get("type") == "snapshot" for m in frame):
                return


async def _churn(ws_url: str, cycles: int, concurrency: int) -> tuple[float, int]:
    next_cycle, failures = 0, 0

    async def worker() -> None:
        nonlocal next_cycle, failures
        while next_cycle < cycles:
            k, next_cycle = next_cycle, next_cycle + 1
            try:
                await asyncio.wait_for(_cycle(ws_url, k), 30)
            except Exception:  # a refused or timed-out cycle is counted, not fatal
                failures += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return cycles / (time.monotonic() - started), failures


async def _watch(ws_url: str, token: str, account: str, leave: asyncio.Event) -> None:
    async with connect(f"{ws_url}?token={token}", max_size=None, compression=None) as ws:
        await ws.send(
            orjson.dumps({"op": "subscribe", "channel": "portfolio", "account": account}).decode()
        )

        async def drain() -> None:
            async for _ in ws:
                pass

        reader = asyncio.create_task(drain())
        await leave.wait()
        reader.cancel()


async def _one_run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    secret = secrets.token_hex(32)
    with _gateway(work, secret, args.demo_accounts) as (ws_url, process):
        await asyncio.sleep(args.warm_up_s)
        start = rss_mb(process.pid)
        quotes_token = mint_token(
            secret, subject="churn", accounts=[], scope="quotes:read", issuer="tickgate"
        )
        cycles_per_s, failures = await _churn(
            f"{ws_url}?token={quotes_token}", args.cycles, args.concurrency
        )
        peak_churn = rss_mb(process.pid)
        await asyncio.sleep(args.settle_s)
        after_churn = rss_mb(process.pid)
        leave = asyncio.Event()
        accounts = [f"DEMO-{k + 1:04d}" for k in range(args.watchers)]
        tasks = [
            asyncio.create_task(
                _watch(
                    ws_url,
                    mint_token(
                        secret, subject=f"w{k}", accounts=[a], scope="read", issuer="tickgate"
                    ),
                    a,
                    leave,
                )
            )
            for k, a in enumerate(accounts)
        ]
        await asyncio.sleep(args.watch_s)
        watching = rss_mb(process.pid)
        leave.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(args.settle_s)
        after_watchers = rss_mb(process.pid)
    return {
        "start_mb": start,
        "churn_peak_mb": peak_churn,
        "after_churn_mb": after_churn,
        "watching_mb": watching,
        "after_watchers_mb": after_watchers,
        "after_churn_pct": growth_pct(start, after_churn),
        "after_watchers_pct": growth_pct(start, after_watchers),
        "cycles_per_s": cycles_per_s,
        "failed_cycles": failures,
    }


async def churn_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``--runs`` runs; return every run and, per figure, median, min and max."""
    load_start = os.getloadavg()[0]
    runs = []
    with tempfile.TemporaryDirectory(prefix="tickgate-churn-") as tmp:
        for k in range(args.runs):
            work = Path(tmp) / f"run{k}"
            work.mkdir()
            runs.append(await _one_run(args, work))
    summary = {
        key: {
            "median": statistics.median(r[key] for r in runs),
            "min": min(r[key] for r in runs),
            "max": max(r[key] for r in runs),
        }
        for key in runs[0]
    }
    worst = max(max(r["after_churn_pct"], r["after_watchers_pct"]) for r in runs)
    return {
        "cycles": args.cycles,
        "watchers": args.watchers,
        "runs": runs,
        "summary": summary,
        "target_idle_rss_pct": TARGET_IDLE_RSS_PCT,
        "target_met_every_run": worst <= TARGET_IDLE_RSS_PCT,
        "load_average": [load_start, os.getloadavg()[0]],
    }


def format_churn(result: dict[str, Any]) -> str:
    """The figures as lines of text: each as median [min-max] over the runs."""
    lines = [
        f"churn: {result['cycles']:,} cycles, then {result['watchers']} portfolio watchers, "
        f"{len(result['runs'])} runs; load average {result['load_average'][0]:.1f} at the "
        f"start, {result['load_average'][1]:.1f} at the end"
    ]
    for key, cell in result["summary"].items():
        lines.append(f"  {key:<20} {cell['median']:10.1f} [{cell['min']:.1f}-{cell['max']:.1f}]")
    verdict = "met" if result["target_met_every_run"] else "MISSED"
    lines.append(
        f"target: idle RSS within {result['target_idle_rss_pct']:.0f}% of the start "
        f"after churn and after the watchers, in every run: {verdict}"
    )
    return "\n".join(lines)
