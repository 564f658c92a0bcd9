"""The ledger store contract, run against SQLite and a real PostgreSQL."""

from __future__ import annotations

import pytest

from ledger.errors import DuplicateTransfer, FloorViolation, StaleState
from ledger.journal import (
    Batch,
    CommandRow,
    DeadLetterDraft,
    EventDraft,
    Hold,
    HouseAccount,
    LedgerAccountSpec,
    Posting,
    TransactionDraft,
    client_account,
    house_account,
)
from ledger.money import instrument_asset
from orders.types import AccountId
from tests.ledger_harness import USD, PostgresHarness, SqliteHarness, deposit_batch

pytestmark = pytest.mark.integration

ACCOUNT = AccountId("ACC-1")
CASH = client_account(ACCOUNT, USD)
RAIL = house_account(HouseAccount.RAIL, USD)


@pytest.fixture(params=["sqlite", "postgres"])
async def harness(request, tmp_path):
    if request.param == "sqlite":
        h: SqliteHarness | PostgresHarness = SqliteHarness(tmp_path / "ledger.db")
    else:
        h = PostgresHarness(request.getfixturevalue("postgres_dsn"))
    await h.store.start()
    yield h
    await h.store.stop()


async def _funded(harness, amount=10_000):
    await harness.store.commit(deposit_batch(ACCOUNT, amount, "t-open", open_client=True))


def _balance(clients, asset=USD):
    return clients[ACCOUNT].balances[asset]


# --- balances and the journal ---------------------------------------------------------------


async def test_a_deposit_moves_the_balance_and_assigns_the_first_seq(harness):
    result = await harness.store.commit(deposit_batch(ACCOUNT, 12_345, "t1", open_client=True))

    clients = await harness.store.load_clients([ACCOUNT])
    assert (result.first_seq, result.last_seq) == (1, 1)
    assert _balance(clients).balance == 12_345
    assert clients[ACCOUNT].base_currency == "USD"
    assert clients[ACCOUNT].last_seq == 1


async def test_seqs_continue_across_batches_without_gaps(harness):
    await _funded(harness)

    second = await harness.store.commit(deposit_batch(ACCOUNT, 1, "t2"))
    third = await harness.store.commit(deposit_batch(ACCOUNT, 1, "t3"))

    assert (second.first_seq, third.first_seq) == (2, 3)


async def test_an_unbalanced_transaction_written_as_raw_sql_is_refused(harness):
    await _funded(harness)
    ids = {name: i for i, name in await harness.raw(["SELECT id, name FROM accounts"])}

    if harness.name == "sqlite":
        statements = [
            f"INSERT INTO entry_stage VALUES (100, 0, {ids[CASH]}, 'cash:USD', 500)",
            f"INSERT INTO entry_stage VALUES (100, 1, {ids[RAIL]}, 'cash:USD', -499)",
            "INSERT INTO transactions VALUES (100, 'raw-1', 'deposit', 99, 0)",
        ]
    else:
        statements = [
            "INSERT INTO transactions VALUES (100, 'raw-1', 'deposit', 99, 0)",
            f"INSERT INTO entries VALUES (100, 0, {ids[CASH]}, 'cash:USD', 500, now())",
            f"INSERT INTO entries VALUES (100, 1, {ids[RAIL]}, 'cash:USD', -499, now())",
        ]
    with pytest.raises(harness.errors, match="unbalanced"):
        await harness.raw(statements)

    assert await harness.raw(["SELECT count(*) FROM transactions WHERE seq = 100"]) == [(0,)]


async def test_an_entry_added_to_a_committed_transaction_is_refused(harness):
    await _funded(harness)
    ids = {name: i for i, name in await harness.raw(["SELECT id, name FROM accounts"])}

    if harness.name == "sqlite":
        statements = [f"INSERT INTO entries VALUES (1, 2, {ids[CASH]}, 'cash:USD', 7)"]
    else:
        statements = [f"INSERT INTO entries VALUES (1, 2, {ids[CASH]}, 'cash:USD', 7, now())"]
    with pytest.raises(harness.errors):
        await harness.raw(statements)

    assert (await harness.store.verify()).is_clean


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE entries SET amount = amount + 1",
        "UPDATE transactions SET kind = 'x'",
        "UPDATE batches SET first_seq = first_seq",
        "UPDATE holds SET amount = 0",
    ],
)
async def test_update_of_the_journal_is_refused(harness, statement):
    await _funded(harness)
    await harness.store.commit(Batch(ts_ns=1, holds=[Hold(CASH, "h", 1)]))

    with pytest.raises(harness.errors, match="append-only"):
        await harness.raw([statement])


@pytest.mark.parametrize("table", ["entries", "transactions", "batches", "commands"])
async def test_delete_from_the_journal_is_refused(harness, table):
    await _funded(harness)
    await harness.store.commit(_with_command(deposit_batch(ACCOUNT, 5, "t-cmd"), "t-cmd"))

    with pytest.raises(harness.errors, match="append-only"):
        await harness.raw([f"DELETE FROM {table}"])


def _with_command(batch: Batch, transfer_id: str) -> Batch:
    batch.commands.append(CommandRow(transfer_id, "payment.submit", ACCOUNT, "{}"))
    return batch


# --- transfer ids -------------------------------------------------------------------------


async def test_a_transfer_id_is_unique_forever(harness):
    await _funded(harness)

    with pytest.raises(DuplicateTransfer):
        await harness.store.commit(deposit_batch(ACCOUNT, 1, "t-open"))

    clients = await harness.store.load_clients([ACCOUNT])
    assert _balance(clients).balance == 10_000


async def test_a_processed_command_is_known_by_its_transfer_id(harness):
    await _funded(harness)
    await harness.store.commit(_with_command(deposit_batch(ACCOUNT, 5, "t-a"), "cmd-a"))

    known = await harness.store.known_transfers(["cmd-a", "cmd-b"])

    assert known == {"cmd-a"}
    assert await harness.store.find_command("cmd-a") == "{}"
    with pytest.raises(DuplicateTransfer):
        await harness.store.commit(_with_command(Batch(ts_ns=1), "cmd-a"))


# --- holds and floors ---------------------------------------------------------------------


async def test_a_hold_counts_against_the_available_balance(harness):
    await _funded(harness, 10_000)

    await harness.store.commit(Batch(ts_ns=1, holds=[Hold(CASH, "order-1", 6_000)]))

    balance = _balance(await harness.store.load_clients([ACCOUNT]))
    assert (balance.balance, balance.pending, balance.available) == (10_000, 6_000, 4_000)


async def test_a_hold_beyond_the_available_balance_is_refused_by_the_database(harness):
    await _funded(harness, 10_000)
    await harness.store.commit(Batch(ts_ns=1, holds=[Hold(CASH, "order-1", 6_000)]))

    with pytest.raises(FloorViolation):
        await harness.store.commit(Batch(ts_ns=2, holds=[Hold(CASH, "order-2", 4_001)]))

    balance = _balance(await harness.store.load_clients([ACCOUNT]))
    assert balance.pending == 6_000


async def test_posting_against_a_hold_and_releasing_it_nets_out(harness):
    await _funded(harness, 10_000)
    await harness.store.commit(Batch(ts_ns=1, holds=[Hold(CASH, "w-1", 6_000)]))
    spend = deposit_batch(ACCOUNT, -2_500, "spend-1")
    spend.holds.append(Hold(CASH, "w-1", -6_000))

    await harness.store.commit(spend)

    balance = _balance(await harness.store.load_clients([ACCOUNT]))
    assert (balance.balance, balance.pending, balance.available) == (7_500, 0, 7_500)
    assert (await harness.store.verify()).is_clean


async def test_an_overdraft_of_client_cash_is_refused(harness):
    await _funded(harness, 1_000)

    with pytest.raises(FloorViolation):
        await harness.store.commit(deposit_batch(ACCOUNT, -1_001, "overdraw"))


async def test_a_batch_executed_against_an_old_version_is_refused(harness):
    await _funded(harness)
    version = _balance(await harness.store.load_clients([ACCOUNT])).version
    await harness.store.commit(deposit_batch(ACCOUNT, 1, "moved"))
    stale = deposit_batch(ACCOUNT, 1, "late")
    stale.expected_versions[CASH] = version

    with pytest.raises(StaleState):
        await harness.store.commit(stale)


# --- verify -------------------------------------------------------------------------------


async def test_verify_is_clean_on_an_untouched_ledger(harness):
    await _funded(harness)
    for n in range(3):
        await harness.store.commit(deposit_batch(ACCOUNT, 100 + n, f"t-{n}"))

    report = await harness.store.verify()

    assert report.is_clean, report.problems
    assert (report.batches, report.transactions, report.entries) == (4, 4, 8)
    assert report.summary().startswith("ledger verify: clean")


async def test_verify_names_the_batch_of_a_tampered_entry(harness):
    await _funded(harness)
    for n in range(3):
        await harness.store.commit(deposit_batch(ACCOUNT, 100 + n, f"t-{n}"))

    await harness.tamper("UPDATE entries SET amount = amount + 1 WHERE seq = 3 AND amount > 0")
    report = await harness.store.verify()

    assert not report.is_clean
    assert report.problems[0].startswith("batch 3 (seq 3..3): hash does not match")
    assert any(p.startswith("transaction seq 3: sums to 1") for p in report.problems)


async def test_verify_names_an_account_whose_balance_does_not_match_its_entries(harness):
    await _funded(harness, 500)

    await harness.tamper(f"UPDATE accounts SET balance = 900 WHERE name = '{CASH}'")
    report = await harness.store.verify()

    assert report.problems == [f"account {CASH}: balance 900, entries sum to 500"]


async def test_verify_catches_a_rewritten_chain_link(harness):
    await _funded(harness)
    await harness.store.commit(deposit_batch(ACCOUNT, 1, "t-2"))

    if harness.name == "sqlite":
        await harness.tamper("UPDATE batches SET prev_hash = zeroblob(32) WHERE batch_no = 2")
    else:
        await harness.tamper(
            "UPDATE batches SET prev_hash = decode(repeat('00', 32), 'hex') WHERE batch_no = 2"
        )
    report = await harness.store.verify()

    assert report.problems[0] == (
        "batch 2: prev_hash does not match the hash of the batch before it"
    )


# --- the account statement ------------------------------------------------------------------

AAPL = instrument_asset("AAPL")
POSITION = client_account(ACCOUNT, AAPL)


def _buy_batch(transfer_id: str, units: int, cents: int) -> Batch:
    # A fill by hand: cash to clearing, the position from clearing.
    clearing_cash = house_account(HouseAccount.CLEARING, USD)
    clearing_aapl = house_account(HouseAccount.CLEARING, AAPL)
    batch = Batch(ts_ns=1_760_000_000_000_000_500)
    batch.accounts += [
        LedgerAccountSpec(CASH, USD, ACCOUNT, 0),
        LedgerAccountSpec(clearing_cash, USD, None, None),
        LedgerAccountSpec(POSITION, AAPL, ACCOUNT, None),
        LedgerAccountSpec(clearing_aapl, AAPL, None, None),
    ]
    batch.transactions.append(
        TransactionDraft(
            transfer_id,
            "fill",
            (
                Posting(CASH, USD, -cents),
                Posting(clearing_cash, USD, cents),
                Posting(POSITION, AAPL, units),
                Posting(clearing_aapl, AAPL, -units),
            ),
        )
    )
    return batch


def _statement(page):
    return [(e.seq, e.leg, e.transfer_id, e.kind, e.asset, e.amount, e.balance_after)
            for e in page.entries]  # fmt: skip


async def test_the_statement_lists_a_clients_entries_newest_first_with_running_balances(harness):
    await _funded(harness, 10_000)
    await harness.store.commit(_buy_batch("buy-1", 10, 2_500))
    await harness.store.commit(deposit_batch("ACC-2", 999, "other", open_client=True))
    await harness.store.commit(deposit_batch(ACCOUNT, 300, "t-3"))

    page = await harness.store.account_entries(ACCOUNT, asset=None, cursor=None, limit=10)

    # Hand-worked: 10,000 in, 2,500 out for 10 AAPL, 300 in; house and ACC-2 entries left out.
    assert _statement(page) == [
        (4, 1, "t-3", "deposit", USD, 300, 7_800),
        (2, 2, "buy-1", "fill", AAPL, 10, 10),
        (2, 0, "buy-1", "fill", USD, -2_500, 7_500),
        (1, 1, "t-open", "deposit", USD, 10_000, 10_000),
    ]
    assert page.next_cursor is None
    assert page.entries[0].ts_posted == 1_760_000_000_000_000_000


async def test_the_statement_of_one_asset_holds_only_that_assets_entries(harness):
    await _funded(harness, 10_000)
    await harness.store.commit(_buy_batch("buy-1", 10, 2_500))
    await harness.store.commit(_buy_batch("buy-2", 5, 1_000))

    page = await harness.store.account_entries(ACCOUNT, asset=AAPL, cursor=None, limit=10)

    assert [(e.seq, e.amount, e.balance_after) for e in page.entries] == [(3, 5, 15), (2, 10, 10)]


async def test_the_statement_pages_carry_the_running_balance_across_cursors(harness):
    await _funded(harness, 10_000)
    for n, cents in enumerate((100, 200, 300, 400)):
        await harness.store.commit(deposit_batch(ACCOUNT, cents, f"t-{n}"))

    pages = [await harness.store.account_entries(ACCOUNT, asset=USD, cursor=None, limit=2)]
    while pages[-1].next_cursor is not None:
        pages.append(
            await harness.store.account_entries(
                ACCOUNT, asset=USD, cursor=pages[-1].next_cursor, limit=2
            )
        )

    assert [[(e.seq, e.balance_after) for e in p.entries] for p in pages] == [
        [(5, 11_000), (4, 10_600)],
        [(3, 10_300), (2, 10_100)],
        [(1, 10_000)],
    ]


async def test_a_posting_after_the_first_page_does_not_shift_the_next_pages_balances(harness):
    await _funded(harness, 10_000)
    await harness.store.commit(deposit_batch(ACCOUNT, 100, "t-2"))
    await harness.store.commit(deposit_batch(ACCOUNT, 200, "t-3"))
    first = await harness.store.account_entries(ACCOUNT, asset=None, cursor=None, limit=2)

    await harness.store.commit(deposit_batch(ACCOUNT, 5_000, "t-late"))
    second = await harness.store.account_entries(
        ACCOUNT, asset=None, cursor=first.next_cursor, limit=2
    )

    assert [(e.seq, e.balance_after) for e in first.entries] == [(3, 10_300), (2, 10_100)]
    assert [(e.seq, e.balance_after) for e in second.entries] == [(1, 10_000)]
    assert second.next_cursor is None


async def test_a_page_that_ends_with_the_last_entry_has_no_next_cursor(harness):
    await _funded(harness, 10_000)
    await harness.store.commit(deposit_batch(ACCOUNT, 1, "t-2"))

    page = await harness.store.account_entries(ACCOUNT, asset=None, cursor=None, limit=2)

    assert len(page.entries) == 2
    assert page.next_cursor is None


async def test_the_statement_of_an_unknown_client_is_none_and_of_an_unheld_asset_empty(harness):
    await _funded(harness, 10_000)

    unknown = await harness.store.account_entries(
        AccountId("NOPE"), asset=None, cursor=None, limit=10
    )
    unheld = await harness.store.account_entries(ACCOUNT, asset=AAPL, cursor=None, limit=10)

    assert unknown is None
    assert unheld is not None
    assert (list(unheld.entries), unheld.next_cursor) == ([], None)


@pytest.mark.parametrize("cursor", ["", "12", "x:1", "1:-2", "1:2:3", "9" * 20 + ":1"])
async def test_a_statement_cursor_no_page_handed_out_is_refused(harness, cursor):
    await _funded(harness, 10_000)

    with pytest.raises(ValueError, match="cursor"):
        await harness.store.account_entries(ACCOUNT, asset=None, cursor=cursor, limit=10)


# --- outbox, inbox, dead letters ----------------------------------------------------------------


async def test_events_get_consecutive_seqs_and_the_seq_of_their_transaction(harness):
    batch = deposit_batch(ACCOUNT, 100, "t1", open_client=True)
    batch.events += [
        EventDraft("e1", ACCOUNT, "payment", {"status": "accepted"}),
        EventDraft("e2", ACCOUNT, "payment", {"status": "settled"}, txn_index=0),
    ]

    await harness.store.commit(batch)
    events = await harness.store.unsent_events(10)

    assert [(e.event_seq, e.event_id, e.ledger_seq) for e in events] == [(1, "e1", 1), (2, "e2", 1)]
    assert events[1].payload == '{"status":"settled"}'


async def test_events_marked_sent_are_no_longer_unsent_but_can_be_replayed(harness):
    batch = deposit_batch(ACCOUNT, 100, "t1", open_client=True)
    batch.events += [EventDraft(f"e{i}", ACCOUNT, "payment", {}) for i in range(3)]
    await harness.store.commit(batch)

    await harness.store.mark_sent([1, 2], ts_ns=5)

    assert [e.event_seq for e in await harness.store.unsent_events(10)] == [3]
    assert [e.event_seq for e in await harness.store.events_after(1, 10, ACCOUNT)] == [2, 3]


async def test_the_unsent_event_count_is_the_outbox_backlog(harness):
    batch = deposit_batch(ACCOUNT, 100, "t1", open_client=True)
    batch.events += [EventDraft(f"e{i}", ACCOUNT, "payment", {}) for i in range(3)]
    empty = await harness.store.unsent_event_count()
    await harness.store.commit(batch)
    committed = await harness.store.unsent_event_count()

    await harness.store.mark_sent([1, 2], ts_ns=5)

    assert (empty, committed, await harness.store.unsent_event_count()) == (0, 3, 1)


async def test_the_inbox_is_read_after_the_cursor_a_batch_commits(harness):
    await harness.store.inbox_append(['{"a":1}', '{"b":2}', '{"c":3}'], ts_ns=1)
    first = await harness.store.inbox_read(2)

    await harness.store.commit(Batch(ts_ns=2, inbox_cursor=first[-1].inbox_id))

    assert [m.wire for m in first] == ['{"a":1}', '{"b":2}']
    assert [m.wire for m in await harness.store.inbox_read(10)] == ['{"c":3}']


async def test_a_queued_command_is_found_in_the_inbox_by_transfer_id(harness):
    await harness.store.inbox_append(['{"transfer_id":"tid-9","v":1}'], ts_ns=1)

    assert await harness.store.find_command("tid-9") == '{"transfer_id":"tid-9","v":1}'
    assert await harness.store.find_command("tid-8") is None


async def test_dead_letters_are_listed_and_redriven_once_with_an_audit_record(harness):
    batch = Batch(ts_ns=7)
    batch.dead_letters.append(DeadLetterDraft("tid-1", "X", "{}", "unknown_account", "no", "inbox"))
    await harness.store.commit(batch)
    [letter] = await harness.store.dead_letters(include_redriven=False, limit=10)

    redriven = await harness.store.mark_redriven([letter.dlq_id], actor="ops", ts_ns=9)
    again = await harness.store.mark_redriven([letter.dlq_id], actor="ops", ts_ns=10)

    assert (letter.reason, letter.transfer_id) == ("unknown_account", "tid-1")
    assert [d.dlq_id for d in redriven] == [letter.dlq_id]
    assert again == []
    assert await harness.store.dead_letters(include_redriven=False, limit=10) == []
    assert await harness.raw(["SELECT dlq_id, action, actor FROM dlq_audit"]) == [
        (letter.dlq_id, "redrive", "ops")
    ]


async def test_a_dead_lettered_transfer_counts_as_known_until_redriven(harness):
    batch = Batch(ts_ns=7)
    batch.dead_letters.append(DeadLetterDraft("tid-1", "X", "{}", "unknown_account", "no", "inbox"))
    await harness.store.commit(batch)
    assert await harness.store.known_transfers(["tid-1"]) == {"tid-1"}

    [letter] = await harness.store.dead_letters(include_redriven=False, limit=10)
    await harness.store.mark_redriven([letter.dlq_id], actor="ops", ts_ns=9)

    assert await harness.store.known_transfers(["tid-1"]) == set()


async def test_starting_twice_applies_the_migrations_once(harness):
    await harness.store.stop()
    await harness.store.start()

    assert await harness.raw(["SELECT version FROM ledger_migrations"]) == [(1,)]
