"""``python -m bench <name>``: run a kernel benchmark and print its figures."""

from __future__ import annotations

import argparse
import sys

from bench import pnl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    pnl.add_arguments(commands.add_parser("pnl", help="portfolio P&L, VaR and memory at scale"))
    args = parser.parse_args(argv)
    return pnl.main(args)


if __name__ == "__main__":
    sys.exit(main())
