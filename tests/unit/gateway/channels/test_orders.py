"""The ``orders`` channel: lossless per-account events, open orders as the snapshot, replay."""

from __future__ import annotations

import json
from typing import Any

from gateway.channels.orders import OrdersChannel
from gateway.ws.outbox import Outbox
from gateway.ws.session import Recovery, Subscribe, Unsubscribe

EPOCH = "e1"


class Subscriber:
    def __init__(self) -> None:
        self.outbox = Outbox()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1

    def take(self) -> list[dict[str, Any]]:
        frame = self.outbox.take_frame(0)
        return [] if frame is None else json.loads(frame)


def order(order_id: str, status: str, account: str = "A") -> dict[str, object]:
    return {"account_id": account, "order_id": order_id, "status": status, "quantity": "5"}


def subscribe(
    channel: OrdersChannel, who: Subscriber, recovery: Recovery | None = None
) -> list[dict[str, Any]]:
    channel.subscribe(who, Subscribe("orders", ("A",), "s", recovery))
    return who.take()


def test_the_snapshot_holds_the_open_orders_only():
    channel = OrdersChannel(epoch=EPOCH, history=8)
    channel.load_open_orders([order("o1", "reserved"), order("o2", "partially_filled")])
    channel.publish([("A", "order", order("o1", "filled"))])
    who = Subscriber()

    _, snapshot = subscribe(channel, who)

    assert snapshot["type"] == "snapshot"
    assert [o["order_id"] for o in snapshot["orders"]] == ["o2"]
    assert snapshot["seq"] == 1


def test_every_event_reaches_the_subscriber_in_order_with_consecutive_seqs():
    channel = OrdersChannel(epoch=EPOCH, history=8)
    who = Subscriber()
    subscribe(channel, who)

    channel.publish(
        [
            ("A", "order", order("o1", "accepted")),
            ("A", "fill", {"order_id": "o1", "quantity": "5", "price": "10.5"}),
            ("A", "order", order("o1", "filled")),
        ]
    )
    messages = who.take()

    assert [(m["seq"], m["event"]) for m in messages] == [(1, "order"), (2, "fill"), (3, "order")]
    assert all(m["type"] == "update" and m["channel"] == "orders" for m in messages)
    assert messages[1]["price"] == "10.5"
    assert who.flushes >= 2  # subscribe, then once for the batch


def test_events_are_never_conflated_even_unread():
    channel = OrdersChannel(epoch=EPOCH, history=8)
    who = Subscriber()
    subscribe(channel, who)

    for n in range(5):
        channel.publish([("A", "order", order(f"o{n}", "accepted"))])
    messages = who.take()

    assert [m["order_id"] for m in messages] == [f"o{n}" for n in range(5)]
    assert "seq_from" not in messages[0]


def test_recovery_replays_the_missed_events_all_or_nothing():
    channel = OrdersChannel(epoch=EPOCH, history=3)
    first = Subscriber()
    subscribe(channel, first)
    channel.publish([("A", "order", order("o1", "accepted"))])
    channel.remove(first)
    channel.publish(
        [("A", "order", order("o2", "accepted")), ("A", "order", order("o3", "accepted"))]
    )
    again = Subscriber()

    ack, *replayed = subscribe(channel, again, Recovery(EPOCH, {"A": 1}))

    assert ack["recovered"] is True
    assert [(m["seq"], m["order_id"]) for m in replayed] == [(2, "o2"), (3, "o3")]


def test_recovery_beyond_the_history_gets_a_snapshot():
    channel = OrdersChannel(epoch=EPOCH, history=2)
    for n in range(4):
        channel.publish([("A", "order", order(f"o{n}", "accepted"))])
    who = Subscriber()

    ack, snapshot = subscribe(channel, who, Recovery(EPOCH, {"A": 1}))

    assert ack["recovered"] is False
    assert (snapshot["type"], snapshot["seq"], snapshot["recovered"]) == ("snapshot", 4, False)


def test_an_unsubscribed_client_gets_no_more_events():
    channel = OrdersChannel(epoch=EPOCH, history=8)
    who = Subscriber()
    subscribe(channel, who)
    channel.unsubscribe(who, Unsubscribe("orders", ("A",), "u"))
    who.take()

    channel.publish([("A", "order", order("o1", "accepted"))])

    assert who.take() == []
