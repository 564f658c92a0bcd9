"""Ledger events into the gateway: fills and settled payments to the accounts, every event to
the ``orders`` channel, transfers to order entry; duplicates dropped; wire decoding."""

from __future__ import annotations

import logging

import numpy as np
import orjson
import pytest

from gateway.channels.orders import OrdersChannel
from gateway.metrics import Metrics
from gateway.refdata import load_master
from gateway.trading.events import LedgerEvent, LedgerEvents, event_from_outbox, event_from_wire
from ledger.relay import event_wire
from ledger.store import OutboxEvent
from orders.types import TransferId
from portfolio.engine import PortfolioChange
from portfolio.types import AccountId, CashMovement, Fill

MASTER = load_master()
ACCOUNT = AccountId("ACC-1")


class RecordingAccounts:
    """The accounts' side as the router sees it: what it was asked to apply."""

    def __init__(self, accounts: tuple[str, ...] = (ACCOUNT,)) -> None:
        self.accounts = accounts
        self.fills: list[Fill] = []
        self.cash: list[CashMovement] = []
        self.calls: list[tuple[str, list[int]]] = []  # each call: kind, ledger seqs

    def has_account(self, account: str) -> bool:
        return account in self.accounts

    def apply_fills(self, fills: list[Fill], now_ns: int) -> PortfolioChange:
        self.fills += fills
        self.calls.append(("fills", [f.ledger_seq for f in fills]))
        return PortfolioChange(np.empty(0, np.int64), np.empty(0, np.int64))

    def apply_cash(self, movements: list[CashMovement], now_ns: int) -> PortfolioChange:
        self.cash += movements
        self.calls.append(("cash", [m.ledger_seq for m in movements]))
        return PortfolioChange(np.empty(0, np.int64), np.empty(0, np.int64))


class Rig:
    def __init__(self) -> None:
        self.accounts = RecordingAccounts()
        self.channel = OrdersChannel(epoch="e", history=16)
        self.noted: list[TransferId] = []
        self.metrics = Metrics()
        self.events = LedgerEvents(
            MASTER,
            accounts=self.accounts,
            channel=self.channel,
            note_transfer=self.noted.append,
            now_ns=lambda: 7,
            metrics=self.metrics,
        )


def fill_event(seq: int, side: str = "buy", quantity: str = "10") -> LedgerEvent:
    fields = {
        "fill_id": f"fill_t{seq}_1",
        "order_id": f"ord_t{seq}",
        "symbol": "AAPL",
        "side": side,
        "quantity": quantity,
        "price": "272.51",
        "fee": "0.10",
        "currency": "USD",
        "ts_event": 1_000 + seq,
    }
    return LedgerEvent(f"ev-{seq}", seq, 100 + seq, "fill", ACCOUNT, fields)


def payment_event(seq: int, kind: str, status: str, amount: str = "250.00") -> LedgerEvent:
    fields = {
        "payment_id": f"pay_t{seq}",
        "transfer_id": f"t{seq}",
        "kind": kind,
        "amount": amount,
        "currency": "EUR",
        "status": status,
        "ts_event": 5,
    }
    return LedgerEvent(f"ev-{seq}", seq, 100 + seq, "payment", ACCOUNT, fields)


def test_a_buy_fill_becomes_a_positive_fill_with_its_fee_and_ledger_seq():
    rig = Rig()

    rig.events.on_events([fill_event(1)])

    (fill,) = rig.accounts.fills
    assert fill.instrument_ix == MASTER.symbol_index["AAPL"]
    assert (fill.quantity, fill.price, fill.ledger_seq) == (10.0, 272.51, 101)
    assert (fill.commission, fill.commission_currency, fill.ts_event) == (0.10, "USD", 1_001)


def test_a_sell_fill_has_a_negative_quantity():
    rig = Rig()

    rig.events.on_events([fill_event(1, side="sell", quantity="3")])

    assert rig.accounts.fills[0].quantity == -3.0


@pytest.mark.parametrize(("kind", "amount"), [("deposit", 250.0), ("withdrawal", -250.0)])
def test_a_settled_payment_moves_cash_by_its_signed_amount(kind, amount):
    rig = Rig()

    rig.events.on_events([payment_event(1, kind, "settled")])

    (movement,) = rig.accounts.cash
    assert (movement.currency, movement.amount, movement.ledger_seq) == ("EUR", amount, 101)
    assert rig.noted == ["t1"]


def test_a_pending_payment_moves_no_cash_but_tells_order_entry():
    rig = Rig()

    rig.events.on_events([payment_event(1, "withdrawal", "pending")])

    assert rig.accounts.cash == []
    assert rig.noted == ["t1"]


def test_an_order_event_tells_order_entry_its_transfer():
    rig = Rig()
    fields = {"order_id": "ord_t9", "transfer_id": "t9", "status": "reserved"}

    rig.events.on_events([LedgerEvent("ev-1", 1, 0, "order", ACCOUNT, fields)])

    assert rig.noted == ["t9"]
    assert [o["order_id"] for o in rig.channel.open_orders(ACCOUNT)] == ["ord_t9"]


def test_fills_and_payments_of_one_batch_are_applied_in_event_order():
    rig = Rig()

    rig.events.on_events(
        [
            payment_event(1, "deposit", "settled"),
            fill_event(2),
            fill_event(3),
            payment_event(4, "withdrawal", "settled"),
        ]
    )

    # A later fill applied before an earlier deposit would leave the deposit behind
    # the account's version: runs are applied in the order the ledger committed them.
    assert rig.accounts.calls == [("cash", [101]), ("fills", [102, 103]), ("cash", [104])]


def test_an_event_seen_before_is_dropped_whole():
    rig = Rig()
    rig.events.on_events([fill_event(1), fill_event(2)])

    rig.events.on_events([fill_event(2), fill_event(3)])

    assert [f.ledger_seq for f in rig.accounts.fills] == [101, 102, 103]
    assert rig.channel.topic.state(ACCOUNT).seq == 3
    assert rig.metrics.counters.ledger_events_duplicate == 1


def test_events_of_an_account_the_engine_lacks_still_reach_the_channel():
    rig = Rig()
    stranger = LedgerEvent("ev-1", 1, 101, "fill", AccountId("ZZZ"), fill_event(1).fields)

    rig.events.on_events([stranger])

    assert rig.accounts.fills == []
    assert rig.channel.topic.state("ZZZ").seq == 1


def test_a_malformed_event_is_logged_and_the_rest_applied(caplog):
    rig = Rig()
    broken = LedgerEvent("ev-1", 1, 101, "fill", ACCOUNT, {"symbol": "AAPL"})

    with caplog.at_level(logging.ERROR, logger="gateway.trading.events"):
        rig.events.on_events([broken, fill_event(2)])

    assert [f.ledger_seq for f in rig.accounts.fills] == [102]
    assert "ev-1" in caplog.text


def test_an_outbox_event_and_its_wire_form_decode_alike():
    outbox = OutboxEvent(
        event_seq=42,
        event_id="ev-42",
        account_id=ACCOUNT,
        type="fill",
        ledger_seq=17,
        payload=orjson.dumps(fill_event(1).fields).decode(),
        ts_ns=0,
    )

    assert event_from_wire(event_wire(outbox)) == event_from_outbox(outbox)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1]",
        b'{"seq": 1, "ledger_seq": 1, "type": "fill", "account_id": "A"}',
        b'{"event_id": "e", "seq": "1", "ledger_seq": 1, "type": "fill", "account_id": "A"}',
    ],
)
def test_a_malformed_wire_event_is_refused(raw):
    with pytest.raises(ValueError, match="event"):
        event_from_wire(raw)
