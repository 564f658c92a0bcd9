"""Ledger store harnesses for the contract suite: one per adapter, with raw SQL access.

``raw`` runs SQL on a connection of its own, outside the store, as a
client of the database would; ``tamper`` does the same with the append-only
triggers out of the way (as a superuser would), to prove ``verify`` sees it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
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
from orders.types import AccountId

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
