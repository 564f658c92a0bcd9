"""The SQLite ledger store: the embedded default, one file under the data dir.

stdlib ``sqlite3`` on one dedicated thread: SQLite allows one writer at a
time anyway, so a single connection owned by one thread is both the
simplest and the fastest arrangement, and the event loop never blocks on
disk. WAL journal, ``synchronous=FULL`` (a commit survives a power cut), and
every batch is one ``BEGIN IMMEDIATE`` transaction.

How the database enforces the ledger's rules (docs/ledger.md):
- **Balance**: entries are staged in ``entry_stage``; inserting the
  transaction row fires a trigger that refuses it unless its staged entries
  sum to zero per asset, then moves them into ``entries``. A trigger on
  ``entries`` refuses any row that does not come from the stage or that
  joins a transaction already written.
- **Append-only**: triggers refuse UPDATE and DELETE on the journal tables.
- **Floor**: a CHECK on ``accounts`` (``balance - pending >= floor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ledger._rows import (
    OPEN_ORDER_COLUMNS,
    OPEN_STATUSES,
    ORDER_COLUMNS,
    PAYMENT_COLUMNS,
    decimal_text,
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

__all__ = ["SqliteLedgerStore"]

_T = TypeVar("_T")
_CHUNK = 500


class SqliteLedgerStore:
    """The ledger in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.path = str(path)
        self._synchronous = synchronous
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._ids: dict[str, int] = {}

    async def __aenter__(self) -> SqliteLedgerStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="ledger-sqlite")
        await self._run(self._open)

    async def stop(self) -> None:
        if self._executor is None:
            return
        await self._run(self._close)
        self._executor.shutdown(wait=True)
        self._executor = None

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._executor is None:
            raise StoreUnavailable("the sqlite ledger store is not started")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as e:
            raise StoreUnavailable(f"sqlite: {e}") from e

    # --- connection and migrations (ledger thread) -------------------------------------

    def _open(self) -> None:
        if self._conn is not None:
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        self._conn = conn
        self._migrate(conn)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS ledger_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
        )
        applied = {v for (v,) in conn.execute("SELECT version FROM ledger_migrations")}
        known = migrations("sqlite")
        if applied and max(applied) > known[-1][0]:
            raise MigrationError(
                f"the ledger schema is at version {max(applied)}, newer than this code's "
                f"{known[-1][0]}"
            )
        for version, name, sql in known:
            if version in applied:
                continue
            try:
                conn.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\n"
                    f"INSERT INTO ledger_migrations VALUES ({version}, '{name}');\nCOMMIT;"
                )
            except sqlite3.Error as e:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise MigrationError(f"migration {name} failed: {e}") from e

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("the sqlite ledger store is not open")
        return self._conn

    # --- commit -----------------------------------------------------------------------

    async def commit(self, batch: Batch) -> CommitResult:
        return await self._run(self._commit, batch)

    def _commit(self, batch: Batch) -> CommitResult:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = self._write(db, batch)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._ids.clear()  # ids of accounts created by the rolled-back batch are void
            raise
        return result

    def _write(self, db: sqlite3.Connection, batch: Batch) -> CommitResult:
        batch_no, last_seq, last_event_seq, prev_hash = db.execute(
            "SELECT batch_no, last_seq, last_event_seq, hash FROM chain_head WHERE id = 1"
        ).fetchone()
        batch_no += 1
        first_seq = last_seq + 1
        if batch.accounts:
            db.executemany(
                "INSERT OR IGNORE INTO accounts (name, owner, asset, floor) VALUES (?, ?, ?, ?)",
                [(a.name, a.owner, a.asset, a.floor) for a in batch.accounts],
            )
        try:
            if batch.clients:
                db.executemany(
                    "INSERT INTO clients VALUES (?, ?, ?)",
                    [(a, c, batch_no) for a, c in batch.clients],
                )
        except sqlite3.IntegrityError as e:
            raise DuplicateTransfer(f"client exists: {e}") from e
        deltas = account_deltas(batch)
        ids = self._account_ids(db, set(deltas) | set(batch.expected_versions))
        for name, expected in batch.expected_versions.items():
            (version,) = db.execute(
                "SELECT version FROM accounts WHERE id = ?", (ids[name],)
            ).fetchone()
            if version != expected:
                raise StaleState(name, expected, version)
        entries = entry_rows(batch.transactions, first_seq)
        txn_rows = [
            (first_seq + i, t.transfer_id, t.kind, batch.ts_ns)
            for i, t in enumerate(batch.transactions)
        ]
        try:
            db.executemany(
                "INSERT INTO entry_stage VALUES (?, ?, ?, ?, ?)",
                [(s, n, ids[a], asset, amount) for s, n, a, asset, amount in entries],
            )
            db.executemany(
                "INSERT INTO transactions VALUES (?, ?, ?, ?, ?)",
                [(s, tid, kind, batch_no, ts) for s, tid, kind, ts in txn_rows],
            )
        except sqlite3.IntegrityError as e:
            if "unbalanced" in str(e):
                raise UnbalancedTransaction("?", "?", 0) from e
            raise DuplicateTransfer(str(e)) from e
        db.executemany(
            "INSERT INTO holds VALUES (?, ?, ?, ?, ?)",
            [
                (batch_no, n, ids[h.account], h.transfer_id, h.amount)
                for n, h in enumerate(batch.holds)
            ],
        )
        try:
            db.executemany(
                "INSERT INTO commands VALUES (?, ?, ?, ?, ?)",
                [(c.transfer_id, c.type, c.account_id, c.wire, batch_no) for c in batch.commands],
            )
        except sqlite3.IntegrityError as e:
            raise DuplicateTransfer(str(e)) from e
        placeholders = ", ".join("?" * 21)
        db.executemany(
            f"INSERT OR REPLACE INTO orders ({ORDER_COLUMNS}) VALUES ({placeholders})",
            [order_tuple(o, as_text=True) for o in batch.orders],
        )
        db.executemany(
            f"INSERT OR REPLACE INTO payments ({PAYMENT_COLUMNS}) VALUES ({', '.join('?' * 12)})",
            [payment_tuple(p, as_text=True) for p in batch.payments],
        )
        db.executemany(
            "INSERT INTO transitions VALUES (?, ?, ?, ?, ?, ?)",
            [
                (batch_no, n, t.subject, t.status, t.cause, t.ts)
                for n, t in enumerate(batch.transitions)
            ],
        )
        db.executemany(
            "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    f.fill_id,
                    first_seq + f.txn_index,
                    f.order_id,
                    f.account_id,
                    f.symbol,
                    f.quantity_units,
                    decimal_text(f.price),
                    f.notional_minor,
                    f.fee_minor,
                    f.currency,
                    decimal_text(f.realised_pnl),
                    f.ts_event,
                )
                for f in batch.fills
            ],
        )
        db.executemany(
            "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    p.account_id,
                    p.symbol,
                    p.quantity_units,
                    decimal_text(p.avg_cost),
                    decimal_text(p.realised_pnl),
                    decimal_text(p.commission),
                    first_seq + p.txn_index,
                )
                for p in batch.positions
            ],
        )
        new_last_seq = last_seq + len(batch.transactions)
        db.executemany(
            "INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
            [
                (
                    last_event_seq + 1 + i,
                    e.event_id,
                    e.account_id,
                    e.type,
                    new_last_seq if e.txn_index is None else first_seq + e.txn_index,
                    orjson.dumps(e.payload).decode(),
                    batch.ts_ns,
                )
                for i, e in enumerate(batch.events)
            ],
        )
        db.executemany(
            "INSERT INTO dead_letters (transfer_id, account_id, raw, reason, detail, source, "
            "ts_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (d.transfer_id, d.account_id, d.raw, d.reason, d.detail, d.source, batch.ts_ns)
                for d in batch.dead_letters
            ],
        )
        last_touch = _last_touch(batch, first_seq)
        try:
            db.executemany(
                "UPDATE accounts SET balance = balance + ?, pending = pending + ?, "
                "version = version + 1, last_seq = max(last_seq, ?) WHERE id = ?",
                [(b, p, last_touch.get(name, 0), ids[name]) for name, (b, p) in deltas.items()],
            )
        except sqlite3.IntegrityError as e:
            raise FloorViolation(str(e)) from e
        head_hash = prev_hash
        if batch.transactions:
            head_hash = chain_hash(
                prev_hash, txn_rows, [(s, n, a, asset, amt) for s, n, a, asset, amt in entries]
            )
            db.execute(
                "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)",
                (batch_no, prev_hash, head_hash, first_seq, new_last_seq, batch.ts_ns),
            )
        db.execute(
            "UPDATE chain_head SET batch_no = ?, last_seq = ?, last_event_seq = ?, hash = ?, "
            "inbox_cursor = coalesce(?, inbox_cursor) WHERE id = 1",
            (
                batch_no,
                new_last_seq,
                last_event_seq + len(batch.events),
                head_hash,
                batch.inbox_cursor,
            ),
        )
        return CommitResult(batch_no, first_seq, new_last_seq)

    def _account_ids(self, db: sqlite3.Connection, names: set[str]) -> dict[str, int]:
        missing = [n for n in names if n not in self._ids]
        for start in range(0, len(missing), _CHUNK):
            chunk = missing[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            for id_, name in db.execute(
                f"SELECT id, name FROM accounts WHERE name IN ({marks})", chunk
            ):
                self._ids[name] = id_
        return {n: self._ids[n] for n in names}

    # --- reads ------------------------------------------------------------------------

    async def known_transfers(self, transfer_ids: Sequence[str]) -> set[str]:
        return await self._run(self._known, list(transfer_ids))

    def _known(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            found.update(
                t
                for (t,) in self._db.execute(
                    f"SELECT transfer_id FROM commands WHERE transfer_id IN ({marks}) "
                    f"UNION SELECT transfer_id FROM dead_letters WHERE transfer_id IN ({marks}) "
                    "AND redriven_ns IS NULL",
                    chunk + chunk,
                )
            )
        return found

    async def load_clients(self, account_ids: Sequence[AccountId]) -> dict[AccountId, StoredClient]:
        return await self._run(self._load_clients, list(account_ids))

    def _load_clients(self, ids: list[str] | None) -> dict[AccountId, StoredClient]:
        db = self._db
        where, args = "", []
        if ids is not None:
            if not ids:
                return {}
            where = f" WHERE account_id IN ({', '.join('?' * len(ids))})"
            args = ids
        clients: dict[str, str] = {
            a: c for a, c, _ in db.execute(f"SELECT * FROM clients{where}", args)
        }
        if not clients:
            return {}
        owner_where = "" if ids is None else where.replace("account_id", "owner")
        last: dict[str, int] = {}
        balances: dict[str, dict[Asset, Balance]] = {a: {} for a in clients}
        for owner, asset, bal, pend, ver, floor, last_seq in db.execute(
            "SELECT owner, asset, balance, pending, version, floor, last_seq FROM accounts"
            + (owner_where or " WHERE owner IS NOT NULL"),
            args,
        ):
            if owner in balances:
                balances[owner][Asset(asset)] = Balance(bal, pend, ver, floor)
                last[owner] = max(last.get(owner, 0), last_seq)
        positions: dict[str, dict[str, StoredPosition]] = {a: {} for a in clients}
        for account, symbol, units, cost, realised, commission, seq in db.execute(
            f"SELECT * FROM positions{where}", args
        ):
            if account in positions:
                positions[account][symbol] = StoredPosition(
                    units, Decimal(cost), Decimal(realised), Decimal(commission), seq
                )
        return {
            AccountId(a): StoredClient(
                AccountId(a), base, balances[a], positions[a], last.get(a, 0)
            )
            for a, base in clients.items()
        }

    async def open_orders(self) -> list[OrderRow]:
        return await self._run(self._open_orders)

    def _open_orders(self) -> list[OrderRow]:
        rows = self._db.execute(
            f"SELECT {OPEN_ORDER_COLUMNS} FROM orders WHERE status IN (?, ?, ?) "
            "ORDER BY ts_accepted, order_id",
            OPEN_STATUSES,
        )
        return [open_order_from_row(r) for r in rows]

    async def pending_payments(self) -> list[PaymentRow]:
        return await self._run(self._pending_payments)

    def _pending_payments(self) -> list[PaymentRow]:
        rows = self._db.execute(
            f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE status = ? ORDER BY ts_accepted",
            (PaymentStatus.PENDING.value,),
        )
        return [payment_from_row(r) for r in rows]

    async def get_order(self, order_id: OrderId) -> OrderRecord | None:
        return await self._run(self._get_order, order_id)

    def _get_order(self, order_id: str) -> OrderRecord | None:
        row = self._db.execute(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = ?", (order_id,)
        ).fetchone()
        return None if row is None else order_from_row(row).record

    async def list_orders(
        self, account_id: AccountId, *, status: OrderStatus | None, cursor: str | None, limit: int
    ) -> OrderPage:
        return await self._run(self._list_orders, account_id, status, cursor, limit)

    def _list_orders(
        self, account_id: str, status: OrderStatus | None, cursor: str | None, limit: int
    ) -> OrderPage:
        sql = f"SELECT {ORDER_COLUMNS} FROM orders WHERE account_id = ?"
        args: list[object] = [account_id]
        if status is not None:
            sql += " AND status = ?"
            args.append(status.value)
        if cursor is not None:
            ts, order_id = _parse_cursor(cursor)
            sql += " AND (ts_accepted < ? OR (ts_accepted = ? AND order_id < ?))"
            args += [ts, ts, order_id]
        sql += " ORDER BY ts_accepted DESC, order_id DESC LIMIT ?"
        args.append(limit + 1)
        rows = [order_from_row(r).record for r in self._db.execute(sql, args)]
        return _page(rows, limit)

    async def get_payment(self, payment_id: PaymentId) -> PaymentRecord | None:
        return await self._run(self._get_payment, payment_id)

    def _get_payment(self, payment_id: str) -> PaymentRecord | None:
        row = self._db.execute(
            f"SELECT {PAYMENT_COLUMNS} FROM payments WHERE payment_id = ?", (payment_id,)
        ).fetchone()
        return None if row is None else payment_from_row(row).record

    async def account_entries(
        self, account_id: AccountId, *, asset: Asset | None, cursor: str | None, limit: int
    ) -> EntryPage | None:
        after = None if cursor is None else parse_entry_cursor(cursor)
        return await self._run(self._account_entries, account_id, asset, after, limit)

    def _account_entries(
        self, account_id: str, asset: str | None, before: tuple[int, int] | None, limit: int
    ) -> EntryPage | None:
        # One call on the store's only thread: no commit lands between these reads.
        db = self._db
        if (
            db.execute("SELECT 1 FROM clients WHERE account_id = ?", (account_id,)).fetchone()
            is None
        ):
            return None
        sql, args = "SELECT id, balance FROM accounts WHERE owner = ?", [account_id]
        if asset is not None:
            sql += " AND asset = ?"
            args.append(asset)
        balances: dict[int, int] = dict(db.execute(sql, args).fetchall())
        if not balances:
            return EntryPage([], None)
        marks = ", ".join("?" * len(balances))
        where, page_args = f"e.account_id IN ({marks})", list(balances)
        if before is not None:
            where += " AND (e.seq < ? OR (e.seq = ? AND e.n < ?))"
            page_args += [before[0], before[0], before[1]]
        rows = db.execute(
            "SELECT e.seq, e.n, e.account_id, e.asset, e.amount, t.transfer_id, t.kind, "
            f"t.ts_posted FROM entries e JOIN transactions t ON t.seq = e.seq WHERE {where} "
            "ORDER BY e.seq DESC, e.n DESC LIMIT ?",
            [*page_args, limit + 1],
        ).fetchall()
        if not rows:
            return EntryPage([], None)
        top_seq, top_n = rows[0][0], rows[0][1]
        on_page = sorted({r[2] for r in rows[:limit]})
        later = dict(
            db.execute(
                "SELECT account_id, sum(amount) FROM entries WHERE account_id IN "
                f"({', '.join('?' * len(on_page))}) AND (seq > ? OR (seq = ? AND n > ?)) "
                "GROUP BY account_id",
                [*on_page, top_seq, top_seq, top_n],
            ).fetchall()
        )
        return statement_page(rows, {a: balances[a] - later.get(a, 0) for a in on_page}, limit)

    # --- outbox, inbox, dead letters --------------------------------------------------------

    async def unsent_events(self, limit: int) -> list[OutboxEvent]:
        return await self._run(self._events, "sent_ns IS NULL", [], limit)

    async def unsent_event_count(self) -> int:
        return await self._run(self._unsent_count)

    def _unsent_count(self) -> int:
        # The partial index outbox_unsent holds exactly these rows.
        (count,) = self._db.execute("SELECT count(*) FROM outbox WHERE sent_ns IS NULL").fetchone()
        return int(count)

    async def events_after(
        self, after_seq: int, limit: int, account_id: AccountId | None = None
    ) -> list[OutboxEvent]:
        if account_id is None:
            return await self._run(self._events, "event_seq > ?", [after_seq], limit)
        return await self._run(
            self._events, "account_id = ? AND event_seq > ?", [account_id, after_seq], limit
        )

    def _events(self, where: str, args: list[object], limit: int) -> list[OutboxEvent]:
        rows = self._db.execute(
            "SELECT event_seq, event_id, account_id, type, ledger_seq, payload, ts_ns "
            f"FROM outbox WHERE {where} ORDER BY event_seq LIMIT ?",
            [*args, limit],
        )
        return [OutboxEvent(s, i, AccountId(a), t, ls, p, ts) for s, i, a, t, ls, p, ts in rows]

    async def mark_sent(self, event_seqs: Sequence[int], ts_ns: int) -> None:
        await self._run(
            self._executemany,
            "UPDATE outbox SET sent_ns = ? WHERE event_seq = ?",
            [(ts_ns, s) for s in event_seqs],
        )

    def _executemany(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(sql, rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def inbox_append(self, wires: Sequence[str], ts_ns: int) -> None:
        await self._run(
            self._executemany,
            "INSERT INTO inbox (wire, ts_ns) VALUES (?, ?)",
            [(w, ts_ns) for w in wires],
        )

    async def inbox_read(self, limit: int) -> list[InboxMessage]:
        return await self._run(self._inbox_read, limit)

    def _inbox_read(self, limit: int) -> list[InboxMessage]:
        rows = self._db.execute(
            "SELECT inbox_id, wire FROM inbox WHERE inbox_id > "
            "(SELECT inbox_cursor FROM chain_head WHERE id = 1) ORDER BY inbox_id LIMIT ?",
            (limit,),
        )
        return [InboxMessage(i, w) for i, w in rows]

    async def find_command(self, transfer_id: str) -> str | None:
        return await self._run(self._find_command, transfer_id)

    def _find_command(self, transfer_id: str) -> str | None:
        row = self._db.execute(
            "SELECT wire FROM commands WHERE transfer_id = ?", (transfer_id,)
        ).fetchone()
        if row is not None:
            return str(row[0])
        # Queued but not processed yet: the inbox holds it (a short scan of the unread tail).
        for (wire,) in self._db.execute(
            "SELECT wire FROM inbox WHERE inbox_id > "
            "(SELECT inbox_cursor FROM chain_head WHERE id = 1) AND instr(wire, ?) > 0",
            (transfer_id,),
        ):
            with contextlib.suppress(orjson.JSONDecodeError):
                wire_obj = orjson.loads(wire)
                if isinstance(wire_obj, dict) and wire_obj.get("transfer_id") == transfer_id:
                    return str(wire)
        return None

    async def dead_letters(self, *, include_redriven: bool, limit: int) -> list[DeadLetter]:
        where = "1" if include_redriven else "redriven_ns IS NULL"
        return await self._run(self._dead_letters, where, [], limit)

    async def unpublished_dead_letters(self, limit: int) -> list[DeadLetter]:
        return await self._run(self._dead_letters, "published_ns IS NULL", [], limit)

    def _dead_letters(self, where: str, args: list[object], limit: int) -> list[DeadLetter]:
        rows = self._db.execute(
            "SELECT dlq_id, transfer_id, account_id, raw, reason, detail, source, ts_ns, "
            f"redriven_ns FROM dead_letters WHERE {where} ORDER BY dlq_id LIMIT ?",
            [*args, limit],
        )
        return [DeadLetter(*r) for r in rows]

    async def mark_dead_letters_published(self, dlq_ids: Sequence[int], ts_ns: int) -> None:
        await self._run(
            self._executemany,
            "UPDATE dead_letters SET published_ns = ? WHERE dlq_id = ?",
            [(ts_ns, i) for i in dlq_ids],
        )

    async def mark_redriven(
        self, dlq_ids: Sequence[int], actor: str, ts_ns: int
    ) -> list[DeadLetter]:
        return await self._run(self._mark_redriven, list(dlq_ids), actor, ts_ns)

    def _mark_redriven(self, ids: list[int], actor: str, ts_ns: int) -> list[DeadLetter]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            marks = ", ".join("?" * len(ids)) or "NULL"
            letters = self._dead_letters(
                f"dlq_id IN ({marks}) AND redriven_ns IS NULL", list(ids), len(ids) + 1
            )
            db.executemany(
                "UPDATE dead_letters SET redriven_ns = ? WHERE dlq_id = ?",
                [(ts_ns, d.dlq_id) for d in letters],
            )
            db.executemany(
                "INSERT INTO dlq_audit (dlq_id, action, actor, ts_ns) VALUES (?, 'redrive', ?, ?)",
                [(d.dlq_id, actor, ts_ns) for d in letters],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return letters

    # --- snapshot and verify ----------------------------------------------------------

    async def snapshot(self, day_start_ns: int) -> SnapshotRows:
        return await self._run(self._snapshot, day_start_ns)

    def _snapshot(self, day_start_ns: int) -> SnapshotRows:
        db = self._db
        db.execute("BEGIN")  # one read transaction: a consistent view
        try:
            clients = self._load_clients(None)
            fills = [
                (AccountId(a), s, q, Decimal(p))
                for a, s, q, p in db.execute(
                    "SELECT account_id, symbol, quantity_units, price FROM fills "
                    "WHERE ts_event >= ? ORDER BY seq",
                    (day_start_ns,),
                )
            ]
            (ledger_seq,) = db.execute("SELECT last_seq FROM chain_head WHERE id = 1").fetchone()
        finally:
            db.execute("COMMIT")
        return SnapshotRows(list(clients.values()), fills, ledger_seq)

    async def verify(self) -> VerifyReport:
        return await self._run(self._verify)

    def _verify(self) -> VerifyReport:
        db = self._db
        report = VerifyReport()
        previous = GENESIS_HASH
        links = db.execute(
            "SELECT batch_no, prev_hash, hash, first_seq, last_seq FROM batches ORDER BY batch_no"
        ).fetchall()
        for row in links:
            link = BatchLink(row[0], bytes(row[1]), bytes(row[2]), row[3], row[4])
            txns = db.execute(
                "SELECT seq, transfer_id, kind, ts_posted FROM transactions WHERE batch_no = ? "
                "ORDER BY seq",
                (link.batch_no,),
            ).fetchall()
            entries = db.execute(
                "SELECT e.seq, e.n, a.name, e.asset, e.amount FROM entries e "
                "JOIN accounts a ON a.id = e.account_id WHERE e.seq BETWEEN ? AND ? "
                "ORDER BY e.seq, e.n",
                (link.first_seq, link.last_seq),
            ).fetchall()
            previous = check_link(previous, link, txns, entries, report)
        for seq, asset, total in db.execute(
            "SELECT seq, asset, sum(amount) FROM entries GROUP BY seq, asset "
            "HAVING sum(amount) <> 0 ORDER BY seq LIMIT 20"
        ):
            report.problems.append(f"transaction seq {seq}: sums to {total} in {asset}, not 0")
        for (seq,) in db.execute(
            "SELECT t.seq FROM transactions t LEFT JOIN batches b ON b.batch_no = t.batch_no "
            "WHERE b.batch_no IS NULL ORDER BY t.seq LIMIT 20"
        ):
            report.problems.append(f"transaction seq {seq}: not in any batch of the chain")
        for name, stored, summed in db.execute(
            "SELECT a.name, a.balance, coalesce(sum(e.amount), 0) FROM accounts a "
            "LEFT JOIN entries e ON e.account_id = a.id GROUP BY a.id "
            "HAVING a.balance <> coalesce(sum(e.amount), 0) ORDER BY a.name LIMIT 20"
        ):
            report.problems.append(f"account {name}: balance {stored}, entries sum to {summed}")
        for name, stored, summed in db.execute(
            "SELECT a.name, a.pending, coalesce(sum(h.amount), 0) FROM accounts a "
            "LEFT JOIN holds h ON h.account_id = a.id GROUP BY a.id "
            "HAVING a.pending <> coalesce(sum(h.amount), 0) ORDER BY a.name LIMIT 20"
        ):
            report.problems.append(f"account {name}: pending {stored}, holds sum to {summed}")
        for account, symbol, units, balance in db.execute(
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
        """SQLite has no partitions: one table (documented); nothing to create."""
        return []


def _last_touch(batch: Batch, first_seq: int) -> dict[str, int]:
    # The seq of the last transaction that posted to each account.
    last: dict[str, int] = {}
    for i, txn in enumerate(batch.transactions):
        for posting in txn.postings:
            last[posting.account] = first_seq + i
    return last


def _parse_cursor(cursor: str) -> tuple[int, str]:
    ts, _, order_id = cursor.partition(":")
    try:
        return int(ts), order_id
    except ValueError:
        raise ValueError(f"cursor must come from a previous page, was {cursor!r}") from None


def _page(rows: list[OrderRecord], limit: int) -> OrderPage:
    if len(rows) <= limit:
        return OrderPage(rows, None)
    last = rows[limit - 1]
    return OrderPage(rows[:limit], f"{last.ts_accepted}:{last.order_id}")
