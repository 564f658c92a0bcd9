"""The ``tickgate`` command: run, api, ledger, token, instruments, spike."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING

# ``token`` and ``spike`` need only settings and a signing key, so nothing
# heavier is imported here: the server (uvicorn, Starlette, the engine with
# numpy and scipy) and the instrument master come with the commands that use them.
from gateway.auth import ADMIN_SCOPE, KNOWN_SCOPES, READ_SCOPE, issue_token
from gateway.devsecret import jwt_secret
from gateway.errors import GatewayError, SettingsError
from gateway.settings import Settings

if TYPE_CHECKING:
    from ledger.store import DeadLetter

__all__ = ["EXIT_BROKEN_PIPE", "main", "parse_duration_s"]

_DESCRIPTION = (
    "Run the tickgate gateway, its order API and its ledger; operate the ledger; "
    "mint dev tokens, list instruments, trigger spikes."
)
# The exit status of a listing whose reader went away (`tickgate instruments |
# head`): 128 + SIGPIPE, what a shell tool killed by the closed pipe returns.
EXIT_BROKEN_PIPE = 141
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_s(text: str) -> float:
    """Parse ``90``, ``90s``, ``15m``, ``1h`` or ``2d`` into seconds."""
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"duration must look like 90s, 15m, 1h or 2d, was {text!r}"
        )
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def _service_flags(command: argparse.ArgumentParser) -> None:
    # What every command that runs part of the service accepts.
    feed = command.add_mutually_exclusive_group()
    feed.add_argument("--kafka", metavar="BOOTSTRAP", help="consume md.ticks from this Kafka")
    feed.add_argument("--upstream", metavar="URL", help="consume this vendor WebSocket feed")
    command.add_argument("--redis", metavar="URL", help="cache positions in this Redis")
    command.add_argument("--instruments", metavar="FILE", help="instrument master CSV to load")
    command.add_argument("--seed", help="simulator seed (TICKGATE_SIMULATOR_SEED)")
    command.add_argument(
        "--tick-rate", help="simulator ticks/s (TICKGATE_SIMULATOR_TICK_RATE_PER_S)"
    )
    command.add_argument(
        "--data-dir", help="where the dev secret and the ledger live (TICKGATE_DATA_DIR)"
    )
    command.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickgate", description=_DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="run the gateway, the order API and the ledger (embedded defaults)"
    )
    run.add_argument("--host", help="listen address (TICKGATE_HOST)")
    run.add_argument("--port", help="listen port (TICKGATE_PORT)")
    run.add_argument("--api-host", help="the order API's listen address (TICKGATE_API_HOST)")
    run.add_argument("--api-port", help="the order API's listen port (TICKGATE_API_PORT)")
    _service_flags(run)

    api = commands.add_parser("api", help="run the order API alone (a split deployment)")
    api.add_argument("--host", dest="api_host", help="listen address (TICKGATE_API_HOST)")
    api.add_argument("--port", dest="api_port", help="listen port (TICKGATE_API_PORT)")
    _service_flags(api)

    ledger = commands.add_parser("ledger", help="run or operate the ledger")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", required=True)
    ledger_run = ledger_commands.add_parser(
        "run", help="run the ledger service alone (Kafka commands; a split deployment)"
    )
    _service_flags(ledger_run)
    for name, text in (
        ("verify", "check the hash chain, every transaction's balance and every balance"),
        ("reconcile", "compare the Redis position cache with the ledger and repair it"),
    ):
        op = ledger_commands.add_parser(name, help=text)
        op.add_argument("--data-dir", help="where the ledger lives (TICKGATE_DATA_DIR)")
        op.add_argument("--redis", metavar="URL", help="the position cache's Redis")
        if name == "reconcile":
            op.add_argument("--dry-run", action="store_true", help="report, change nothing")
    dlq = ledger_commands.add_parser("dlq", help="the dead-letter queue")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_commands.add_parser("list", help="list dead letters (JSON lines)")
    dlq_list.add_argument("--all", action="store_true", help="redriven ones too")
    dlq_redrive = dlq_commands.add_parser("redrive", help="re-submit dead letters")
    dlq_redrive.add_argument(
        "--id", type=int, action="append", help="a dead letter's id (repeatable; default: all)"
    )
    dlq_redrive.add_argument(
        "--actor", default=os.environ.get("USER", "operator"), help="who redrives (audit log)"
    )
    for op in (dlq_list, dlq_redrive):
        op.add_argument("--data-dir", help="where the ledger lives (TICKGATE_DATA_DIR)")
        op.add_argument("--kafka", metavar="BOOTSTRAP", help="redrive to this Kafka")

    token = commands.add_parser("token", help="print a signed dev token")
    token.add_argument("--account", action="append", required=True, help="account (repeatable)")
    token.add_argument(
        "--scope",
        action="append",
        choices=KNOWN_SCOPES,
        metavar="SCOPE",
        help=f"scope (repeatable; default read): {', '.join(KNOWN_SCOPES)}",
    )
    token.add_argument("--subject", help="token subject (default: the first account)")
    token.add_argument("--ttl", type=parse_duration_s, default=3600.0, help="lifetime, e.g. 1h")

    instruments = commands.add_parser("instruments", help="list the reference data")
    instruments.add_argument("--json", action="store_true", help="print a JSON array")
    instruments.add_argument("--instruments", metavar="FILE", help="instrument master CSV")

    spike = commands.add_parser("spike", help="trigger a volatility spike on a running gateway")
    spike.add_argument("--rate-multiplier", type=float, default=10.0)
    spike.add_argument("--vol-multiplier", type=float, default=5.0)
    spike.add_argument("--duration-s", type=float, default=30.0)
    spike.add_argument("--url", default="http://127.0.0.1:8000", help="gateway base URL")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    overrides: dict[str, str] = {}
    flags = {
        "host": "TICKGATE_HOST",
        "port": "TICKGATE_PORT",
        "api_host": "TICKGATE_API_HOST",
        "api_port": "TICKGATE_API_PORT",
        "instruments": "TICKGATE_FEED_INSTRUMENTS_FILE",
        "redis": "TICKGATE_REDIS_URL",
        "seed": "TICKGATE_SIMULATOR_SEED",
        "tick_rate": "TICKGATE_SIMULATOR_TICK_RATE_PER_S",
        "data_dir": "TICKGATE_DATA_DIR",
        "log_level": "TICKGATE_LOG_LEVEL",
    }
    for attr, key in flags.items():
        value = getattr(args, attr, None)
        if value is not None:
            overrides[key] = str(value)
    if getattr(args, "kafka", None) is not None:
        if args.command != "ledger" or getattr(args, "ledger_command", None) == "run":
            overrides["TICKGATE_FEED_SOURCE"] = "kafka"
        overrides["TICKGATE_KAFKA_BOOTSTRAP"] = args.kafka
    if getattr(args, "upstream", None) is not None:
        overrides["TICKGATE_FEED_SOURCE"] = "upstream"
        overrides["TICKGATE_UPSTREAM_URL"] = args.upstream
    return overrides


def _cmd_token(settings: Settings, args: argparse.Namespace) -> None:
    token = issue_token(
        jwt_secret(settings),
        subject=args.subject or args.account[0],
        accounts=args.account,
        scopes=args.scope or [READ_SCOPE],
        ttl_s=args.ttl,
        now_s=time.time(),
        issuer=settings.auth.issuer,
    )
    print(token)


def _cmd_instruments(settings: Settings, args: argparse.Namespace) -> None:
    from gateway.refdata import instrument_json, load_master

    master = load_master(settings.feed.instruments_file)
    if args.json:
        rows = [instrument_json(i) for i in master]
        print(json.dumps(rows, indent=None))
        return
    print(f"{'SYMBOL':<18} {'TYPE':<7} {'CCY':<4} {'TICK':>10} {'MULT':>10}  SECTOR")
    for i in master:
        print(
            f"{i.symbol:<18} {i.type.value:<7} {i.currency:<4} "
            f"{i.tick_size!s:>10} {i.multiplier!s:>10}  {i.sector}"
        )


def _cmd_spike(settings: Settings, args: argparse.Namespace) -> int:
    token = issue_token(
        jwt_secret(settings),
        subject="tickgate-cli",
        accounts=[],
        scopes=[ADMIN_SCOPE],
        ttl_s=60,
        now_s=time.time(),
        issuer=settings.auth.issuer,
    )
    body = json.dumps(
        {
            "rate_multiplier": args.rate_multiplier,
            "vol_multiplier": args.vol_multiplier,
            "duration_s": args.duration_s,
        }
    ).encode()
    url = args.url.rstrip("/") + "/admin/spike"
    if not url.startswith(("http://", "https://")):
        print(f"tickgate: error: --url must be http(s), was {args.url!r}", file=sys.stderr)
        return 2
    request = urllib.request.Request(  # noqa: S310  # scheme checked just above
        url,
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  # see above
            print(response.read().decode())
    except urllib.error.HTTPError as e:
        print(f"tickgate: error: {e.code} {e.read().decode()}", file=sys.stderr)
        return 1
    except urllib.error.URLError as e:
        print(f"tickgate: error: cannot reach {url}: {e.reason}", file=sys.stderr)
        return 1
    return 0


def _cmd_ledger(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from gateway.clock import SystemClock
    from gateway.logs import configure_logging
    from gateway.trading import admin

    # Operator commands log to stderr: the audit lines of a redrive, for one.
    configure_logging(settings.log_level, settings.log_format)
    if settings.audit.file is not None:
        from gateway.audit import open_audit_file

        open_audit_file(settings.audit.file)
    if args.ledger_command == "run":
        from gateway.trading.ledgerrole import run_ledger

        run_ledger(settings)
        return 0
    if args.ledger_command == "verify":
        is_clean, summary = asyncio.run(admin.verify(settings))
        print(summary)
        return 0 if is_clean else 1
    if args.ledger_command == "reconcile":
        from gateway.refdata import load_master

        master = load_master(settings.feed.instruments_file)
        report = asyncio.run(admin.reconcile(settings, master, SystemClock(), dry_run=args.dry_run))
        print(report.summary())
        return 0
    if args.dlq_command == "list":
        for letter in asyncio.run(admin.dlq_list(settings, include_redriven=args.all)):
            print(json.dumps(_letter_json(letter)))
        return 0
    letters = asyncio.run(
        admin.dlq_redrive(settings, args.id, actor=args.actor, clock=SystemClock())
    )
    print(f"ledger dlq: {len(letters)} dead letter(s) redriven by {args.actor}")
    return 0


def _letter_json(letter: DeadLetter) -> dict[str, object]:
    from dataclasses import asdict

    return asdict(letter)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tickgate`` console script."""
    try:
        status = _run_command(argv)
        sys.stdout.flush()  # here, so that a closed pipe is seen below, not at exit
    except BrokenPipeError:
        # The reader went away: stop quietly. Python would report the same
        # error again while flushing stdout at exit, so stdout goes nowhere now.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    return status


def _run_command(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        overrides = _overrides(args)
        settings = Settings.from_env(os.environ, overrides)
        if args.command in ("run", "api"):
            from gateway.server import serve

            return serve(settings, role=args.command)
        elif args.command == "ledger":
            return _cmd_ledger(settings, args)
        elif args.command == "token":
            _cmd_token(settings, args)
        elif args.command == "instruments":
            _cmd_instruments(settings, args)
        else:
            return _cmd_spike(settings, args)
    except SettingsError as e:
        print(f"tickgate: error: invalid setting {e}", file=sys.stderr)
        return 2
    except GatewayError as e:
        print(f"tickgate: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
