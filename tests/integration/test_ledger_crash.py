"""Crash tests: each ends with verify clean, no duplicate and no loss.

Expected balances are computed by hand from the commands sent: AAPL is
quoted at its reference price 272.50 plus or minus one tick, so a market
buy of one share costs 272.51 plus the 0.01 fee.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from decimal import Decimal

import asyncpg
import orjson
import pytest

from ledger.bank import BankSettings, SimulatedBank
from ledger.errors import StoreUnavailable
from ledger.inbox import InboxBus, InboxSource
from ledger.money import cash_asset
from ledger.postgres import PostgresLedgerStore
from ledger.relay import ListenerSink
from ledger.service import LedgerService, LedgerServiceSettings
from ledger.venue import ExecutionSettings
from orders.commands import Command
from orders.types import AccountId
from portfolio.store import AccountRecord
from tests.ledger_faults import LedgerProcess, consume_all, count, create_topics, produce
from tests.ledger_harness import default_master, order, payment, priced_book

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]

USD = cash_asset("USD")
OPEN_CENTS = 100_000_000  # each account opens with 1,000,000.00
AAPL_COST_CENTS = 27_252  # 272.51 + 0.01 fee


def _workload(seed: int, n: int, accounts: int):
    rng = random.Random(seed)
    commands: list[Command] = []
    expected: Counter[AccountId] = Counter()
    for k in range(n):
        account = AccountId(f"ACC-{rng.randint(1, accounts):04d}")
        if rng.random() < 0.5:
            cents = rng.randint(1, 100_000)
            commands.append(payment(f"s{seed}-{k}", account, "deposit", f"{cents / 100:.2f}"))
            expected[account] += cents
        else:
            commands.append(order(f"s{seed}-{k}", account, "AAPL", "buy", "1"))
            expected[account] -= AAPL_COST_CENTS
    duplicates = rng.sample(commands, n // 10)
    return commands, duplicates, expected


async def _wait_for(predicate, timeout_s=90.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met before the deadline")


async def test_sigkill_between_db_commit_and_offset_commit_loses_and_duplicates_nothing(
    tmp_path, postgres_dsn, private_tansu
):
    bootstrap = private_tansu.bootstrap
    await create_topics(bootstrap, "orders.submitted", "orders.events", "orders.dlq")
    ledger = LedgerProcess(
        [
            "--store",
            postgres_dsn,
            "--kafka",
            bootstrap,
            "--static-quotes",
            "--open-accounts",
            "5",
            "--batch-max-commands",
            "20",
        ],
        str(tmp_path / "ledger.log"),
    )
    ledger.start()
    commands, duplicates, expected = _workload(seed=11, n=300, accounts=5)
    await produce(bootstrap, commands + duplicates)

    for _ in range(4):  # kill it at random points while it works through the backlog
        done = await count(postgres_dsn, "SELECT count(*) FROM commands")
        await _wait_for(lambda d=done: _more(postgres_dsn, d), timeout_s=60)
        ledger.kill()
        ledger.start()
    await _wait_for(lambda: _all_processed(postgres_dsn, len(commands)))
    assert ledger.terminate() == 0

    store = PostgresLedgerStore(postgres_dsn)
    await store.start()
    try:
        report = await store.verify()
        assert report.is_clean, report.problems
        ids = {c.transfer_id for c in commands}
        assert await store.known_transfers(list(ids)) == ids
        assert await count(postgres_dsn, "SELECT count(*) FROM commands") == len(commands)
        clients = await store.load_clients([AccountId(f"ACC-{n:04d}") for n in range(1, 6)])
        for account, client in clients.items():
            assert client.balances[USD].balance == OPEN_CENTS + expected[account], account
        outbox = await count(postgres_dsn, "SELECT count(*) FROM outbox")
    finally:
        await store.stop()
    events = await consume_all(bootstrap, "orders.events", expected_min=outbox)
    unique = {e["event_id"]: e for e in events}
    assert len(unique) == outbox  # every event arrived; repeats share an event_id
    fills = [
        e for e in unique.values() if e["type"] == "fill" and str(e["order_id"]).startswith("ord_")
    ]
    assert len(fills) == sum(1 for c in commands if hasattr(c, "symbol"))


# A backend of the ledger inside a write transaction that is not the relay's one-statement mark.
_BATCH_WRITER = (
    "SELECT backend_xid::text FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL "
    "AND query NOT LIKE 'UPDATE outbox%' AND query NOT LIKE 'UPDATE dead_letters%'"
)


async def _kill_mid_batch(ledger: LedgerProcess, watcher, timeout_s: float = 60.0) -> str:
    # SIGKILL the ledger as soon as one of its batch transactions is seen open; its xid.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        xid = await watcher.fetchval(_BATCH_WRITER)
        if xid is not None:
            ledger.kill()
            return str(xid)
    raise AssertionError("no batch transaction was seen open before the deadline")


async def _outcome(watcher, xid: str, timeout_s: float = 30.0) -> str:
    # How the killed transaction ended, once the server noticed its client is gone.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = await watcher.fetchval("SELECT pg_xact_status($1::text::xid8)", xid)
        if status != "in progress":
            return str(status)
        await asyncio.sleep(0.05)
    raise AssertionError(f"transaction {xid} still in progress")


async def test_sigkill_in_the_middle_of_a_batch_loses_and_duplicates_nothing(
    tmp_path, postgres_dsn, private_tansu
):
    bootstrap = private_tansu.bootstrap
    await create_topics(bootstrap, "orders.submitted", "orders.events", "orders.dlq")
    ledger = LedgerProcess(
        [
            "--store",
            postgres_dsn,
            "--kafka",
            bootstrap,
            "--static-quotes",
            "--open-accounts",
            "5",
            "--batch-max-commands",
            "400",
        ],
        str(tmp_path / "ledger.log"),
    )
    ledger.start()
    commands, duplicates, expected = _workload(seed=13, n=2_400, accounts=5)
    await produce(bootstrap, commands + duplicates)
    watcher = await asyncpg.connect(postgres_dsn)
    outcomes = []
    try:
        for _ in range(3):  # each kill lands while a batch's transaction is open
            xid = await _kill_mid_batch(ledger, watcher)
            outcomes.append(await _outcome(watcher, xid))
            ledger.start()
    finally:
        await watcher.close()
    await _wait_for(lambda: _all_processed(postgres_dsn, len(commands)))
    assert ledger.terminate() == 0

    # A killed batch is rolled back whole (or had committed just before the signal).
    assert set(outcomes) <= {"aborted", "committed"}
    assert "aborted" in outcomes
    store = PostgresLedgerStore(postgres_dsn)
    await store.start()
    try:
        report = await store.verify()
        assert report.is_clean, report.problems
        assert await count(postgres_dsn, "SELECT count(*) FROM commands") == len(commands)
        assert await count(postgres_dsn, "SELECT count(*) FROM dead_letters") == 0
        clients = await store.load_clients([AccountId(f"ACC-{n:04d}") for n in range(1, 6)])
        for account, client in clients.items():
            assert client.balances[USD].balance == OPEN_CENTS + expected[account], account
    finally:
        await store.stop()


async def _all_sent(dsn: str) -> bool:
    return await count(dsn, "SELECT count(*) FROM outbox WHERE sent_ns IS NULL") == 0


async def _settled(dsn: str, n: int) -> bool:
    return await count(dsn, "SELECT count(*) FROM payments WHERE status = 'settled' "
                       "AND kind = 'withdrawal'") >= n  # fmt: skip


async def _fetch(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def _more(dsn: str, done: int) -> bool:
    return await count(dsn, "SELECT count(*) FROM commands") > done + 10


async def _all_processed(dsn: str, n: int) -> bool:
    return await count(dsn, "SELECT count(*) FROM commands") >= n


async def test_postgres_restarted_mid_run_loses_and_duplicates_nothing(tmp_path, private_postgres):
    dsn = private_postgres.create_database("ledger")
    master = default_master()
    store = PostgresLedgerStore(dsn)
    await store.start()
    bank = SimulatedBank(BankSettings())
    service = LedgerService(
        store,
        InboxSource(store),
        master,
        priced_book(master, {"AAPL": ("272.49", "272.51")}),
        bank,
        settings=LedgerServiceSettings(
            retry_backoff_max_ms=200, execution=ExecutionSettings(fee_per_unit=Decimal("0.01"))
        ),
    )
    await service.start()
    accounts = [AccountId(f"ACC-{n:04d}") for n in range(1, 4)]
    await service.seed(
        [AccountRecord(a, "USD", 0, {"USD": 1_000_000.0}) for a in accounts], ts_event=0
    )
    bus = InboxBus(store, time.time_ns)
    commands, _, expected = _workload(seed=5, n=200, accounts=3)
    await bus.submit_raw([orjson.dumps(_wire(c)).decode() for c in commands[:100]])

    private_postgres.stop()  # immediate: like a crash
    await asyncio.sleep(0.3)  # the service now runs into a dead database and retries
    private_postgres.start()
    await _wait_for(lambda: _submit(bus, commands[100:]))
    await _wait_for(lambda: _all_processed(dsn, len(commands)))
    await service.stop()

    report = await store.verify()
    assert report.is_clean, report.problems
    clients = await store.load_clients(accounts)
    for account in accounts:
        assert clients[account].balances[USD].balance == OPEN_CENTS + expected[account]
    await store.stop()
    bank.close()


async def _submit(bus, commands) -> bool:
    try:
        await bus.submit_raw([orjson.dumps(_wire(c)).decode() for c in commands])
    except Exception:
        return False
    return True


def _wire(command):
    from orders.commands import command_to_wire

    return command_to_wire(command)


class _CrashAfterPublish(ListenerSink):
    # Publishes, then fails before the relay can mark the events sent, a few times.
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.received: list[str] = []

    async def publish(self, events):
        self.received += [e.event_id for e in events]
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailable("crash after publish")


async def test_a_relay_crash_after_publish_republishes_and_consumers_dedupe(tmp_path, postgres_dsn):
    master = default_master()
    store = PostgresLedgerStore(postgres_dsn)
    await store.start()
    bank = SimulatedBank(BankSettings())
    sink = _CrashAfterPublish(failures=3)
    service = LedgerService(
        store,
        InboxSource(store),
        master,
        priced_book(master, {"AAPL": ("272.49", "272.51")}),
        bank,
        sinks=[sink],
        settings=LedgerServiceSettings(relay_interval_ms=20),
    )
    await service.start()
    await service.seed(
        [AccountRecord(AccountId("ACC-0001"), "USD", 0, {"USD": 1000.0})], ts_event=0
    )
    bus = InboxBus(store, time.time_ns)
    for k in range(5):
        await bus.submit(payment(f"r{k}", "ACC-0001", "deposit", "1.00"))

    async def all_sent():
        return not await store.unsent_events(10) and await _all_processed(postgres_dsn, 5)

    await _wait_for(all_sent)
    await service.stop()

    outbox = await count(postgres_dsn, "SELECT count(*) FROM outbox")
    assert len(sink.received) > outbox  # some were published more than once
    assert len(set(sink.received)) == outbox  # and dedupe by event_id leaves each once
    assert (await store.verify()).is_clean
    await store.stop()
    bank.close()
