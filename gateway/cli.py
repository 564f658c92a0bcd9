"""The ``tickgate`` command: run, token, instruments, spike."""

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

# ``token`` and ``spike`` need only settings and a signing key, so nothing
# heavier is imported here: the server (uvicorn, Starlette, the engine with
# numpy and scipy) and the instrument master come with the commands that use them.
from gateway.auth import ADMIN_SCOPE, KNOWN_SCOPES, READ_SCOPE, issue_token
from gateway.devsecret import jwt_secret
from gateway.errors import GatewayError, SettingsError
from gateway.settings import Settings

__all__ = ["EXIT_BROKEN_PIPE", "main", "parse_duration_s"]

_DESCRIPTION = "Run the tickgate gateway, mint dev tokens, list instruments, trigger spikes."
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickgate", description=_DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the gateway (simulator and in-memory by default)")
    run.add_argument("--host", help="listen address (TICKGATE_HOST)")
    run.add_argument("--port", help="listen port (TICKGATE_PORT)")
    feed = run.add_mutually_exclusive_group()
    feed.add_argument("--kafka", metavar="BOOTSTRAP", help="consume md.ticks from this Kafka")
    feed.add_argument("--upstream", metavar="URL", help="consume this vendor WebSocket feed")
    run.add_argument("--redis", metavar="URL", help="cache positions in this Redis")
    run.add_argument("--instruments", metavar="FILE", help="instrument master CSV to load")
    run.add_argument("--seed", help="simulator seed (TICKGATE_SIMULATOR_SEED)")
    run.add_argument("--tick-rate", help="simulator ticks/s (TICKGATE_SIMULATOR_TICK_RATE_PER_S)")
    run.add_argument("--data-dir", help="where the dev secret lives (TICKGATE_DATA_DIR)")
    run.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")

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
        if args.command == "run":
            from gateway.server import serve

            return serve(settings)
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
