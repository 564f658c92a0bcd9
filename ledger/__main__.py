"""``python -m ledger``: run the ledger service standalone until SIGTERM or SIGINT.

A thin runner for operations and the crash tests (the ``tickgate ledger``
command of the gateway wires the same pieces from its settings). The
store is PostgreSQL (``--store postgresql://...``) or SQLite (a path);
commands come from Kafka (``--kafka``) or the store's inbox; events go to
Kafka when given. ``--static-quotes`` prices every instrument at its
reference price plus or minus one tick (no market-data feed).

``--role`` splits the service for fault tests: ``consumer`` runs everything
but the outbox relay, ``relay`` runs only the relay (to Kafka), so each can
be killed on its own; ``all`` (the default) runs both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from decimal import Decimal
from pathlib import Path

from ledger.bank import BankSettings, SimulatedBank
from ledger.inbox import InboxSource
from ledger.kafka import KafkaCommandSource, KafkaEventSink, LedgerKafkaSettings
from ledger.postgres import PostgresLedgerStore
from ledger.relay import EventSink, OutboxRelay
from ledger.service import CommandSource, LedgerService, LedgerServiceSettings
from ledger.sqlite import SqliteLedgerStore
from ledger.store import LedgerStore
from ledger.venue import ExecutionSettings
from portfolio.store import AccountRecord
from portfolio.types import AccountId
from pricing.instruments import InstrumentMaster, parse_instrument_csv
from pricing.pricebook import PriceBook


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ledger", description=__doc__)
    parser.add_argument("--store", required=True, help="postgresql:// DSN or a SQLite path")
    parser.add_argument("--kafka", help="bootstrap servers; the store's inbox when absent")
    parser.add_argument("--rail-db", help="the simulated bank's SQLite file")
    parser.add_argument("--rail-lost-reply-rate", type=float, default=0.0)
    parser.add_argument("--rail-failure-rate", type=float, default=0.0)
    parser.add_argument("--rail-seed", type=int, default=0)
    parser.add_argument("--rail-latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--rail-settle-after-ms",
        type=float,
        default=50.0,
        help="when a lost reply's transfer becomes visible at the bank",
    )
    parser.add_argument("--static-quotes", action="store_true")
    parser.add_argument("--open-accounts", type=int, default=0, help="seed ACC-0001.. with USD")
    parser.add_argument("--open-cash", default="1000000")
    parser.add_argument("--batch-max-commands", type=int, default=1000)
    parser.add_argument("--role", choices=("all", "consumer", "relay"), default="all")
    return parser


async def _relay(args: argparse.Namespace, store: LedgerStore, stop: asyncio.Event) -> None:
    # The outbox relay alone: publish to Kafka, mark sent, until stopped.
    if not args.kafka:
        raise SystemExit("--role relay needs --kafka")
    sink = KafkaEventSink(LedgerKafkaSettings(bootstrap=args.kafka))
    relay = OutboxRelay(store, [sink], time.time_ns)
    task = asyncio.create_task(relay.run())
    try:
        print("ledger ready", flush=True)  # noqa: T201 - the runner's readiness line
        await stop.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sink.stop()


async def _run(args: argparse.Namespace, master: InstrumentMaster) -> None:
    book = PriceBook(master.ref_price, stale_after_ns=10**18)
    if args.static_quotes:
        book.bid[:] = master.ref_price - master.tick_size
        book.ask[:] = master.ref_price + master.tick_size
    store: LedgerStore = (
        PostgresLedgerStore(args.store)
        if args.store.startswith("postgres")
        else SqliteLedgerStore(args.store)
    )
    await store.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.role == "relay":
        try:
            await _relay(args, store, stop)
        finally:
            await store.stop()
        return
    source: CommandSource
    sinks: list[EventSink] = []
    if args.kafka:
        kafka = LedgerKafkaSettings(bootstrap=args.kafka)
        source = KafkaCommandSource(kafka)
        if args.role == "all":
            sinks.append(KafkaEventSink(kafka))
    else:
        source = InboxSource(store)
    bank = SimulatedBank(
        BankSettings(
            failure_rate=args.rail_failure_rate,
            lost_reply_rate=args.rail_lost_reply_rate,
            latency_ms=args.rail_latency_ms,
            settle_after_ms=args.rail_settle_after_ms,
            seed=args.rail_seed,
        ),
        args.rail_db,
    )
    settings = LedgerServiceSettings(
        batch_max_commands=args.batch_max_commands,
        execution=ExecutionSettings(fee_per_unit=Decimal("0.01")),
        is_relay_enabled=args.role == "all",
    )
    service = LedgerService(store, source, master, book, bank, settings=settings, sinks=sinks)
    try:
        await service.start()
        if args.open_accounts:
            records = [
                AccountRecord(
                    account=AccountId(f"ACC-{n:04d}"),
                    base_currency="USD",
                    version=0,
                    cash={"USD": float(args.open_cash)},
                )
                for n in range(1, args.open_accounts + 1)
            ]
            await service.seed(records, ts_event=0)
        print("ledger ready", flush=True)  # noqa: T201 - the runner's readiness line
        await stop.wait()
    finally:
        await service.stop()
        for sink_ in sinks:
            if isinstance(sink_, KafkaEventSink):
                await sink_.stop()
        with contextlib.suppress(Exception):
            await store.stop()
        bank.close()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    csv_path = Path(__file__).resolve().parent.parent / "pricing" / "data" / "instruments.csv"
    master = parse_instrument_csv(csv_path.read_text(encoding="utf-8"))
    asyncio.run(_run(_parser().parse_args(argv), master))
    return 0


if __name__ == "__main__":
    sys.exit(main())
