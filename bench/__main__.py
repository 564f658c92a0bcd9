"""``python -m bench <name>``: run a kernel benchmark and print its figures."""

from __future__ import annotations

import argparse
import sys

from bench import ledger, pnl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    pnl.add_arguments(commands.add_parser("pnl", help="portfolio P&L, VaR and memory at scale"))
    ledger.add_arguments(
        commands.add_parser("ledger", help="ledger postings/s, batched vs one order per commit")
    )
    args = parser.parse_args(argv)
    if args.command == "ledger":
        return ledger.main(args)
    return pnl.main(args)


if __name__ == "__main__":
    sys.exit(main())
