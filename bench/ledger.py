"""``python -m bench ledger``: postings per second into the ledger stores, batched vs not.

Each order is a market buy executed by the real saga (reserve, fill,
release: one transaction of six entries and two holds) and committed by
the real store. The baseline commits one order per database transaction;
the batched run commits ``--batch-size`` orders per transaction. Both run
in the same process against the same fresh database, repeated
``--repeat`` times; the figures are the median and the range.

PostgreSQL: ``--dsn``, or a private cluster started with the server
binaries under /usr/lib/postgresql (as the ``postgres`` user when root).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from ledger.accounts import client_state
from ledger.postgres import PostgresLedgerStore
from ledger.saga import Decoded, Executor
from ledger.seed import seed_inputs
from ledger.sqlite import SqliteLedgerStore
from ledger.state import LedgerState
from ledger.store import LedgerStore
from ledger.venue import ExecutionSettings
from orders.commands import SubmitOrder
from orders.types import (
    AccountId,
    IdempotencyKey,
    OrderType,
    PrincipalId,
    Side,
    TimeInForce,
    TraceId,
    order_id_for,
    transfer_id_for,
)
from portfolio.store import AccountRecord
from pricing.instruments import InstrumentMaster, parse_instrument_csv
from pricing.pricebook import PriceBook


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", help="a PostgreSQL database to use (dropped tables are not)")
    parser.add_argument("--orders", type=int, default=5_000, help="orders per batched run")
    parser.add_argument("--baseline-orders", type=int, default=500, help="orders per baseline run")
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")


def _master() -> InstrumentMaster:
    path = Path(__file__).resolve().parent.parent / "pricing" / "data" / "instruments.csv"
    return parse_instrument_csv(path.read_text(encoding="utf-8"))


def _orders(n: int, accounts: int, run: str) -> list[Decoded]:
    principal = PrincipalId("bench")
    out = []
    for k in range(n):
        transfer_id = transfer_id_for(principal, IdempotencyKey(f"{run}-{k}"))
        command = SubmitOrder(
            transfer_id,
            TraceId("0" * 32),
            principal,
            AccountId(f"B-{k % accounts:05d}"),
            k,
            order_id_for(transfer_id),
            "AAPL",
            Side.BUY,
            Decimal(1),
            OrderType.MARKET,
            None,
            TimeInForce.DAY,
        )
        out.append(Decoded(command, "{}"))
    return out


async def _postings_per_s(
    store: LedgerStore,
    master: InstrumentMaster,
    book: PriceBook,
    args: argparse.Namespace,
    *,
    orders: int,
    batch_size: int,
) -> float:
    executor = Executor(master, book, ExecutionSettings(fee_per_unit=Decimal("0.01")))
    state = LedgerState()
    run = uuid.uuid4().hex
    records = [
        AccountRecord(AccountId(f"B-{n:05d}"), "USD", 0, {"USD": 10_000_000.0})
        for n in range(args.accounts)
    ]
    known = await store.load_clients([r.account for r in records])
    if len(known) < len(records):
        plan = executor.execute(seed_inputs(records, master, ts_event=0), state, time.time_ns())
        await store.commit(plan.batch)
    for account, stored in (await store.load_clients([r.account for r in records])).items():
        state.clients[account] = client_state(stored, master)
    commands = _orders(orders, args.accounts, run)
    entries = 0
    started = time.perf_counter()
    for start in range(0, len(commands), batch_size):
        plan = executor.execute(commands[start : start + batch_size], state, time.time_ns())
        await store.commit(plan.batch)
        state.apply(plan.clients, plan.orders, plan.payments)
        entries += sum(len(t.postings) for t in plan.batch.transactions)
    return entries / (time.perf_counter() - started)


async def _measure(
    name: str, open_store: Callable[[], Awaitable[LedgerStore]], args: argparse.Namespace
) -> dict[str, object]:
    master = _master()
    book = PriceBook(master.ref_price, stale_after_ns=10**18)
    book.bid[:] = master.ref_price - master.tick_size
    book.ask[:] = master.ref_price + master.tick_size
    baseline, batched = [], []
    for _ in range(args.repeat):
        store = await open_store()
        try:
            baseline.append(
                await _postings_per_s(
                    store, master, book, args, orders=args.baseline_orders, batch_size=1
                )
            )
            batched.append(
                await _postings_per_s(
                    store, master, book, args, orders=args.orders, batch_size=args.batch_size
                )
            )
        finally:
            await store.stop()
    b, s = statistics.median(baseline), statistics.median(batched)
    if not args.json:
        print(  # noqa: T201 - a benchmark prints its figures
            f"{name:10s} one order per transaction: {b:10,.0f} postings/s "
            f"(range {min(baseline):,.0f}-{max(baseline):,.0f})\n"
            f"{name:10s} batches of {args.batch_size:5d} orders:   {s:10,.0f} postings/s "
            f"(range {min(batched):,.0f}-{max(batched):,.0f}); {s / b:.1f}x the baseline"
        )
    return {
        "baseline_postings_per_s": _spread(baseline),
        "batched_postings_per_s": _spread(batched),
        "batch_size": args.batch_size,
        "ratio": round(s / b, 1),
    }


def _spread(values: list[float]) -> dict[str, float | int]:
    return {
        "median": round(statistics.median(values)),
        "min": round(min(values)),
        "max": round(max(values)),
        "runs": len(values),
    }


@contextmanager
def _private_cluster() -> Iterator[str]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise SystemExit("no PostgreSQL server binaries; pass --dsn or --skip-postgres")
    bin_dir = os.path.dirname(found[-1])
    root = tempfile.mkdtemp(prefix="tickgate-bench-pg-")
    data = os.path.join(root, "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if prefix:
        shutil.chown(root, "postgres", "postgres")

    def run(command: list[str]) -> None:
        subprocess.run([*prefix, *command], check=True, capture_output=True)  # noqa: S603

    run([f"{bin_dir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"])
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root}"
    run([f"{bin_dir}/pg_ctl", "-D", data, "-o", options, "-l", f"{root}/log", "-w", "start"])
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run([f"{bin_dir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


async def _main(args: argparse.Namespace, dsn: str | None) -> None:
    figures: dict[str, object] = {"load_average": os.getloadavg()}
    if dsn is not None:

        async def postgres() -> LedgerStore:
            store = PostgresLedgerStore(dsn)
            await store.start()
            return store

        figures["postgres"] = await _measure("postgres", postgres, args)
    folder = tempfile.mkdtemp(prefix="tickgate-bench-sqlite-")

    async def sqlite() -> LedgerStore:
        store = SqliteLedgerStore(os.path.join(folder, "ledger.db"))
        await store.start()
        return store

    try:
        figures["sqlite"] = await _measure("sqlite", sqlite, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))  # noqa: T201 - the figures, for load_tests.bench ledger


def main(args: argparse.Namespace) -> int:
    if args.skip_postgres:
        asyncio.run(_main(args, None))
    elif args.dsn:
        asyncio.run(_main(args, args.dsn))
    else:
        with _private_cluster() as dsn:
            asyncio.run(_main(args, dsn))
    return 0
