"""``tickgate-load`` (also ``python -m load_tests``): load-test a deployment.

    tickgate-load fanout --url ws://127.0.0.1:8000/ws --clients 200 \\
        --symbols-per-client 20 --duration-s 60 --out runs/fanout --slo p99_ms=100,gaps=0

Scenarios: ``fanout`` (steady load), ``spike`` (baseline, a spike of
``--rate-multiplier`` x ticks and ``--vol-multiplier`` x volatility from
``--spike-at-s`` for ``--spike-s``, then recovery) and ``soak`` (a long
steady run watching the server's memory). Each writes ``result.json``,
``report.png`` and ``summary.md`` to ``--out``. ``orders`` is an order
storm against the order API (``load_tests/orderscenario.py``); it writes
``result.json`` and ``summary.md``.

Exit status: 0 when every objective holds, 1 when one is missed, 2 for a
usage error, 3 when the deployment cannot be reached or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop

from load_tests.orderscenario import (
    add_orders_scenario,
    check_orders_arguments,
    run_orders_scenario,
    write_orders_report,
)
from load_tests.report import write_report
from load_tests.run import RunConfig, run
from load_tests.slo import SloError, parse_slo

__all__ = ["main"]

SCENARIOS = ("fanout", "spike", "soak")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, was {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, was {text}")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], was {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tickgate-load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scenarios = parser.add_subparsers(dest="scenario", required=True)
    for name in SCENARIOS:
        sub = scenarios.add_parser(name, help=f"the {name} scenario")
        _common(sub)
        if name == "spike":
            _spike(sub)
    add_orders_scenario(scenarios.add_parser("orders", help="an order storm on the order API"))
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True, help="the WebSocket URL, e.g. ws://127.0.0.1:8000/ws")
    p.add_argument("--clients", type=_positive_int, required=True)
    p.add_argument("--symbols-per-client", type=_positive_int, default=20)
    p.add_argument("--duration-s", type=_positive_float, required=True)
    p.add_argument("--out", type=Path, required=True, help="directory for the report files")
    p.add_argument(
        "--slo", default="", help="objectives, e.g. p99_ms=100,gaps=0,delivered_per_s>=5000"
    )
    p.add_argument("--http-url", help="the HTTP base URL (default: from --url)")
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="client worker processes (default: one less than the CPUs)",
    )
    p.add_argument(
        "--ramp-per-s", type=_positive_float, default=500.0, help="new connections per second"
    )
    p.add_argument("--interval-s", type=_positive_float, default=1.0, help="sampling interval")
    p.add_argument(
        "--zipf-s", type=float, default=1.0, help="symbol popularity exponent (0 = uniform)"
    )
    p.add_argument(
        "--portfolio-share",
        type=_share,
        default=0.0,
        help="share of clients on the portfolio channel",
    )
    p.add_argument(
        "--accounts", type=_positive_int, default=1000, help="accounts to spread them over"
    )
    p.add_argument(
        "--account-format", default="DEMO-{:04d}", help="account id of the n-th account (from 1)"
    )
    secret = p.add_mutually_exclusive_group()
    secret.add_argument(
        "--jwt-secret-file", type=Path, help="the deployment's token signing secret"
    )
    secret.add_argument(
        "--jwt-secret-env", metavar="VAR", help="environment variable holding the secret"
    )
    p.add_argument("--issuer", default="tickgate")
    p.add_argument(
        "--slow-clients", type=int, default=0, help="clients that stop reading (deliberately slow)"
    )
    p.add_argument(
        "--server-pid", type=int, help="read the server's memory from /proc (a local server)"
    )
    p.add_argument(
        "--driver", choices=("none", "admin", "kafka"), help="what drives the ticks (see docs)"
    )
    p.add_argument("--kafka-bootstrap", help="brokers for --driver kafka")
    p.add_argument("--kafka-topic", default="md.ticks")
    p.add_argument(
        "--tick-rate", type=_positive_float, default=1000.0, help="ticks/s with --driver kafka"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def _spike(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spike-at-s", type=float, help="when the spike starts (default: a third in)")
    p.add_argument("--spike-s", type=_positive_float, help="how long it lasts (default: a third)")
    p.add_argument("--rate-multiplier", type=_positive_float, default=10.0)
    p.add_argument("--vol-multiplier", type=_positive_float, default=5.0)


def _secret(args: argparse.Namespace) -> str | None:
    if args.jwt_secret_file is not None:
        return str(args.jwt_secret_file.read_text(encoding="utf-8").strip())
    if args.jwt_secret_env is not None:
        value = os.environ.get(args.jwt_secret_env)
        if not value:
            raise ValueError(f"environment variable {args.jwt_secret_env} is not set")
        return value
    return None


def config_from(args: argparse.Namespace) -> RunConfig:
    """The run's configuration from parsed arguments; raises ``ValueError``/``SloError``."""
    spike = args.scenario == "spike"
    return RunConfig(
        scenario=args.scenario,
        url=args.url,
        clients=args.clients,
        symbols_per_client=args.symbols_per_client,
        duration_s=args.duration_s,
        out=args.out,
        objectives=parse_slo(args.slo),
        http_url=args.http_url.rstrip("/") if args.http_url else None,
        workers=args.workers,
        ramp_per_s=args.ramp_per_s,
        interval_s=args.interval_s,
        portfolio_share=args.portfolio_share,
        accounts=args.accounts,
        account_format=args.account_format,
        jwt_secret=_secret(args),
        issuer=args.issuer,
        zipf_s=args.zipf_s,
        seed=args.seed,
        slow_clients=args.slow_clients,
        server_pid=args.server_pid,
        progress=not args.no_progress,
        spike_at_s=args.spike_at_s if spike else None,
        spike_s=args.spike_s if spike else None,
        rate_multiplier=args.rate_multiplier if spike else 1.0,
        vol_multiplier=args.vol_multiplier if spike else 1.0,
        driver=args.driver or ("admin" if spike else "none"),
        kafka_bootstrap=args.kafka_bootstrap,
        kafka_topic=args.kafka_topic,
        tick_rate=args.tick_rate,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tickgate-load``."""
    args = _parser().parse_args(argv)
    if args.scenario == "orders":
        return _orders(args)
    try:
        config = config_from(args)
    except (ValueError, SloError, OSError) as e:
        print(f"tickgate-load: error: {e}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        result = asyncio.run(run(config))
    except (OSError, RuntimeError, ValueError) as e:
        print(f"\ntickgate-load: error: the run failed: {e}", file=sys.stderr)  # noqa: T201
        return 3
    write_report(result, config.out)
    latency = result.latency_ms
    print(  # noqa: T201  # the one-line outcome
        f"\n{config.scenario}: {result.delivered_per_s:,.0f} updates/s delivered, "
        f"p50 {latency.p50} ms, p99 {latency.p99} ms, p999 {latency.p999} ms, "
        f"{result.gaps} gaps; report in {config.out}"
    )
    for check in result.slo:
        if not check.ok:
            print(  # noqa: T201
                f"SLO missed: {check.name} {check.op} {check.limit:g} (was {check.actual})",
                file=sys.stderr,
            )
    return 0 if result.slo_ok else 1


def _orders(args: argparse.Namespace) -> int:
    try:
        check_orders_arguments(args)
        objectives = parse_slo(args.slo)
    except (ValueError, SloError) as e:
        print(f"tickgate-load: error: {e}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        result = uvloop.run(run_orders_scenario(args, objectives))
    except (OSError, RuntimeError, ValueError) as e:
        print(f"\ntickgate-load: error: the run failed: {e}", file=sys.stderr)  # noqa: T201
        return 3
    write_orders_report(result, args.out)
    latency = result["latency_ms"]
    print(  # noqa: T201  # the one-line outcome
        f"\norders: {result['accepted_per_s']:,.0f} accepted/s, "
        f"{result['replayed_per_s']:,.0f} replayed/s, p50 {latency['p50']} ms, "
        f"p99 {latency['p99']} ms, p999 {latency['p999']} ms, {result['errors']} errors; "
        f"report in {args.out}"
    )
    for check in result["slo"]:
        if not check["ok"]:
            print(  # noqa: T201
                f"SLO missed: {check['name']} {check['op']} {check['limit']:g} "
                f"(was {check['actual']})",
                file=sys.stderr,
            )
    return 0 if result["slo_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
