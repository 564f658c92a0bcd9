"""Ledger store harnesses for the contract suite: one per adapter, with raw SQL access.

``raw`` runs SQL on a connection of its own, outside the store, as a
client of the database would; ``tamper`` does the same with the append-only
triggers out of the way (as a superuser would), to prove ``verify`` sees it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg

from ledger.journal import (
    Batch,
    HouseAccount,
    LedgerAccountSpec,
    Posting,
    TransactionDraft,
    client_account,
    house_account,
)
from ledger.money import cash_asset
from ledger.postgres import PostgresLedgerStore
from ledger.sqlite import SqliteLedgerStore
from orders.commands import CancelOrder, SubmitOrder, SubmitPayment
from orders.types import (
    AccountId,
    IdempotencyKey,
    OrderType,
    PaymentKind,
    PrincipalId,
    Side,
    TimeInForce,
    TraceId,
    order_id_for,
    payment_id_for,
    transfer_id_for,
)
from pricing.instruments import InstrumentMaster, parse_instrument_csv
from pricing.pricebook import PriceBook

USD = cash_asset("USD")


class SqliteHarness:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = SqliteLedgerStore(path)

    async def raw(self, statements: Sequence[str]) -> list[Any]:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            rows: list[Any] = []
            try:
                for sql in statements:
                    rows = conn.execute(sql).fetchall()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return rows
        finally:
            conn.close()

    async def tamper(self, sql: str) -> None:
        # SQLite cannot disable triggers: drop the append-only ones, change, done.
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
                "(name LIKE '%no_update' OR name LIKE '%no_delete')"
            ).fetchall():
                conn.execute(f"DROP TRIGGER {name}")
            conn.execute(sql)
        finally:
            conn.close()

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.DatabaseError,)


class PostgresHarness:
    name = "postgres"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.store = PostgresLedgerStore(dsn)

    async def raw(self, statements: Sequence[str], *, role: str | None = None) -> list[Any]:
        conn = await asyncpg.connect(self.dsn)
        try:
            rows: list[Any] = []
            async with conn.transaction():
                if role is not None:
                    await conn.execute(f"SET LOCAL ROLE {role}")
                for sql in statements:
                    rows = await conn.fetch(sql)
            return rows
        finally:
            await conn.close()

    async def tamper(self, sql: str) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute("SET session_replication_role = replica")  # triggers off
            await conn.execute(sql)
        finally:
            await conn.close()

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        return (asyncpg.PostgresError,)


def deposit_batch(
    account: str,
    amount: int,
    transfer_id: str,
    *,
    ts_ns: int = 1_760_000_000_000_000_000,
    open_client: bool = False,
    floor: int | None = 0,
) -> Batch:
    """A batch that deposits ``amount`` cents of USD into ``account`` from the rail."""
    client = client_account(account, USD)
    rail = house_account(HouseAccount.RAIL, USD)
    batch = Batch(ts_ns=ts_ns)
    if open_client:
        batch.clients.append((AccountId(account), "USD"))
    batch.accounts += [
        LedgerAccountSpec(client, USD, AccountId(account), floor),
        LedgerAccountSpec(rail, USD, None, None),
    ]
    batch.transactions.append(
        TransactionDraft(
            transfer_id, "deposit", (Posting(rail, USD, -amount), Posting(client, USD, amount))
        )
    )
    return batch


# --- commands and a priced book -------------------------------------------------------------

PRINCIPAL = PrincipalId("svc-test")
TRACE = TraceId("0" * 32)


@cache
def default_master() -> InstrumentMaster:
    from pathlib import Path as _Path

    import pricing

    return parse_instrument_csv(
        (_Path(pricing.__file__).parent / "data" / "instruments.csv").read_text()
    )


def priced_book(master: InstrumentMaster, quotes: dict[str, tuple[str, str]]) -> PriceBook:
    """A PriceBook with the given (bid, ask) per symbol and nothing else."""
    book = PriceBook(master.ref_price, stale_after_ns=10**18)
    set_quotes(book, master, quotes)
    return book


def set_quotes(
    book: PriceBook, master: InstrumentMaster, quotes: dict[str, tuple[str, str]]
) -> list[int]:
    changed = []
    for symbol, (bid, ask) in quotes.items():
        ix = master.ix(symbol)
        book.bid[ix] = float(bid)
        book.ask[ix] = float(ask)
        changed.append(ix)
    return changed


def order(
    key: str,
    account: str,
    symbol: str,
    side: str,
    quantity: str,
    *,
    limit: str | None = None,
    tif: str = "day",
    ts: int = 1,
) -> SubmitOrder:
    transfer_id = transfer_id_for(PRINCIPAL, IdempotencyKey(key))
    return SubmitOrder(
        transfer_id,
        TRACE,
        PRINCIPAL,
        AccountId(account),
        ts,
        order_id_for(transfer_id),
        symbol,
        Side(side),
        Decimal(quantity),
        OrderType.LIMIT if limit else OrderType.MARKET,
        None if limit is None else Decimal(limit),
        TimeInForce(tif),
    )


def payment(key: str, account: str, kind: str, amount: str, currency: str = "USD") -> SubmitPayment:
    transfer_id = transfer_id_for(PRINCIPAL, IdempotencyKey(key))
    return SubmitPayment(
        transfer_id,
        TRACE,
        PRINCIPAL,
        AccountId(account),
        1,
        payment_id_for(transfer_id),
        PaymentKind(kind),
        Decimal(amount),
        currency,
    )


def cancel(key: str, account: str, order_key: str) -> CancelOrder:
    transfer_id = transfer_id_for(PRINCIPAL, IdempotencyKey(key))
    target = transfer_id_for(PRINCIPAL, IdempotencyKey(order_key))
    return CancelOrder(transfer_id, TRACE, PRINCIPAL, AccountId(account), 1, order_id_for(target))
