"""The order and payment sagas: what a batch of inputs does to the ledger (pure).

``Executor.execute`` takes the inputs of one batch (decoded commands, dead
letters, rail outcomes, a tick's changed instruments, a day roll, seeds)
and the service's cached ``LedgerState``, and returns a ``Plan``: the
``Batch`` the store writes in one transaction, and the states to cache
once it is committed. Nothing changes before the commit, so a failed
commit leaves the cache as it was.

**Orders.** ``accepted`` -> ``reserved`` (buying power held) -> fills
(``partially_filled`` ... ``filled``), each posted as its own transaction
with the release of the hold it used; what remains of the hold is released
when the order ends (``filled``, ``cancelled``, ``expired``, ``rejected``).
Every transition is stored with its cause. Because a batch commits
atomically and the service resumes from the store, a crash either loses
the whole batch (the commands are redelivered) or none of it.

**Payments.** A deposit posts at once (``settled``). A withdrawal holds the
cash (``pending``); the service asks the payment rail after the commit and
feeds the outcome back as a ``RailOutcome`` (``settled`` posts the debit
and releases the hold, ``rejected`` releases it).

**Validation.** A command that breaks the schema's rules (unknown symbol or
currency, bad quantity, price or amount, an id that is not derived from its
transfer id) or names an unknown account is dead-lettered with a stable
reason; business refusals (no price, insufficient funds, a currency the
account does not hold) are recorded as a rejected order or payment.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Final, TypeAlias

from ledger.journal import (
    Batch,
    CommandRow,
    DeadLetterDraft,
    EventDraft,
    FillRow,
    Hold,
    HouseAccount,
    LedgerAccountSpec,
    OrderRow,
    PaymentRow,
    PositionRow,
    Posting,
    TransactionDraft,
    Transition,
    client_account,
    house_account,
)
from ledger.money import (
    MINOR_DIGITS,
    Asset,
    cash_asset,
    from_minor,
    instrument_asset,
    to_minor,
    to_minor_exact,
    to_units,
)
from ledger.positions import ExactPosition, apply_exact_fill
from ledger.state import Balance, ClientState, LedgerState
from ledger.venue import (
    ExecutionSettings,
    book_price,
    collar_price,
    executable_price,
    fee_minor,
    notional_minor,
)
from orders.commands import CancelOrder, Command, SubmitOrder, SubmitPayment
from orders.types import (
    AccountId,
    OrderId,
    OrderType,
    PaymentId,
    PaymentKind,
    Side,
    TimeInForce,
    order_id_for,
    payment_id_for,
)
from orders.views import (
    FINAL_ORDER_STATUSES,
    OrderRecord,
    OrderStatus,
    PaymentRecord,
    PaymentStatus,
)
from pricing.instruments import Instrument, InstrumentMaster, InstrumentType
from pricing.pricebook import PriceBook

__all__ = [
    "DayRoll",
    "Decoded",
    "Executor",
    "Input",
    "Plan",
    "RailOutcome",
    "SeedAccount",
    "TickMatch",
    "Undecodable",
    "event_id_for",
]

_EVENT_NAMESPACE: Final = uuid.UUID("0b7c6f2e-8f43-5a0c-9d1e-6c6564676572")
_MARGINED: Final = frozenset({InstrumentType.FUTURE, InstrumentType.FX})
_AVG_QUANTUM: Final = Decimal(1).scaleb(-12)


def event_id_for(*parts: str) -> str:
    """A deterministic event id: the same fact always gets the same id."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, "\n".join(parts)))


# --- inputs ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded command and its wire text; ``target`` is the order a cancel names
    when it is not open (the service looks it up), else None."""

    command: Command
    wire: str
    source: str = "inbox"
    target: OrderRecord | None = None


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A message that is not a valid command, with the decoder's reason."""

    raw: str
    reason: str
    detail: str
    source: str = "inbox"


@dataclass(frozen=True, slots=True)
class RailOutcome:
    """The payment rail's final answer on a pending withdrawal."""

    payment_id: PaymentId
    is_settled: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class TickMatch:
    """Re-check the resting orders on these instruments against the book."""

    instrument_ix: frozenset[int]


@dataclass(frozen=True, slots=True)
class DayRoll:
    """Expire what rests with time in force ``day`` (and market orders' remainders)."""


@dataclass(frozen=True, slots=True)
class SeedAccount:
    """Open an account with cash and positions, posted as deposits and fills.

    ``cash`` is the signed amount per currency (minor units) after the
    fills; ``fills`` are (symbol, signed quantity, price), posted without
    fees at ``ts_event``. A cash account ends at ``cash`` even when that is
    negative: its floor becomes its lowest running balance (a credit line).
    """

    account_id: AccountId
    base_currency: str
    cash: Mapping[str, int]
    fills: Sequence[tuple[str, Decimal, Decimal]]
    ts_event: int


Input: TypeAlias = Decoded | Undecodable | RailOutcome | TickMatch | DayRoll | SeedAccount


@dataclass(slots=True)
class Plan:
    """A batch to commit, and the states to cache once it is committed."""

    batch: Batch
    clients: dict[AccountId, ClientState] = field(default_factory=dict)
    orders: dict[OrderId, OrderRow] = field(default_factory=dict)
    payments: dict[PaymentId, PaymentRow] = field(default_factory=dict)
    withdrawals: list[PaymentRow] = field(default_factory=list)


class _Rejected(Exception):
    # A dead letter found while validating a command.
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# --- the executor ---------------------------------------------------------------------


class Executor:
    """Turn one batch of inputs into a ``Plan`` (see the module docstring)."""

    def __init__(
        self, master: InstrumentMaster, book: PriceBook, settings: ExecutionSettings
    ) -> None:
        self._master = master
        self._book = book
        self._settings = settings

    def execute(self, inputs: Sequence[Input], state: LedgerState, now_ns: int) -> Plan:
        """Plan ``inputs`` in order against ``state``; every client they name must be
        in ``state.clients`` already (or is unknown to the ledger)."""
        work = _Work(self, state, now_ns)
        for item in inputs:
            if isinstance(item, Decoded):
                work.command(item)
            elif isinstance(item, Undecodable):
                work.dead_letter(None, None, item.raw, item.reason, item.detail, item.source)
            elif isinstance(item, RailOutcome):
                work.rail_outcome(item)
            elif isinstance(item, TickMatch):
                work.match(item.instrument_ix)
            elif isinstance(item, DayRoll):
                work.day_roll()
            else:
                work.seed(item)
        return work.plan


class _Work:
    # The overlay of one batch: reads fall through to the cached state, writes stay here.

    def __init__(self, executor: Executor, state: LedgerState, now_ns: int) -> None:
        self.master = executor._master
        self.book = executor._book
        self.settings = executor._settings
        self.state = state
        self.now = now_ns
        self.plan = Plan(Batch(ts_ns=now_ns))
        self.batch = self.plan.batch
        self.seen: set[str] = set()
        self.accounts: set[str] = set()

    # --- state access -----------------------------------------------------------------

    def client(self, account_id: AccountId) -> ClientState | None:
        return self.plan.clients.get(account_id) or self.state.clients.get(account_id)

    def order(self, order_id: OrderId) -> OrderRow | None:
        return self.plan.orders.get(order_id) or self.state.open_orders.get(order_id)

    def open_orders(self) -> list[OrderRow]:
        merged = dict(self.state.open_orders)
        merged.update(self.plan.orders)
        return [r for r in merged.values() if r.record.status not in FINAL_ORDER_STATUSES]

    def balance(self, account_id: AccountId, asset: Asset) -> Balance | None:
        client = self.client(account_id)
        return None if client is None else client.balances.get(asset)

    def ensure_account(
        self, account_id: AccountId | None, asset: Asset, floor: int | None, name: str
    ) -> None:
        if name in self.accounts:
            return
        self.accounts.add(name)
        self.batch.accounts.append(LedgerAccountSpec(name, asset, account_id, floor))
        if account_id is None:
            return
        client = self.client(account_id)
        assert client is not None
        if asset not in client.balances:
            balances = dict(client.balances)
            balances[asset] = Balance(floor=floor)
            self.plan.clients[account_id] = replace(client, balances=balances)

    def house(self, kind: HouseAccount, asset: Asset) -> str:
        name = house_account(kind, asset)
        self.ensure_account(None, asset, None, name)
        return name

    def client_name(self, account_id: AccountId, asset: Asset, floor: int | None) -> str:
        name = client_account(account_id, asset)
        self.ensure_account(account_id, asset, floor, name)
        return name

    def change(self, account_id: AccountId, asset: Asset, balance: int, pending: int) -> None:
        # Apply a balance/pending change to a client's cached ledger account; the first
        # change in the batch records the version the batch expects to find.
        client = self.client(account_id)
        assert client is not None
        current = client.balances[asset]
        name = client_account(account_id, asset)
        version = current.version
        if name not in self.batch.expected_versions:
            self.batch.expected_versions[name] = version
            version += 1
        balances = dict(client.balances)
        balances[asset] = Balance(
            current.balance + balance, current.pending + pending, version, current.floor
        )
        self.plan.clients[account_id] = replace(client, balances=balances)

    def post(self, transfer_id: str, kind: str, postings: list[Posting]) -> int:
        txn = TransactionDraft(transfer_id, kind, tuple(postings))
        self.batch.transactions.append(txn)
        for posting in postings:
            owner = _owner(posting.account)
            if owner is not None:
                self.change(owner, posting.asset, posting.amount, 0)
        return len(self.batch.transactions) - 1

    def hold(self, account_id: AccountId, asset: Asset, transfer_id: str, amount: int) -> None:
        if amount == 0:
            return
        name = client_account(account_id, asset)
        self.batch.holds.append(Hold(name, transfer_id, amount))
        self.change(account_id, asset, 0, amount)

    def dead_letter(
        self,
        transfer_id: str | None,
        account_id: str | None,
        raw: str,
        reason: str,
        detail: str,
        source: str,
    ) -> None:
        self.batch.dead_letters.append(
            DeadLetterDraft(transfer_id, account_id, raw, reason, detail, source)
        )

    def event(
        self,
        event_id: str,
        account_id: AccountId,
        kind: str,
        payload: dict[str, object],
        txn_index: int | None = None,
    ) -> None:
        self.batch.events.append(EventDraft(event_id, account_id, kind, payload, txn_index))

    # --- commands ---------------------------------------------------------------------

    def command(self, item: Decoded) -> None:
        command = item.command
        if command.transfer_id in self.seen:
            return  # the same command twice in one batch: once is enough
        self.seen.add(command.transfer_id)
        if self.client(command.account_id) is None:
            self.dead_letter(
                command.transfer_id,
                command.account_id,
                item.wire,
                "unknown_account",
                f"account {command.account_id} is not open in the ledger",
                item.source,
            )
            return
        instrument: Instrument | None = None
        try:
            if isinstance(command, SubmitOrder):
                instrument = self.validate_order(command)
            elif isinstance(command, SubmitPayment):
                self.validate_payment(command)
        except _Rejected as e:
            self.dead_letter(
                command.transfer_id, command.account_id, item.wire, e.reason, e.detail, item.source
            )
            return
        if isinstance(command, CancelOrder) and not self.cancel(command, item.target):
            self.dead_letter(
                command.transfer_id,
                command.account_id,
                item.wire,
                "unknown_order",
                f"order {command.order_id} of account {command.account_id} is unknown",
                item.source,
            )
            return
        self.batch.commands.append(
            CommandRow(command.transfer_id, command.type.value, command.account_id, item.wire)
        )
        if isinstance(command, SubmitOrder):
            assert instrument is not None
            self.submit_order(command, instrument)
        elif isinstance(command, SubmitPayment):
            self.submit_payment(command)

    def validate_order(self, command: SubmitOrder) -> Instrument:
        if command.order_id != order_id_for(command.transfer_id):
            raise _Rejected(
                "bad_order_id", f"order id must be ord_<transfer_id>, was {command.order_id}"
            )
        ix = self.master.symbol_index.get(command.symbol)
        if ix is None:
            raise _Rejected("unknown_symbol", f"symbol {command.symbol!r} is not listed")
        instrument = self.master[ix]
        quantity = command.quantity
        if quantity <= 0 or quantity % instrument.lot_size != 0:
            raise _Rejected(
                "bad_quantity",
                f"quantity must be a positive multiple of {instrument.lot_size}, was {quantity}",
            )
        limit = command.limit_price
        if command.order_type is OrderType.LIMIT:
            if limit is None or limit <= 0 or limit % instrument.tick_size != 0:
                raise _Rejected(
                    "bad_limit_price",
                    f"limit price must be positive on the {instrument.tick_size} grid, was {limit}",
                )
        elif limit is not None:
            raise _Rejected("bad_limit_price", "a market order has no limit price")
        return instrument

    def validate_payment(self, command: SubmitPayment) -> None:
        if command.payment_id != payment_id_for(command.transfer_id):
            raise _Rejected(
                "bad_payment_id", f"payment id must be pay_<transfer_id>, was {command.payment_id}"
            )
        if command.currency not in MINOR_DIGITS:
            raise _Rejected("unknown_currency", f"currency {command.currency!r} is not supported")
        try:
            amount = to_minor_exact(command.amount, command.currency)
        except ValueError as e:
            raise _Rejected("bad_amount", str(e)) from None
        if amount <= 0:
            raise _Rejected("bad_amount", f"amount must be positive, was {command.amount}")

    # --- orders -----------------------------------------------------------------------

    def submit_order(self, command: SubmitOrder, instrument: Instrument) -> None:
        record = OrderRecord(
            order_id=command.order_id,
            transfer_id=command.transfer_id,
            account_id=command.account_id,
            symbol=command.symbol,
            side=command.side,
            quantity=command.quantity,
            order_type=command.order_type,
            limit_price=command.limit_price,
            time_in_force=command.time_in_force,
            client_order_id=command.client_order_id,
            status=OrderStatus.ACCEPTED,
            filled_quantity=Decimal(0),
            average_price=None,
            reason=None,
            ts_accepted=command.ts_accepted,
            ts_updated=self.now,
        )
        row = OrderRow(record, None, None, 0, 0, Decimal(0), trace_id=command.trace_id)
        row = self.transition(row, OrderStatus.ACCEPTED, "submitted")
        ix = self.master.ix(command.symbol)
        bid, ask = self.prices(ix, instrument)
        cash = cash_asset(instrument.currency)
        if command.order_type is OrderType.MARKET:
            if bid is None or ask is None:
                self.finish(row, OrderStatus.REJECTED, "no_price")
                return
            worst = collar_price(command.side, bid, ask, instrument, self.settings)
        else:
            assert command.limit_price is not None
            worst = command.limit_price
        account = command.account_id
        if self.balance(account, cash) is None:
            self.finish(row, OrderStatus.REJECTED, "currency_not_held")
            return
        if (
            not self.settings.allow_short_sales
            and command.side is Side.SELL
            and self.position(account, command.symbol).quantity < command.quantity
        ):
            self.finish(row, OrderStatus.REJECTED, "short_sale_not_allowed")
            return
        units = to_units(command.quantity, instrument)
        hold = fee_minor(units, command.quantity, worst, instrument, self.settings)
        if command.side is Side.BUY and instrument.type not in _MARGINED:
            hold += notional_minor(command.quantity, worst, instrument)
        balance = self.balance(account, cash)
        assert balance is not None
        if not balance.allows(0, hold):
            self.finish(row, OrderStatus.REJECTED, "insufficient_funds")
            return
        self.hold(account, cash, command.transfer_id, hold)
        row = replace(
            row, worst_price=worst, hold_account=client_account(account, cash), hold_minor=hold
        )
        row = self.transition(row, OrderStatus.RESERVED, "buying_power_reserved")
        row = self.fill(row, instrument, worst, bid, ask)
        if row.record.status in FINAL_ORDER_STATUSES:
            return
        if command.time_in_force is TimeInForce.IOC:
            self.finish(row, OrderStatus.CANCELLED, "ioc_unfilled")

    def prices(self, ix: int, instrument: Instrument) -> tuple[Decimal | None, Decimal | None]:
        return (
            book_price(float(self.book.bid[ix]), instrument),
            book_price(float(self.book.ask[ix]), instrument),
        )

    def position(self, account_id: AccountId, symbol: str) -> ExactPosition:
        client = self.client(account_id)
        assert client is not None
        return client.positions.get(symbol, ExactPosition())

    def fill(
        self,
        row: OrderRow,
        instrument: Instrument,
        worst: Decimal | None,
        bid: Decimal | None,
        ask: Decimal | None,
    ) -> OrderRow:
        record = row.record
        if worst is None:
            return row
        price = executable_price(
            record.side, record.order_type, worst, bid, ask, instrument, self.settings
        )
        if price is None:
            return row
        remaining = record.quantity - record.filled_quantity
        quantity = remaining
        if self.settings.max_fill_lots is not None:
            quantity = min(quantity, instrument.lot_size * self.settings.max_fill_lots)
        units = to_units(quantity, instrument)
        signed = quantity if record.side is Side.BUY else -quantity
        signed_units = units if record.side is Side.BUY else -units
        account = record.account_id
        cash = cash_asset(instrument.currency)
        fee = fee_minor(units, quantity, price, instrument, self.settings)
        position = self.position(account, record.symbol)
        new_position, realised = apply_exact_fill(
            position, signed, price, instrument.multiplier, from_minor(fee, instrument.currency)
        )
        is_margined = instrument.type in _MARGINED
        notional = 0 if is_margined else notional_minor(quantity, price, instrument)
        realised_minor = to_minor(realised, instrument.currency) if is_margined else 0
        cash_delta = realised_minor - fee + (notional if record.side is Side.SELL else -notional)
        outflow = fee + (notional if record.side is Side.BUY else 0)
        release = min(row.hold_minor, outflow)
        balance = self.balance(account, cash)
        assert balance is not None
        if not balance.allows(cash_delta, -release):
            status = OrderStatus.REJECTED if row.fill_count == 0 else OrderStatus.CANCELLED
            return self.finish(row, status, "insufficient_funds")
        fill_no = row.fill_count + 1
        fill_id = f"fill_{record.transfer_id}_{fill_no}"
        clearing_cash = self.house(HouseAccount.CLEARING, cash)
        asset = instrument_asset(record.symbol)
        postings = [
            Posting(self.client_name(account, asset, None), asset, signed_units),
            Posting(self.house(HouseAccount.CLEARING, asset), asset, -signed_units),
        ]
        client_cash = client_account(account, cash)
        if notional:
            sign = -1 if record.side is Side.BUY else 1
            postings += [
                Posting(client_cash, cash, sign * notional),
                Posting(clearing_cash, cash, -sign * notional),
            ]
        if realised_minor:
            postings += [
                Posting(client_cash, cash, realised_minor),
                Posting(clearing_cash, cash, -realised_minor),
            ]
        if fee:
            postings += [
                Posting(client_cash, cash, -fee),
                Posting(self.house(HouseAccount.FEES, cash), cash, fee),
            ]
        self.hold(account, cash, record.transfer_id, -release)
        txn = self.post(fill_id, "fill", postings)
        client = self.client(account)
        assert client is not None
        positions = dict(client.positions)
        positions[record.symbol] = new_position
        self.plan.clients[account] = replace(client, positions=positions)
        self.batch.positions.append(
            PositionRow(
                account,
                record.symbol,
                to_units(new_position.quantity, instrument),
                new_position.avg_cost,
                new_position.realised_pnl,
                new_position.commission,
                txn,
            )
        )
        self.batch.fills.append(
            FillRow(
                fill_id,
                record.order_id,
                account,
                record.symbol,
                signed_units,
                price,
                notional,
                fee,
                instrument.currency,
                realised,
                self.now,
                txn,
            )
        )
        self.event(
            event_id_for("fill", fill_id),
            account,
            "fill",
            {
                "fill_id": fill_id,
                "order_id": record.order_id,
                "symbol": record.symbol,
                "side": record.side.value,
                "quantity": _text(quantity),
                "price": _text(price),
                "fee": _text(from_minor(fee, instrument.currency)),
                "currency": instrument.currency,
                "realised_pnl": _text(realised),
                "ts_event": self.now,
                "trace_id": row.trace_id,
            },
            txn,
        )
        filled = record.filled_quantity + quantity
        notional_sum = row.notional + quantity * price
        status = OrderStatus.FILLED if filled == record.quantity else OrderStatus.PARTIALLY_FILLED
        row = replace(
            row,
            record=replace(
                record,
                filled_quantity=filled,
                average_price=(notional_sum / filled).quantize(_AVG_QUANTUM).normalize(),
            ),
            hold_minor=row.hold_minor - release,
            fill_count=fill_no,
            notional=notional_sum,
        )
        if status is OrderStatus.FILLED:
            return self.finish(row, status, "filled")
        return self.transition(row, status, "fill", txn)

    def finish(self, row: OrderRow, status: OrderStatus, cause: str) -> OrderRow:
        record = row.record
        if row.hold_minor and row.hold_account is not None:
            owner = _owner(row.hold_account)
            assert owner is not None
            asset = Asset(row.hold_account.split(":", 2)[2])
            self.hold(owner, asset, record.transfer_id, -row.hold_minor)
            row = replace(row, hold_minor=0)
        reason = None if status is OrderStatus.FILLED else cause
        row = replace(row, record=replace(record, reason=reason))
        return self.transition(row, status, cause)

    def transition(
        self, row: OrderRow, status: OrderStatus, cause: str, txn: int | None = None
    ) -> OrderRow:
        record = replace(row.record, status=status, ts_updated=self.now)
        row = replace(row, record=record)
        self.plan.orders[record.order_id] = row
        self.batch.orders.append(row)
        self.batch.transitions.append(Transition(record.order_id, status.value, cause, self.now))
        self.event(
            event_id_for("order", record.order_id, status.value, str(row.fill_count)),
            record.account_id,
            "order",
            _order_payload(record, cause, row.trace_id),
            txn,
        )
        return row

    def cancel(self, command: CancelOrder, target: OrderRecord | None) -> bool:
        row = self.order(command.order_id)
        if row is not None and row.record.account_id != command.account_id:
            return False
        if row is None or row.record.status in FINAL_ORDER_STATUSES:
            # Cancelling a final order is a no-op; an order nobody knows is a dead letter.
            return (row is not None) or (
                target is not None and target.account_id == command.account_id
            )
        self.finish(row, OrderStatus.CANCELLED, "cancel_requested")
        return True

    def match(self, instrument_ix: frozenset[int]) -> None:
        for row in sorted(
            self.open_orders(), key=lambda r: (r.record.ts_accepted, r.record.order_id)
        ):
            ix = self.master.symbol_index.get(row.record.symbol)
            if ix is None or ix not in instrument_ix:
                continue
            instrument = self.master[ix]
            bid, ask = self.prices(ix, instrument)
            self.fill(row, instrument, row.worst_price, bid, ask)

    def day_roll(self) -> None:
        for row in self.open_orders():
            record = row.record
            if record.time_in_force is TimeInForce.DAY or record.order_type is OrderType.MARKET:
                self.finish(row, OrderStatus.EXPIRED, "day_end")

    # --- payments ---------------------------------------------------------------------

    def submit_payment(self, command: SubmitPayment) -> None:
        amount = to_minor_exact(command.amount, command.currency)
        cash = cash_asset(command.currency)
        account = command.account_id
        record = PaymentRecord(
            payment_id=command.payment_id,
            transfer_id=command.transfer_id,
            account_id=account,
            kind=command.kind,
            amount=command.amount,
            currency=command.currency,
            reference=command.reference,
            status=PaymentStatus.ACCEPTED,
            reason=None,
            ts_accepted=command.ts_accepted,
            ts_updated=self.now,
        )
        payment = self.payment_transition(
            PaymentRow(record, amount), PaymentStatus.ACCEPTED, "submitted"
        )
        if command.kind is PaymentKind.DEPOSIT:
            client_cash = self.client_name(account, cash, 0)
            txn = self.post(
                command.transfer_id,
                "deposit",
                [
                    Posting(self.house(HouseAccount.RAIL, cash), cash, -amount),
                    Posting(client_cash, cash, amount),
                ],
            )
            self.payment_transition(payment, PaymentStatus.SETTLED, "deposited", txn=txn)
            return
        balance = self.balance(account, cash)
        if balance is None or not balance.allows(0, amount):
            reason = "currency_not_held" if balance is None else "insufficient_funds"
            self.payment_transition(payment, PaymentStatus.REJECTED, reason, reason=reason)
            return
        self.hold(account, cash, command.transfer_id, amount)
        payment = self.payment_transition(payment, PaymentStatus.PENDING, "funds_reserved")
        self.plan.withdrawals.append(payment)

    def rail_outcome(self, outcome: RailOutcome) -> None:
        payment = self.plan.payments.get(outcome.payment_id) or self.state.pending_payments.get(
            outcome.payment_id
        )
        if payment is None or payment.record.status is not PaymentStatus.PENDING:
            return  # resolved already: exactly one resolution
        record = payment.record
        cash = cash_asset(record.currency)
        account = record.account_id
        self.hold(account, cash, record.transfer_id, -payment.amount_minor)
        if not outcome.is_settled:
            reason = outcome.reason or "rail_rejected"
            self.payment_transition(payment, PaymentStatus.REJECTED, reason, reason=reason)
            return
        txn = self.post(
            f"settle_{record.transfer_id}",
            "withdrawal",
            [
                Posting(client_account(account, cash), cash, -payment.amount_minor),
                Posting(self.house(HouseAccount.RAIL, cash), cash, payment.amount_minor),
            ],
        )
        self.payment_transition(payment, PaymentStatus.SETTLED, "rail_settled", txn=txn)

    def payment_transition(
        self,
        payment: PaymentRow,
        status: PaymentStatus,
        cause: str,
        *,
        reason: str | None = None,
        txn: int | None = None,
    ) -> PaymentRow:
        record = replace(payment.record, status=status, reason=reason, ts_updated=self.now)
        payment = replace(payment, record=record)
        self.plan.payments[record.payment_id] = payment
        self.batch.payments.append(payment)
        self.batch.transitions.append(Transition(record.payment_id, status.value, cause, self.now))
        self.event(
            event_id_for("payment", record.payment_id, status.value),
            record.account_id,
            "payment",
            {
                "payment_id": record.payment_id,
                "transfer_id": record.transfer_id,
                "kind": record.kind.value,
                "amount": _text(record.amount),
                "currency": record.currency,
                "status": status.value,
                "reason": reason,
                "cause": cause,
                "ts_event": self.now,
            },
            txn,
        )
        return payment

    # --- seeds ------------------------------------------------------------------------

    def seed(self, seed: SeedAccount) -> None:
        account = seed.account_id
        if self.client(account) is not None:
            return  # seeded already
        self.batch.clients.append((account, seed.base_currency))
        self.plan.clients[account] = ClientState(account, seed.base_currency)
        running: dict[str, int] = {}
        effects: list[tuple[str, int]] = []  # (currency, cash change) of each fill
        for symbol, quantity, price in seed.fills:
            instrument = self.master[self.master.ix(symbol)]
            if instrument.type in _MARGINED:
                continue
            notional = notional_minor(quantity, price, instrument)
            effects.append((instrument.currency, notional if quantity < 0 else -notional))
        deposits = dict.fromkeys(seed.cash, 0)
        for currency, change in effects:
            deposits[currency] = deposits.get(currency, 0) - change
        for currency, amount in seed.cash.items():
            deposits[currency] += amount
        # Deposits first, then the fills, then what must be withdrawn: the lowest
        # running balance is the floor that lets the account end where it must.
        floors: dict[str, int] = {}
        for currency in deposits:
            running[currency] = max(deposits[currency], 0)
        for currency, change in effects:
            running[currency] += change
            floors[currency] = min(floors.get(currency, 0), running[currency])
        for currency in deposits:
            if deposits[currency] < 0:
                running[currency] += deposits[currency]
            floors[currency] = min(floors.get(currency, 0), running[currency])
        prefix = f"seed_{account}"
        for currency in sorted(deposits):
            cash = cash_asset(currency)
            self.client_name(account, cash, floors[currency])
        for currency in sorted(deposits):
            if deposits[currency] > 0:
                self.seed_cash(
                    account, currency, deposits[currency], f"{prefix}_deposit_{currency}"
                )
        for symbol, quantity, price in seed.fills:
            self.seed_fill(
                account, symbol, quantity, price, f"{prefix}_fill_{symbol}", seed.ts_event
            )
        for currency in sorted(deposits):
            if deposits[currency] < 0:
                self.seed_cash(
                    account, currency, deposits[currency], f"{prefix}_withdrawal_{currency}"
                )

    def seed_cash(self, account: AccountId, currency: str, amount: int, transfer_id: str) -> None:
        cash = cash_asset(currency)
        self.post(
            transfer_id,
            "deposit" if amount > 0 else "withdrawal",
            [
                Posting(self.house(HouseAccount.RAIL, cash), cash, -amount),
                Posting(client_account(account, cash), cash, amount),
            ],
        )

    def seed_fill(
        self,
        account: AccountId,
        symbol: str,
        quantity: Decimal,
        price: Decimal,
        fill_id: str,
        ts_event: int,
    ) -> None:
        instrument = self.master[self.master.ix(symbol)]
        units = to_units(quantity, instrument)
        cash = cash_asset(instrument.currency)
        asset = instrument_asset(symbol)
        postings = [
            Posting(self.client_name(account, asset, None), asset, units),
            Posting(self.house(HouseAccount.CLEARING, asset), asset, -units),
        ]
        notional = 0
        if instrument.type not in _MARGINED:
            notional = notional_minor(quantity, price, instrument)
            sign = -1 if quantity > 0 else 1
            self.client_name(account, cash, 0)
            postings += [
                Posting(client_account(account, cash), cash, sign * notional),
                Posting(self.house(HouseAccount.CLEARING, cash), cash, -sign * notional),
            ]
        txn = self.post(fill_id, "fill", postings)
        position, _ = apply_exact_fill(
            ExactPosition(), quantity, price, instrument.multiplier, Decimal(0)
        )
        client = self.client(account)
        assert client is not None
        positions = dict(client.positions)
        positions[symbol] = position
        self.plan.clients[account] = replace(client, positions=positions)
        self.batch.positions.append(
            PositionRow(account, symbol, units, position.avg_cost, Decimal(0), Decimal(0), txn)
        )
        self.batch.fills.append(
            FillRow(
                fill_id,
                f"seed_{account}",
                account,
                symbol,
                units,
                price,
                notional,
                0,
                instrument.currency,
                Decimal(0),
                ts_event,
                txn,
            )
        )
        side = Side.BUY if quantity > 0 else Side.SELL
        self.event(
            event_id_for("fill", fill_id),
            account,
            "fill",
            {
                "fill_id": fill_id,
                "order_id": f"seed_{account}",
                "symbol": symbol,
                "side": side.value,
                "quantity": _text(abs(quantity)),
                "price": _text(price),
                "fee": "0",
                "currency": instrument.currency,
                "realised_pnl": "0",
                "ts_event": ts_event,
            },
            txn,
        )


def _owner(name: str) -> AccountId | None:
    # "client:<id>:<asset>" -> <id>; ids never contain ":" (assets do).
    if not name.startswith("client:"):
        return None
    return AccountId(name.split(":", 2)[1])


def _text(value: Decimal) -> str:
    # Plain notation without trailing zeros: "187.25", "100", never "1E+2".
    return format(value.normalize(), "f")


def _order_payload(record: OrderRecord, cause: str, trace_id: str | None) -> dict[str, object]:
    return {
        "order_id": record.order_id,
        "transfer_id": record.transfer_id,
        "client_order_id": record.client_order_id,
        "symbol": record.symbol,
        "side": record.side.value,
        "quantity": _text(record.quantity),
        "order_type": record.order_type.value,
        "limit_price": None if record.limit_price is None else _text(record.limit_price),
        "time_in_force": record.time_in_force.value,
        "status": record.status.value,
        "filled_quantity": _text(record.filled_quantity),
        "average_price": None if record.average_price is None else _text(record.average_price),
        "reason": record.reason,
        "cause": cause,
        "ts_accepted": record.ts_accepted,
        "ts_event": record.ts_updated,
        "trace_id": trace_id,
    }
