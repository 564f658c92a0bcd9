"""What only the PostgreSQL store has: the service role's privileges and monthly partitions."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from ledger.errors import StoreUnavailable
from ledger.postgres import PostgresLedgerStore, partition_name
from tests.ledger_harness import PostgresHarness, deposit_batch

pytestmark = pytest.mark.integration


def _ns(year: int, month: int, day: int) -> int:
    return int(dt.datetime(year, month, day, 12, tzinfo=dt.UTC).timestamp()) * 1_000_000_000


@pytest.fixture
async def harness(postgres_dsn):
    h = PostgresHarness(postgres_dsn)
    await h.store.start()
    yield h
    await h.store.stop()


@pytest.mark.parametrize(
    "statement",
    ["UPDATE entries SET amount = 0", "DELETE FROM transactions", "TRUNCATE entries CASCADE"],
)
async def test_the_service_role_may_not_change_the_journal(harness, statement):
    await harness.store.commit(deposit_batch("A", 100, "t1", open_client=True))

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await harness.raw([statement], role="tickgate_ledger")


async def test_the_service_role_may_append_and_read(harness):
    await harness.store.commit(deposit_batch("A", 100, "t1", open_client=True))

    rows = await harness.raw(
        ["INSERT INTO inbox (wire, ts_ns) VALUES ('{}', 1)", "SELECT count(*) FROM entries"],
        role="tickgate_ledger",
    )

    assert rows == [(2,)]


async def test_partitions_are_created_for_this_month_and_the_months_ahead(harness):
    created = await harness.store.ensure_partitions(_ns(2026, 11, 15), months_ahead=2)
    again = await harness.store.ensure_partitions(_ns(2026, 11, 20), months_ahead=2)

    assert created == [
        partition_name(2026, 11),
        partition_name(2026, 12),
        partition_name(2027, 1),
    ]
    assert again == []


async def test_entries_land_in_the_partition_of_their_month(harness):
    await harness.store.ensure_partitions(_ns(2026, 11, 1), months_ahead=1)

    await harness.store.commit(
        deposit_batch("A", 100, "nov", open_client=True, ts_ns=_ns(2026, 11, 30))
    )
    await harness.store.commit(deposit_batch("A", 100, "dec", ts_ns=_ns(2026, 12, 1)))
    await harness.store.commit(deposit_batch("A", 100, "later", ts_ns=_ns(2027, 6, 1)))

    rows = await harness.raw(
        [
            "SELECT t.transfer_id, e.tableoid::regclass::text FROM entries e "
            "JOIN transactions t USING (seq) WHERE e.amount > 0 ORDER BY e.seq"
        ]
    )
    assert rows == [
        ("nov", partition_name(2026, 11)),
        ("dec", partition_name(2026, 12)),
        ("later", "entries_default"),
    ]
    assert (await harness.store.verify()).is_clean


async def test_a_store_that_cannot_connect_raises_store_unavailable(shared_postgres):

    store = PostgresLedgerStore(
        f"postgresql://postgres@127.0.0.1:{shared_postgres.port + 0}/nope_db"
    )

    with pytest.raises(StoreUnavailable):
        await store.start()
