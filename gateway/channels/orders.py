"""The ``orders`` channel: an account's order states, fills and payments, lossless.

Every ledger event of an account (``order``, ``fill``, ``payment``) becomes
one ``update`` on the account's key with the next seq. Events are never
conflated: they travel on the outbox's lossless lane, and a client whose
outbox stays over its bound is closed as a slow consumer (4008) rather
than losing one. Each key keeps its last ``history`` updates, and a
recovery replays them when the whole missed range is there (all or
nothing, as on every channel); otherwise the client gets a snapshot.

The snapshot of an account is its open orders (every order not yet
final), as the ledger states them; the process keeps them in memory from
the ledger's open orders at start and the events after. Keys live for
the process, so seqs and histories survive a client's unsubscribe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gateway.ws.channelspecs import ORDERS
from gateway.ws.encoding import encode_body
from gateway.ws.session import Message, Subscribe, Unsubscribe
from gateway.ws.topic import KeyState, Subscriber, Topic

__all__ = ["ORDER_FINAL_STATUSES", "OrdersChannel"]

ORDER_FINAL_STATUSES = frozenset({"filled", "rejected", "cancelled", "expired"})


class OrdersChannel:
    """Fan-out of ledger events to ``orders`` subscribers."""

    name = ORDERS

    def __init__(self, *, epoch: str, history: int) -> None:
        self._epoch = epoch
        self._open: dict[str, dict[str, Message]] = {}
        self.topic = Topic(
            ORDERS,
            epoch=epoch,
            history=history,
            snapshot=self._snapshot_fields,
            encode=encode_body,
        )

    def load_open_orders(self, orders: Iterable[Message]) -> None:
        """Know these open orders (their ``account_id`` and ``order_id``) for snapshots."""
        for order in orders:
            self._remember(str(order["account_id"]), order)

    def open_orders(self, account: str) -> list[Message]:
        """The account's open orders, oldest first."""
        return list(self._open.get(account, {}).values())

    # --- Channel ------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber, command: Subscribe) -> None:
        """See ``Channel.subscribe``."""
        self.topic.subscribe(subscriber, command)

    def unsubscribe(self, subscriber: Subscriber, command: Unsubscribe) -> None:
        """See ``Channel.unsubscribe``."""
        self.topic.unsubscribe(subscriber, command)

    def remove(self, subscriber: Subscriber) -> None:
        """See ``Channel.remove``."""
        self.topic.remove(subscriber)

    # --- events -------------------------------------------------------------------

    def publish(self, events: Iterable[tuple[str, str, Mapping[str, object]]]) -> None:
        """Send each ``(account, event type, fields)`` to the account's subscribers, in order.

        An ``order`` event also updates the account's open orders.
        """
        touched: set[Subscriber] = set()
        for account, kind, fields in events:
            if kind == "order":
                self._remember(account, dict(fields))
            st = self.topic.state(account)
            seq = st.seq + 1
            message: Message = {
                "type": "update",
                "channel": ORDERS,
                "key": account,
                "seq": seq,
                "epoch": self._epoch,
                "event": kind,
            }
            message.update(fields)
            body = encode_body(message)
            st.seq = seq
            st.history.append((seq, body))
            for subscriber in st.subscribers:
                subscriber.outbox.push_control(body)
            touched.update(st.subscribers)
        for subscriber in touched:
            subscriber.flush()

    def _remember(self, account: str, order: Message) -> None:
        orders = self._open.setdefault(account, {})
        order_id = str(order["order_id"])
        if order.get("status") in ORDER_FINAL_STATUSES:
            orders.pop(order_id, None)
        else:
            orders[order_id] = order

    def _snapshot_fields(self, st: KeyState) -> Message:
        return {"orders": self.open_orders(st.key)}
