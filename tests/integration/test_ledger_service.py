"""The ledger service end to end on the embedded path: inbox, sagas, SQLite, relay.

Expected amounts are worked out by hand in each test (fee: 0.01 per share).
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from ledger.accounts import load_accounts
from ledger.admin import dlq_list, dlq_redrive
from ledger.bank import BankSettings, SimulatedBank
from ledger.inbox import InboxBus, InboxSource
from ledger.money import cash_asset, instrument_asset
from ledger.service import LedgerService, LedgerServiceSettings
from ledger.sqlite import SqliteLedgerStore
from ledger.store import OutboxEvent
from ledger.venue import ExecutionSettings
from orders.types import AccountId
from orders.views import OrderStatus, PaymentStatus
from portfolio.store import AccountRecord
from tests.ledger_harness import cancel, default_master, order, payment, priced_book, set_quotes

pytestmark = pytest.mark.integration

ACC = AccountId("ACC-1")
USD = cash_asset("USD")


async def wait_until(predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met before the deadline")


@pytest.fixture
async def ledger(tmp_path):
    master = default_master()
    book = priced_book(master, {"AAPL": ("100.00", "100.10")})
    store = SqliteLedgerStore(tmp_path / "ledger.db")
    await store.start()
    bank = SimulatedBank(BankSettings())
    # No idle poll within a test's time: commands reach the service by the bus's
    # wake, as in the gateway, or not at all.
    settings = LedgerServiceSettings(
        execution=ExecutionSettings(fee_per_unit=Decimal("0.01")), idle_poll_ms=3_600_000
    )
    service = LedgerService(store, InboxSource(store), master, book, bank, settings=settings)
    await service.start()
    await service.seed(
        [AccountRecord(account=ACC, base_currency="USD", version=0, cash={"USD": 100_000.0})],
        ts_event=0,
    )
    bus = InboxBus(store, time.time_ns, on_committed=service.wake)
    events: list[OutboxEvent] = []
    service.add_event_listener(events.extend)
    yield service, bus, store, book, events
    await service.stop()
    await store.stop()
    bank.close()


async def _cash(store):
    clients = await store.load_clients([ACC])
    return clients[ACC].balances[USD]


async def _order_status(store, command, status):
    record = await store.get_order(command.order_id)
    return record if record is not None and record.status is status else None


async def test_a_market_buy_fills_at_the_ask_and_pays_notional_and_fee(ledger):
    _service, bus, store, _, _ = ledger
    buy = order("k1", ACC, "AAPL", "buy", "10")

    await bus.submit(buy)
    record = await wait_until(lambda: _order_status(store, buy, OrderStatus.FILLED))

    cash = await _cash(store)
    # 10 x 100.10 = 1,001.00, fee 10 x 0.01 = 0.10: 100,000.00 - 1,001.10 = 98,998.90
    assert (cash.balance, cash.pending) == (9_899_890, 0)
    assert record.average_price == Decimal("100.1")
    clients = await store.load_clients([ACC])
    assert clients[ACC].balances[instrument_asset("AAPL")].balance == 10
    assert (await store.verify()).is_clean


async def test_a_resting_limit_order_reserves_then_fills_when_the_ask_reaches_it(ledger):
    service, bus, store, book, _ = ledger
    buy = order("k2", ACC, "AAPL", "buy", "5", limit="99.00")

    await bus.submit(buy)
    await wait_until(lambda: _order_status(store, buy, OrderStatus.RESERVED))
    reserved = await _cash(store)
    service.on_book_changed(set_quotes(book, default_master(), {"AAPL": ("98.40", "98.50")}))
    await wait_until(lambda: _order_status(store, buy, OrderStatus.FILLED))

    # Held: 5 x 99.00 + 0.05 = 495.05. Paid: 5 x 98.50 + 0.05 = 492.55.
    assert reserved.pending == 49_505
    cash = await _cash(store)
    assert (cash.balance, cash.pending) == (10_000_000 - 49_255, 0)


async def test_cancelling_a_resting_order_releases_its_hold(ledger):
    _, bus, store, _, _ = ledger
    buy = order("k3", ACC, "AAPL", "buy", "5", limit="90.00")
    await bus.submit(buy)
    await wait_until(lambda: _order_status(store, buy, OrderStatus.RESERVED))

    await bus.submit(cancel("k4", ACC, "k3"))
    record = await wait_until(lambda: _order_status(store, buy, OrderStatus.CANCELLED))

    assert record.reason == "cancel_requested"
    assert (await _cash(store)).pending == 0


async def test_a_buy_beyond_the_cash_is_rejected_and_holds_nothing(ledger):
    _, bus, store, _, _ = ledger
    buy = order("k5", ACC, "AAPL", "buy", "1000")  # 100,110.00 + fee > 100,000.00

    await bus.submit(buy)
    record = await wait_until(lambda: _order_status(store, buy, OrderStatus.REJECTED))

    assert record.reason == "insufficient_funds"
    assert (await _cash(store)).balance == 10_000_000


async def test_a_withdrawal_is_reserved_then_settled_by_the_rail(ledger):
    _, bus, store, _, _ = ledger
    out = payment("k6", ACC, "withdrawal", "250.00")

    await bus.submit(out)

    async def settled():
        record = await store.get_payment(out.payment_id)
        return record if record is not None and record.status is PaymentStatus.SETTLED else None

    await wait_until(settled)
    cash = await _cash(store)
    assert (cash.balance, cash.pending) == (10_000_000 - 25_000, 0)


async def test_a_command_submitted_twice_is_applied_once(ledger):
    _, bus, store, _, _ = ledger
    deposit = payment("k7", ACC, "deposit", "10.00")

    await bus.submit(deposit)
    await bus.submit(deposit)
    await bus.submit(payment("k8", ACC, "deposit", "0.01"))  # a marker behind both

    await wait_until(lambda: store.get_payment(payment("k8", ACC, "deposit", "0.01").payment_id))
    assert (await _cash(store)).balance == 10_000_000 + 1_000 + 1


async def test_a_command_for_an_unknown_account_is_dead_lettered(ledger):
    _, bus, store, _, _ = ledger

    await bus.submit(payment("k9", "NOBODY", "deposit", "1.00"))

    [letter] = await wait_until(lambda: store.dead_letters(include_redriven=False, limit=10))
    assert (letter.reason, letter.account_id) == ("unknown_account", "NOBODY")


async def test_a_fill_event_carries_the_order_and_the_ledger_seq(ledger):
    _, bus, _store, _, events = ledger
    buy = order("k10", ACC, "AAPL", "buy", "3")

    await bus.submit(buy)

    async def fill_event():
        return [e for e in events if e.type == "fill" and buy.order_id in e.payload]

    [event] = await wait_until(fill_event)
    import orjson

    payload = orjson.loads(event.payload)
    assert (payload["symbol"], payload["side"], payload["quantity"], payload["price"]) == (
        "AAPL",
        "buy",
        "3",
        "100.1",
    )
    assert payload["fee"] == "0.03"
    assert event.ledger_seq > 0


async def test_a_redriven_dead_letter_is_processed_once_its_account_exists(ledger):
    service, bus, store, _, _ = ledger
    deposit = payment("k11", "LATE", "deposit", "5.00")
    await bus.submit(deposit)
    [letter] = await wait_until(lambda: store.dead_letters(include_redriven=False, limit=10))
    await service.seed([AccountRecord(AccountId("LATE"), "USD", 0, {"USD": 1.0})], ts_event=0)

    redriven = await dlq_redrive(store, bus, [letter.dlq_id], actor="ops", now_ns=1)
    record = await wait_until(lambda: store.get_payment(deposit.payment_id))

    assert [d.dlq_id for d in redriven] == [letter.dlq_id]
    assert record.status is PaymentStatus.SETTLED
    assert await dlq_list(store) == []
    clients = await store.load_clients([AccountId("LATE")])
    assert clients[AccountId("LATE")].balances[USD].balance == 100 + 500


async def test_load_accounts_gives_exact_cash_and_positions_with_the_last_seq(ledger):
    _, bus, store, _, _ = ledger
    buy = order("k12", ACC, "AAPL", "buy", "10")
    await bus.submit(buy)
    await wait_until(lambda: _order_status(store, buy, OrderStatus.FILLED))

    snapshot = await load_accounts(store, default_master(), day_start_ns=0)

    account = snapshot.accounts[ACC]
    assert account.cash_minor == {"USD": 9_899_890}
    position = account.positions["AAPL"]
    assert (position.quantity, position.avg_cost, position.commission) == (
        Decimal(10),
        Decimal("100.10"),
        Decimal("0.10"),
    )
    # Bought today (after day start 0): the day opened flat and traded 10 x 100.10.
    assert (position.day_open_quantity, position.day_trade_value) == (
        Decimal(0),
        Decimal("1001.00"),
    )
    assert account.version == snapshot.ledger_seq
    record = account.to_record()
    assert record.cash == {"USD": 98_998.90}


async def test_a_resting_order_keeps_its_trace_id_across_a_reload_to_its_fill(ledger):
    service, bus, store, book, events = ledger
    buy = order("k-trace", ACC, "AAPL", "buy", "5", limit="99.00")

    await bus.submit(buy)
    await wait_until(lambda: _order_status(store, buy, OrderStatus.RESERVED))
    # As after a restart: the open orders come back from the store.
    await service.reload()
    service.on_book_changed(set_quotes(book, default_master(), {"AAPL": ("98.40", "98.50")}))
    await wait_until(lambda: _order_status(store, buy, OrderStatus.FILLED))

    async def traced() -> list[dict[str, object]]:
        import orjson

        payloads = [orjson.loads(e.payload) for e in events if buy.order_id in e.payload]
        return payloads if any(p.get("status") == "filled" for p in payloads) else []

    payloads = await wait_until(traced)
    kinds = {(p.get("status") or "fill") for p in payloads}
    assert {"reserved", "fill", "filled"} <= kinds
    assert {p["trace_id"] for p in payloads} == {buy.trace_id}
