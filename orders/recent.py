"""Commands this process accepted recently, to answer reads before the ledger's view has them.

The ledger's view lags the bus (Kafka, then the consumer, then its store).
An order or payment accepted here answers GET as ``accepted`` until the
ledger's first event about its transfer arrives (``forget``), or until
``max_entries`` newer commands pushed it out.
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal

from orders.commands import SubmitOrder, SubmitPayment
from orders.types import AccountId, OrderId, PaymentId, TransferId
from orders.views import OrderRecord, OrderStatus, PaymentRecord, PaymentStatus

__all__ = ["RecentCommands", "as_order_record", "as_payment_record"]


class RecentCommands:
    """A bounded map of accepted submits by transfer id, in acceptance order."""

    def __init__(self, max_entries: int) -> None:
        if max_entries <= 0:
            raise ValueError(f"max_entries must be positive, was {max_entries}")
        self._max_entries = max_entries
        self._by_transfer: OrderedDict[TransferId, SubmitOrder | SubmitPayment] = OrderedDict()
        self._orders: dict[OrderId, SubmitOrder] = {}
        self._payments: dict[PaymentId, SubmitPayment] = {}

    def __len__(self) -> int:
        return len(self._by_transfer)

    def remember(self, command: SubmitOrder | SubmitPayment) -> None:
        self.forget(command.transfer_id)
        self._by_transfer[command.transfer_id] = command
        if isinstance(command, SubmitOrder):
            self._orders[command.order_id] = command
        else:
            self._payments[command.payment_id] = command
        while len(self._by_transfer) > self._max_entries:
            _, oldest = self._by_transfer.popitem(last=False)
            self._drop(oldest)

    def forget(self, transfer_id: TransferId) -> None:
        command = self._by_transfer.pop(transfer_id, None)
        if command is not None:
            self._drop(command)

    def order(self, order_id: OrderId) -> SubmitOrder | None:
        return self._orders.get(order_id)

    def payment(self, payment_id: PaymentId) -> SubmitPayment | None:
        return self._payments.get(payment_id)

    def orders_of(self, account_id: AccountId) -> list[SubmitOrder]:
        """Return the account's remembered orders, newest first."""
        return [
            command
            for command in reversed(self._by_transfer.values())
            if isinstance(command, SubmitOrder) and command.account_id == account_id
        ]

    def _drop(self, command: SubmitOrder | SubmitPayment) -> None:
        if isinstance(command, SubmitOrder):
            self._orders.pop(command.order_id, None)
        else:
            self._payments.pop(command.payment_id, None)


def as_order_record(command: SubmitOrder) -> OrderRecord:
    """Return the read model of an order the ledger has not reported yet (``accepted``)."""
    return OrderRecord(
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
        ts_updated=command.ts_accepted,
    )


def as_payment_record(command: SubmitPayment) -> PaymentRecord:
    """Return the read model of a payment the ledger has not reported yet (``accepted``)."""
    return PaymentRecord(
        payment_id=command.payment_id,
        transfer_id=command.transfer_id,
        account_id=command.account_id,
        kind=command.kind,
        amount=command.amount,
        currency=command.currency,
        reference=command.reference,
        status=PaymentStatus.ACCEPTED,
        reason=None,
        ts_accepted=command.ts_accepted,
        ts_updated=command.ts_accepted,
    )
