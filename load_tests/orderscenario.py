"""``tickgate-load orders``: an order storm against the order API, optionally during a spike.

    tickgate-load orders --api-url http://127.0.0.1:8001 --rate 500 --duration-s 30 \\
        --jwt-secret-file ~/.local/share/tickgate/dev-jwt-secret --out runs/orders \\
        --slo p99_ms=25,errors=0

The storm is open-loop (``load_tests.orderstorm``): ``--rate`` requests per
second on a fixed schedule, ``--duplicate-share`` of them repeating an
earlier key and body as a client's retry does. Orders are one lot at
market of liquid USD equities, from the first ``--accounts`` accounts
(``--account-format``) that hold enough USD to buy. With ``--spike`` the
deployment's simulator is spiked (``POST /admin/spike`` on ``--http-url``)
from ``--spike-at-s`` for ``--spike-s``, so the storm meets a busy market.

It writes ``result.json`` and ``summary.md`` to ``--out``. The objectives
that apply: ``p50_ms``, ``p99_ms``, ``p999_ms``, ``max_ms`` (submit latency,
from the scheduled send to the answer), ``errors`` (answers other than an
acceptance, a replay or a 409 of a duplicate still in flight, and requests
with no answer), ``accepted_per_s`` and ``replayed_per_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from load_tests.drivers import AdminDriver
from load_tests.ordermix import build_schedule
from load_tests.orderstorm import StormConfig, run_storm
from load_tests.slo import Objective, evaluate
from load_tests.tokens import mint_token

__all__ = ["add_orders_scenario", "run_orders_scenario"]

_MIN_USD = Decimal(100_000)


def add_orders_scenario(p: argparse.ArgumentParser) -> None:
    """The ``orders`` scenario's options."""
    p.add_argument("--api-url", required=True, help="the order API, e.g. http://127.0.0.1:8001")
    p.add_argument("--rate", type=float, required=True, help="requests per second, open-loop")
    p.add_argument("--duration-s", type=float, required=True)
    p.add_argument("--out", type=Path, required=True, help="directory for the report files")
    p.add_argument("--slo", default="", help="objectives, e.g. p99_ms=25,errors=0")
    p.add_argument("--duplicate-share", type=float, default=0.3)
    p.add_argument("--accounts", type=int, default=50, help="accounts the orders are spread over")
    p.add_argument("--account-format", default="DEMO-{:04d}")
    p.add_argument(
        "--max-candidates", type=int, default=1000, help="accounts to look at for USD cash"
    )
    p.add_argument("--connections", type=int, default=64, help="keep-alive connections")
    p.add_argument("--timeout-s", type=float, default=10.0, help="a request's longest wait")
    secret = p.add_mutually_exclusive_group(required=True)
    secret.add_argument("--jwt-secret-file", type=Path)
    secret.add_argument("--jwt-secret-env", metavar="VAR")
    p.add_argument("--issuer", default="tickgate")
    p.add_argument("--spike", action="store_true", help="spike the simulator during the storm")
    p.add_argument("--http-url", help="the gateway's HTTP URL, for --spike")
    p.add_argument("--spike-at-s", type=float, help="default: a third in")
    p.add_argument("--spike-s", type=float, help="default: a third of the run")
    p.add_argument("--rate-multiplier", type=float, default=10.0)
    p.add_argument("--vol-multiplier", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-progress", action="store_true", help="no lines on stderr")


def check_orders_arguments(args: argparse.Namespace) -> None:
    """Raise ``ValueError`` for values argparse alone cannot refuse."""
    if not args.rate > 0 or not args.duration_s > 0:
        raise ValueError("--rate and --duration-s must be positive")
    if not 0 <= args.duplicate_share < 1:
        raise ValueError(f"--duplicate-share must be within [0, 1), was {args.duplicate_share}")
    if args.accounts < 1 or args.connections < 1:
        raise ValueError("--accounts and --connections must be at least 1")
    if args.spike and not args.http_url:
        raise ValueError("--spike needs --http-url (the gateway's, for POST /admin/spike)")
    if not args.api_url.startswith("http://"):
        raise ValueError(f"--api-url must be http://host:port, was {args.api_url!r}")


def _secret(args: argparse.Namespace) -> str:
    if args.jwt_secret_file is not None:
        return str(args.jwt_secret_file.read_text(encoding="utf-8").strip())
    value = os.environ.get(args.jwt_secret_env)
    if not value:
        raise ValueError(f"environment variable {args.jwt_secret_env} is not set")
    return value


def usd_accounts(api_url: str, token: str, names: list[str], want: int) -> list[str]:
    """The first ``want`` of ``names`` whose available USD is at least 100,000."""
    chosen: list[str] = []
    for account in names:
        request = urllib.request.Request(  # noqa: S310 - the deployment under test
            f"{api_url}/v1/accounts/{account}/balances",
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                balances = json.loads(response.read())["balances"]
        except urllib.error.HTTPError as e:
            if e.code == 404:  # no such account: the candidates ran out
                break
            raise OSError(f"GET {request.full_url}: {e.code}") from e
        usd = [b for b in balances if b["currency"] == "USD"]
        if usd and Decimal(usd[0]["available"]) >= _MIN_USD:
            chosen.append(account)
            if len(chosen) == want:
                break
    return chosen


async def run_orders_scenario(
    args: argparse.Namespace, objectives: tuple[Objective, ...]
) -> dict[str, Any]:
    """Run the storm; return the result (``slo_ok`` says whether every objective held)."""
    secret = _secret(args)
    api_url = args.api_url.rstrip("/")
    token = mint_token(
        secret,
        subject=f"load-{uuid.uuid4().hex[:8]}",
        accounts=["*"],
        scope="orders:write orders:read",
        issuer=args.issuer,
    )
    candidates = [args.account_format.format(n) for n in range(1, args.max_candidates + 1)]
    accounts = await asyncio.to_thread(usd_accounts, api_url, token, candidates, args.accounts)
    if not accounts:
        raise RuntimeError("no account holds USD to trade with")
    schedule = build_schedule(
        args.rate, args.duration_s, duplicate_share=args.duplicate_share, seed=args.seed
    )
    config = StormConfig(
        api_url=api_url,
        token=token,
        schedule=schedule,
        accounts=accounts,
        key_prefix=uuid.uuid4().hex,
        connections=args.connections,
        timeout_s=args.timeout_s,
    )
    driver = None
    spike_task = None
    if args.spike:
        admin = mint_token(
            secret, subject="load-admin", accounts=[], scope="admin", issuer=args.issuer
        )
        driver = AdminDriver(args.http_url.rstrip("/"), admin)
        spike_at = args.spike_at_s if args.spike_at_s is not None else args.duration_s / 3
        spike_s = args.spike_s if args.spike_s is not None else args.duration_s / 3

        async def spike() -> None:
            await asyncio.sleep(spike_at)  # the spike's place in the run, not a synchronisation
            await driver.spike(spike_s, args.rate_multiplier, args.vol_multiplier)

        spike_task = asyncio.get_running_loop().create_task(spike())
    try:
        result = await run_storm(config)
    finally:
        if spike_task is not None:
            spike_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await spike_task
    figures = result.figures()
    latency = figures["latency_ms"]
    assert isinstance(latency, dict)
    actuals = {
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        "p999_ms": latency["p999"],
        "max_ms": latency["max"],
        "errors": figures["errors"],
        "accepted_per_s": figures["accepted_per_s"],
        "replayed_per_s": figures["replayed_per_s"],
    }
    checks = evaluate(objectives, actuals)
    return {
        "scenario": "orders",
        "api_url": api_url,
        "rate": args.rate,
        "duration_s": args.duration_s,
        "duplicate_share": args.duplicate_share,
        "accounts": len(accounts),
        "connections": args.connections,
        **figures,
        "spike": driver.describe() if driver is not None else None,
        "slo": [asdict(check) for check in checks],
        "slo_ok": all(check.ok for check in checks),
    }


def write_orders_report(result: dict[str, Any], out: Path) -> None:
    """``result.json`` and ``summary.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    latency = result["latency_ms"]
    lines = [
        "# tickgate-load orders",
        "",
        f"{result['rate']:g} requests/s for {result['duration_s']:g} s against "
        f"{result['api_url']}, {result['duplicate_share']:.0%} duplicate keys, "
        f"{result['accounts']} accounts, {result['connections']} connections.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| offered | {result['offered']} ({result['offered_per_s']:g}/s) |",
        f"| accepted/s | {result['accepted_per_s']:g} |",
        f"| replayed/s | {result['replayed_per_s']:g} |",
        f"| latency p50 / p99 / p999 / max (ms) | {latency['p50']} / {latency['p99']} / "
        f"{latency['p999']} / {latency['max']} |",
        f"| errors | {result['errors']} |",
        f"| outcomes | {result['outcomes']} |",
        f"| problem codes | {result['codes'] or '-'} |",
        f"| generator CPU | {result['generator_cpu_pct']}% |",
    ]
    if result["slo"]:
        lines += ["", "| objective | limit | actual | |", "|---|---|---|---|"]
        lines += [
            f"| {c['name']} | {c['op']} {c['limit']:g} | {c['actual']} | "
            f"{'PASS' if c['ok'] else 'FAIL'} |"
            for c in result["slo"]
        ]
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
