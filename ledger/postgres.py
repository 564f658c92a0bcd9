"""The PostgreSQL ledger store (production), over asyncpg.

asyncpg speaks the binary protocol (bigint and bytea travel without text
round trips), pipelines ``executemany`` and has ``copy_records_to_table``,
which the batched write uses for every append-only table: a batch of
thousands of entries is one COPY, not thousands of INSERTs.

How a batch commits, in one transaction:
1. ``INSERT ... ON CONFLICT DO NOTHING`` every ledger account it touches
   (sorted by name), so a new account exists before anyone locks it;
2. ``SELECT ... FOR UPDATE`` those accounts in name order (a fixed order:
   concurrent batches cannot deadlock) and check the versions the batch
   was executed against (``StaleState`` otherwise);
3. lock the chain head, number the transactions and events after it;
4. COPY transactions, entries (partitioned by month), holds, fills,
   transitions, outbox events and dead letters; upsert orders, payments
   and positions; apply each account's net change in one UPDATE (the
   ``accounts_floor`` CHECK refuses an overdraft);
5. append the batch's hash link and move the chain head;
6. COMMIT, where the deferred constraint trigger checks that every new
   entry's transaction balances per asset.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from ledger._rows import (
    OPEN_ORDER_COLUMNS,
    OPEN_STATUSES,
    ORDER_COLUMNS,
    PAYMENT_COLUMNS,
    open_order_from_row,
    order_from_row,
    order_tuple,
    payment_from_row,
    payment_tuple,
)
from ledger.errors import (
    DuplicateTransfer,
    FloorViolation,
    MigrationError,
    StaleState,
    StoreUnavailable,
    UnbalancedTransaction,
)
from ledger.journal import Batch, OrderRow, PaymentRow, account_deltas, chain_hash, entry_rows
from ledger.migrations import migrations
from ledger.money import Asset
from ledger.state import Balance
from ledger.statement import parse_entry_cursor, statement_page
from ledger.store import (
    CommitResult,
    DeadLetter,
    EntryPage,
    InboxMessage,
    OutboxEvent,
    SnapshotRows,
    StoredClient,
    StoredPosition,
)
from ledger.verify import GENESIS_HASH, BatchLink, VerifyReport, check_link
from orders.types import AccountId, OrderId, PaymentId
from orders.views import OrderPage, OrderRecord, OrderStatus, PaymentRecord, PaymentStatus

__all__ = ["PostgresLedgerStore", "partition_name"]

_MIGRATION_LOCK = 0x7469636B  # pg_advisory_xact_lock key: one migrator at a time
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


def partition_name(year: int, month: int) -> str:
    """The entries partition of a month: ``entries_y2026m01``."""
    return f"entries_y{year:04d}m{month:02d}"


def _posted_at(ts_ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC)


class PostgresLedgerStore:
    """The ledger in PostgreSQL (see the module docstring)."""

    def __init__(self, dsn: str, *, min_connections: int = 1, max_connections: int = 4) -> None:
        self.dsn = dsn
        self._min = min_connections
        self._max = max_connections
        self._pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> PostgresLedgerStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=self._min, max_size=self._max, command_timeout=60
            )
        except (*_UNAVAILABLE, asyncpg.PostgresError) as e:
            raise StoreUnavailable(f"postgres: {e}") from e
        await self._migrate()

    async def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                await pool.close()

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise StoreUnavailable("the postgres ledger store is not started")
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except _UNAVAILABLE as e:
            raise StoreUnavailable(f"postgres: {e}") from e

    async def _migrate(self) -> None:
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS ledger_migrations "
                "(version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz "
                "NOT NULL DEFAULT now())"
            )
            applied = {r[0] for r in await conn.fetch("SELECT version FROM ledger_migrations")}
            known = migrations("postgres")
            if applied and max(applied) > known[-1][0]:
                raise MigrationError(
                    f"the ledger schema is at version {max(applied)}, newer than this code's "
                    f"{known[-1][0]}"
                )
            for version, name, sql in known:
                if version in applied:
                    continue
                try:
                    await conn.execute(sql)
                except asyncpg.PostgresError as e:
                    raise MigrationError(f"migration {name} failed: {e}") from e
                await conn.execute(
                    "INSERT INTO ledger_migrations (version, name) VALUES ($1, $2)", version, name
                )

    # --- commit -----------------------------------------------------------------------

    async def commit(self, batch: Batch) -> CommitResult:
        async with self._conn() as conn:
            try:
                async with conn.transaction():
                    return await self._write(conn, batch)
            except asyncpg.UniqueViolationError as e:
                raise DuplicateTransfer(str(e)) from e
            except asyncpg.CheckViolationError as e:
                if getattr(e, "constraint_name", None) == "accounts_floor":
                    raise FloorViolation(str(e)) from e
                if "unbalanced" in str(e):
                    raise UnbalancedTransaction("?", "?", 0) from e
                raise

    async def _write(self, conn: asyncpg.Connection, batch: Batch) -> CommitResult:
        if batch.accounts:
            specs = sorted(batch.accounts, key=lambda a: a.name)
            await conn.execute(
                "INSERT INTO accounts (name, owner, asset, floor) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) "
                "ON CONFLICT (name) DO NOTHING",
                [a.name for a in specs],
                [a.owner for a in specs],
                [a.asset for a in specs],
                [a.floor for a in specs],
            )
        deltas = account_deltas(batch)
        names = sorted(set(deltas) | set(batch.expected_versions))
        ids: dict[str, int] = {}
        if names:
            for row in await conn.fetch(
                "SELECT id, name, version FROM accounts WHERE name = ANY($1::text[]) "
                "ORDER BY name FOR UPDATE",
                names,
            ):
                ids[row["name"]] = row["id"]
                expected = batch.expected_versions.get(row["name"])
                if expected is not None and expected != row["version"]:
                    raise StaleState(row["name"], expected, row["version"])
        head = await conn.fetchrow(
            "SELECT batch_no, last_seq, last_event_seq, hash FROM chain_head WHERE id = 1 "
            "FOR UPDATE"
        )
        assert head is not None
        batch_no = head["batch_no"] + 1
        first_seq = head["last_seq"] + 1
        new_last_seq = head["last_seq"] + len(batch.transactions)
        if batch.clients:
            await conn.copy_records_to_table(
                "clients", records=[(a, c, batch_no) for a, c in batch.clients]
            )
        txn_rows = [
            (first_seq + i, t.transfer_id, t.kind, batch.ts_ns)
            for i, t in enumerate(batch.transactions)
        ]
        entries = entry_rows(batch.transactions, first_seq)
        posted_at = _posted_at(batch.ts_ns)
        if txn_rows:
            await conn.copy_records_to_table(
                "transactions",
                records=[(s, tid, kind, batch_no, ts) for s, tid, kind, ts in txn_rows],
                columns=["seq", "transfer_id", "kind", "batch_no", "ts_posted"],
            )
            await conn.copy_records_to_table(
                "entries",
                records=[(s, n, ids[a], asset, amt, posted_at) for s, n, a, asset, amt in entries],
                columns=["seq", "n", "account_id", "asset", "amount", "posted_at"],
            )
        if batch.holds:
            await conn.copy_records_to_table(
                "holds",
                records=[
                    (batch_no, n, ids[h.account], h.transfer_id, h.amount)
                    for n, h in enumerate(batch.holds)
                ],
            )
        if batch.commands:
            await conn.copy_records_to_table(
                "commands",
                records=[
                    (c.transfer_id, c.type, c.account_id, c.wire, batch_no) for c in batch.commands
                ],
            )
        if batch.orders:
            # One row per order: the last state of the batch wins (ON CONFLICT may
            # not touch a row twice in one statement).
            latest = {o.record.order_id: o for o in batch.orders}
            columns = ORDER_COLUMNS.split(", ")
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])
            marks = ", ".join(f"${i + 1}" for i in range(len(columns)))
            await conn.executemany(
                f"INSERT INTO orders ({ORDER_COLUMNS}) VALUES ({marks}) "
                f"ON CONFLICT (order_id) DO UPDATE SET {updates}",
                [order_tuple(o, as_text=False) for o in latest.values()],
            )
        if batch.payments:
            latest_payments = {p.record.payment_id: p for p in batch.payments}
            columns = PAYMENT_COLUMNS.split(", ")
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])
            marks = ", ".join(f"${i + 1}" for i in range(len(columns)))
            await conn.executemany(
                f"INSERT INTO payments ({PAYMENT_COLUMNS}) VALUES ({marks}) "
                f"ON CONFLICT (payment_id) DO UPDATE SET {updates}",
                [payment_tuple(p, as_text=False) for p in latest_payments.values()],
            )
        if batch.transitions:
            await conn.copy_records_to_table(
                "transitions",
                records=[
                    (batch_no, n, t.subject, t.status, t.cause, t.ts)
                    for n, t in enumerate(batch.transitions)
                ],
            )
        if batch.fills:
            await conn.copy_records_to_table(
                "fills",
                records=[
                    (
                        f.fill_id,
                        first_seq + f.txn_index,
                        f.order_id,
                        f.account_id,
                        f.symbol,
                        f.quantity_units,
                        f.price,
                        f.notional_minor,
                        f.fee_minor,
                        f.currency,
                        f.realised_pnl,
                        f.ts_event,
                    )
                    for f in batch.fills
                ],
            )
        if batch.positions:
            latest_positions = {(p.account_id, p.symbol): p for p in batch.positions}
            await conn.executemany(
                "INSERT INTO positions VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "ON CONFLICT (account_id, symbol) DO UPDATE SET "
                "quantity_units = EXCLUDED.quantity_units, avg_cost = EXCLUDED.avg_cost, "
                "realised_pnl = EXCLUDED.realised_pnl, commission = EXCLUDED.commission, "
                "last_seq = EXCLUDED.last_seq",
                [
                    (
                        p.account_id,
                        p.symbol,
                        p.quantity_units,
                        p.avg_cost,
                        p.realised_pnl,
                        p.commission,
                        first_seq + p.txn_index,
                    )
                    for p in latest_positions.values()
                ],
            )
        if batch.events:
            await conn.copy_records_to_table(
                "outbox",
                records=[
                    (
                        head["last_event_seq"] + 1 + i,
                        e.event_id,
                        e.account_id,
                        e.type,
                        new_last_seq if e.txn_index is None else first_seq + e.txn_index,
                        orjson.dumps(e.payload).decode(),
                        batch.ts_ns,
                        None,
                    )
                    for i, e in enumerate(batch.events)
                ],
            )
        if batch.dead_letters:
            await conn.copy_records_to_table(
                "dead_letters",
                records=[
                    (d.transfer_id, d.account_id, d.raw, d.reason, d.detail, d.source, batch.ts_ns)
                    for d in batch.dead_letters
                ],
                columns=["transfer_id", "account_id", "raw", "reason", "detail", "source", "ts_ns"],
            )
        if deltas:
            last_touch: dict[str, int] = {}
            for i, txn in enumerate(batch.transactions):
                for posting in txn.postings:
                    last_touch[posting.account] = first_seq + i
            touched = sorted(deltas)
            await conn.execute(
                "UPDATE accounts a SET balance = a.balance + d.balance, "
                "pending = a.pending + d.pending, version = a.version + 1, "
                "last_seq = greatest(a.last_seq, d.last_seq) "
                "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) "
                "AS d(id, balance, pending, last_seq) WHERE a.id = d.id",
                [ids[n] for n in touched],
                [deltas[n][0] for n in touched],
                [deltas[n][1] for n in touched],
                [last_touch.get(n, 0) for n in touched],
            )
        head_hash = bytes(head["hash"])
        if txn_rows:
            prev = head_hash
            head_hash = chain_hash(prev, txn_rows, entries)
            await conn.execute(
                "INSERT INTO batches VALUES ($1, $2, $3, $4, $5, $6)",
                batch_no,
                prev,
                head_hash,
                first_seq,
                new_last_seq,
                batch.ts_ns,
            )
        await conn.execute(
            "UPDATE chain_head SET batch_no = $1, last_seq = $2, last_event_seq = $3, hash = $4, "
            "inbox_cursor = coalesce($5, inbox_cursor) WHERE id = 1",
            batch_no,
            new_last_seq,
            head["last_event_seq"] + len(batch.events),
            head_hash,
            batch.inbox_cursor,
        )
        return CommitResult(batch_no, first_seq, new_last_seq)

    # --- reads ------------------------------------------------------------------------

    async def known_transfers(self, transfer_ids: Sequence[str]) -> set[str]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT transfer_id FROM commands WHERE transfer_id = ANY($1::text[]) "
                "UNION SELECT transfer_id FROM dead_letters WHERE transfer_id = ANY($1::text[]) "
                "AND redriven_ns IS NULL",
                list(transfer_ids),
            )
        return {r[0] for r in rows}

    async def load_clients(self, account_ids: Sequence[AccountId]) -> dict[AccountId, StoredClient]:
        async with self._conn() as conn:
            return await self._load_clients(conn, list(account_ids))

    async def _load_clients(
        self, conn: asyncpg.Connection, ids: list[str] | None
    ) -> dict[AccountId, StoredClient]:
        if ids is None:
            clients = await conn.fetch("SELECT account_id, base_currency FROM clients")
            accounts = await conn.fetch(
                "SELECT owner, asset, balance, pending, version, floor, last_seq FROM accounts "
                "WHERE owner IS NOT NULL"
            )
            positions = await conn.fetch("SELECT * FROM positions")
        else:
            clients = await conn.fetch(
                "SELECT account_id, base_currency FROM clients WHERE account_id = ANY($1::text[])",
                ids,
            )
            accounts = await conn.fetch(
                "SELECT owner, asset, balance, pending, version, floor, last_seq FROM accounts "
                "WHERE owner = ANY($1::text[])",
                ids,
            )
            positions = await conn.fetch(
                "SELECT * FROM positions WHERE account_id = ANY($1::text[])", ids
            )
        balances: dict[str, dict[Asset, Balance]] = {c[0]: {} for c in clients}
        last: dict[str, int] = {}
        for owner, asset, bal, pend, ver, floor, last_seq in accounts:
            if owner in balances:
                balances[owner][Asset(asset)] = Balance(bal, pend, ver, floor)
                last[owner] = max(last.get(owner, 0), last_seq)
        held: dict[str, dict[str, StoredPosition]] = {c[0]: {} for c in clients}
        for account, symbol, units, cost, realised, commission, seq in positions:
            if account in held:
                held[account][symbol] = StoredPosition(units, cost, realised, commission, seq)
        return {
            AccountId(a): StoredClient(AccountId(a), base, balances[a], held[a], last.get(a, 0))
            for a, base in clients
        }

    async def open_orders(self) -> list[OrderRow]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT {OPEN_ORDER_COLUMNS} FROM orders WHERE status = ANY($1::text[]) "
                "ORDER BY ts_accepted, order_id",
                list(OPEN_STATUSES),
            )
        return [open_order_from_row(r) for r in rows]

    async def pending_payments(self) -> list[PaymentRow]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE status = $1 ORDER BY ts_accepted",
                PaymentStatus.PENDING.value,
            )
        return [payment_from_row(r) for r in rows]

    async def get_order(self, order_id: OrderId) -> OrderRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1", order_id
            )
        return None if row is None else order_from_row(row).record

    async def list_orders(
        self, account_id: AccountId, *, status: OrderStatus | None, cursor: str | None, limit: int
    ) -> OrderPage:
        sql = f"SELECT {ORDER_COLUMNS} FROM orders WHERE account_id = $1"
        args: list[object] = [account_id]
        if status is not None:
            args.append(status.value)
            sql += f" AND status = ${len(args)}"
        if cursor is not None:
            ts, order_id = _parse_cursor(cursor)
            args += [ts, order_id]
            sql += f" AND (ts_accepted, order_id) < (${len(args) - 1}, ${len(args)})"
        args.append(limit + 1)
        sql += f" ORDER BY ts_accepted DESC, order_id DESC LIMIT ${len(args)}"
        async with self._conn() as conn:
            rows = [order_from_row(r).record for r in await conn.fetch(sql, *args)]
        if len(rows) <= limit:
            return OrderPage(rows, None)
        last = rows[limit - 1]
        return OrderPage(rows[:limit], f"{last.ts_accepted}:{last.order_id}")

    async def get_payment(self, payment_id: PaymentId) -> PaymentRecord | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE payment_id = $1", payment_id
            )
        return None if row is None else payment_from_row(row).record

    async def account_entries(
        self, account_id: AccountId, *, asset: Asset | None, cursor: str | None, limit: int
    ) -> EntryPage | None:
        before = None if cursor is None else parse_entry_cursor(cursor)
        # One snapshot: the materialised balances and the entries posted after the page agree.
        async with (
            self._conn() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            if (
                await conn.fetchval("SELECT 1 FROM clients WHERE account_id = $1", account_id)
                is None
            ):
                return None
            sql, args = "SELECT id, balance FROM accounts WHERE owner = $1", [str(account_id)]
            if asset is not None:
                sql += " AND asset = $2"
                args.append(asset)
            balances: dict[int, int] = {i: b for i, b in await conn.fetch(sql, *args)}
            if not balances:
                return EntryPage([], None)
            page_args: list[object] = [list(balances)]
            where = "e.account_id = ANY($1::bigint[])"
            if before is not None:
                page_args += list(before)
                where += " AND (e.seq, e.n) < ($2, $3)"
            page_args.append(limit + 1)
            rows = await conn.fetch(
                "SELECT e.seq, e.n, e.account_id, e.asset, e.amount, t.transfer_id, t.kind, "
                f"t.ts_posted FROM entries e JOIN transactions t ON t.seq = e.seq WHERE {where} "
                f"ORDER BY e.seq DESC, e.n DESC LIMIT ${len(page_args)}",
                *page_args,
            )
            if not rows:
                return EntryPage([], None)
            top_seq, top_n = rows[0][0], rows[0][1]
            on_page = sorted({r[2] for r in rows[:limit]})
            later = {
                a: int(total)
                for a, total in await conn.fetch(
                    "SELECT account_id, sum(amount) FROM entries WHERE account_id = "
                    "ANY($1::bigint[]) AND (seq, n) > ($2, $3) GROUP BY account_id",
                    on_page,
                    top_seq,
                    top_n,
                )
            }
        return statement_page(
            [tuple(r) for r in rows],
            {a: balances[a] - later.get(a, 0) for a in on_page},
            limit,
        )

    # --- outbox, inbox, dead letters --------------------------------------------------------

    async def unsent_events(self, limit: int) -> list[OutboxEvent]:
        return await self._events("sent_ns IS NULL", [], limit)

    async def unsent_event_count(self) -> int:
        # The partial index outbox_unsent holds exactly these rows.
        async with self._conn() as conn:
            count = await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_ns IS NULL")
        return int(count)

    async def events_after(
        self, after_seq: int, limit: int, account_id: AccountId | None = None
    ) -> list[OutboxEvent]:
        if account_id is None:
            return await self._events("event_seq > $1", [after_seq], limit)
        return await self._events(
            "account_id = $1 AND event_seq > $2", [account_id, after_seq], limit
        )

    async def _events(self, where: str, args: list[object], limit: int) -> list[OutboxEvent]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT event_seq, event_id, account_id, type, ledger_seq, payload, ts_ns "
                f"FROM outbox WHERE {where} ORDER BY event_seq LIMIT ${len(args) + 1}",
                *args,
                limit,
            )
        return [OutboxEvent(s, i, AccountId(a), t, ls, p, ts) for s, i, a, t, ls, p, ts in rows]

    async def mark_sent(self, event_seqs: Sequence[int], ts_ns: int) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE outbox SET sent_ns = $1 WHERE event_seq = ANY($2::bigint[])",
                ts_ns,
                list(event_seqs),
            )

    async def inbox_append(self, wires: Sequence[str], ts_ns: int) -> None:
        async with self._conn() as conn:
            await conn.copy_records_to_table(
                "inbox", records=[(w, ts_ns) for w in wires], columns=["wire", "ts_ns"]
            )

    async def inbox_read(self, limit: int) -> list[InboxMessage]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT inbox_id, wire FROM inbox WHERE inbox_id > "
                "(SELECT inbox_cursor FROM chain_head WHERE id = 1) ORDER BY inbox_id LIMIT $1",
                limit,
            )
        return [InboxMessage(i, w) for i, w in rows]

    async def find_command(self, transfer_id: str) -> str | None:
        async with self._conn() as conn:
            wire = await conn.fetchval(
                "SELECT wire FROM commands WHERE transfer_id = $1", transfer_id
            )
            if wire is not None:
                return str(wire)
            rows = await conn.fetch(
                "SELECT wire FROM inbox WHERE inbox_id > "
                "(SELECT inbox_cursor FROM chain_head WHERE id = 1) AND strpos(wire, $1) > 0",
                transfer_id,
            )
        for (text,) in rows:
            with contextlib.suppress(orjson.JSONDecodeError):
                obj = orjson.loads(text)
                if isinstance(obj, dict) and obj.get("transfer_id") == transfer_id:
                    return str(text)
        return None

    async def dead_letters(self, *, include_redriven: bool, limit: int) -> list[DeadLetter]:
        where = "true" if include_redriven else "redriven_ns IS NULL"
        return await self._dead_letters(where, [], limit)

    async def unpublished_dead_letters(self, limit: int) -> list[DeadLetter]:
        return await self._dead_letters("published_ns IS NULL", [], limit)

    async def _dead_letters(self, where: str, args: list[object], limit: int) -> list[DeadLetter]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT dlq_id, transfer_id, account_id, raw, reason, detail, source, ts_ns, "
                f"redriven_ns FROM dead_letters WHERE {where} ORDER BY dlq_id "
                f"LIMIT ${len(args) + 1}",
                *args,
                limit,
            )
        return [DeadLetter(*r) for r in rows]

    async def mark_dead_letters_published(self, dlq_ids: Sequence[int], ts_ns: int) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE dead_letters SET published_ns = $1 WHERE dlq_id = ANY($2::bigint[])",
                ts_ns,
                list(dlq_ids),
            )

    async def mark_redriven(
        self, dlq_ids: Sequence[int], actor: str, ts_ns: int
    ) -> list[DeadLetter]:
        async with self._conn() as conn, conn.transaction():
            rows = await conn.fetch(
                "UPDATE dead_letters SET redriven_ns = $1 WHERE dlq_id = ANY($2::bigint[]) "
                "AND redriven_ns IS NULL RETURNING dlq_id, transfer_id, account_id, raw, reason, "
                "detail, source, ts_ns, redriven_ns",
                ts_ns,
                list(dlq_ids),
            )
            await conn.executemany(
                "INSERT INTO dlq_audit (dlq_id, action, actor, ts_ns) "
                "VALUES ($1, 'redrive', $2, $3)",
                [(r[0], actor, ts_ns) for r in rows],
            )
        return sorted((DeadLetter(*r) for r in rows), key=lambda d: d.dlq_id)

    # --- snapshot, verify, partitions -------------------------------------------------------

    async def snapshot(self, day_start_ns: int) -> SnapshotRows:
        async with (
            self._conn() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            clients = await self._load_clients(conn, None)
            fills = [
                (AccountId(a), s, q, Decimal(p))
                for a, s, q, p in await conn.fetch(
                    "SELECT account_id, symbol, quantity_units, price FROM fills "
                    "WHERE ts_event >= $1 ORDER BY seq",
                    day_start_ns,
                )
            ]
            ledger_seq = await conn.fetchval("SELECT last_seq FROM chain_head WHERE id = 1")
        return SnapshotRows(list(clients.values()), fills, int(ledger_seq))

    async def verify(self) -> VerifyReport:
        report = VerifyReport()
        previous = GENESIS_HASH
        async with (
            self._conn() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            links = await conn.fetch(
                "SELECT batch_no, prev_hash, hash, first_seq, last_seq FROM batches "
                "ORDER BY batch_no"
            )
            for row in links:
                link = BatchLink(row[0], bytes(row[1]), bytes(row[2]), row[3], row[4])
                txns = [
                    tuple(r)
                    for r in await conn.fetch(
                        "SELECT seq, transfer_id, kind, ts_posted FROM transactions "
                        "WHERE batch_no = $1 ORDER BY seq",
                        link.batch_no,
                    )
                ]
                entries = [
                    tuple(r)
                    for r in await conn.fetch(
                        "SELECT e.seq, e.n, a.name, e.asset, e.amount FROM entries e "
                        "JOIN accounts a ON a.id = e.account_id WHERE e.seq BETWEEN $1 AND $2 "
                        "ORDER BY e.seq, e.n",
                        link.first_seq,
                        link.last_seq,
                    )
                ]
                previous = check_link(previous, link, txns, entries, report)
            for seq, asset, total in await conn.fetch(
                "SELECT seq, asset, sum(amount) FROM entries GROUP BY seq, asset "
                "HAVING sum(amount) <> 0 ORDER BY seq LIMIT 20"
            ):
                report.problems.append(f"transaction seq {seq}: sums to {total} in {asset}, not 0")
            for (seq,) in await conn.fetch(
                "SELECT t.seq FROM transactions t LEFT JOIN batches b ON b.batch_no = t.batch_no "
                "WHERE b.batch_no IS NULL ORDER BY t.seq LIMIT 20"
            ):
                report.problems.append(f"transaction seq {seq}: not in any batch of the chain")
            for name, stored, summed in await conn.fetch(
                "SELECT a.name, a.balance, coalesce(s.total, 0) FROM accounts a LEFT JOIN "
                "(SELECT account_id, sum(amount) AS total FROM entries GROUP BY account_id) s "
                "ON s.account_id = a.id WHERE a.balance <> coalesce(s.total, 0) "
                "ORDER BY a.name LIMIT 20"
            ):
                report.problems.append(f"account {name}: balance {stored}, entries sum to {summed}")
            for name, stored, summed in await conn.fetch(
                "SELECT a.name, a.pending, coalesce(s.total, 0) FROM accounts a LEFT JOIN "
                "(SELECT account_id, sum(amount) AS total FROM holds GROUP BY account_id) s "
                "ON s.account_id = a.id WHERE a.pending <> coalesce(s.total, 0) "
                "ORDER BY a.name LIMIT 20"
            ):
                report.problems.append(f"account {name}: pending {stored}, holds sum to {summed}")
            for account, symbol, units, balance in await conn.fetch(
                "SELECT p.account_id, p.symbol, p.quantity_units, coalesce(a.balance, 0) "
                "FROM positions p LEFT JOIN accounts a "
                "ON a.name = 'client:' || p.account_id || ':inst:' || p.symbol "
                "WHERE p.quantity_units <> coalesce(a.balance, 0) ORDER BY 1, 2 LIMIT 20"
            ):
                report.problems.append(
                    f"position {account} {symbol}: quantity {units}, its account holds {balance}"
                )
        return report

    async def ensure_partitions(self, now_ns: int, months_ahead: int) -> list[str]:
        now = _posted_at(now_ns)
        year, month = now.year, now.month
        created = []
        async with self._conn() as conn:
            for _ in range(months_ahead + 1):
                next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
                name = partition_name(year, month)
                exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
                if not exists:
                    await conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF entries FOR VALUES "
                        f"FROM ('{year:04d}-{month:02d}-01 00:00:00+00') "
                        f"TO ('{next_year:04d}-{next_month:02d}-01 00:00:00+00')"
                    )
                    created.append(name)
                year, month = next_year, next_month
        return created

    async def execute_raw(self, sql: str, *args: Any) -> list[Any]:
        """Run SQL as the store's login (tests and tooling); returns the rows."""
        async with self._conn() as conn:
            return list(await conn.fetch(sql, *args))


def _parse_cursor(cursor: str) -> tuple[int, str]:
    ts, _, order_id = cursor.partition(":")
    try:
        return int(ts), order_id
    except ValueError:
        raise ValueError(f"cursor must come from a previous page, was {cursor!r}") from None
