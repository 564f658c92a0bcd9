"""Topic: subscribe, publish, recovery and unsubscribe; QuotesChannel over a real PriceBook.

A state topic (no history) recovers with the latest state; a lossless one
(with a history, as ``orders``) replays, all or nothing.
"""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from gateway.channels import quotes as quotes_module
from gateway.channels.quotes import QuotesChannel
from gateway.refdata import load_master
from gateway.ws.encoding import encode_body
from gateway.ws.outbox import Outbox
from gateway.ws.session import Recovery, Subscribe, Unsubscribe
from gateway.ws.topic import KeyState, Topic
from pricing.pricebook import PriceBook
from tests.builders import NS, make_batch

EPOCH = "epoch-1"
TS = 1_700_000_000 * NS


class RecordingSubscriber:
    """A connection stand-in: a real Outbox, and a count of flush calls."""

    def __init__(self) -> None:
        self.outbox = Outbox()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1

    def take(self) -> list[dict[str, object]]:
        frame = self.outbox.take_frame(TS)
        return [] if frame is None else json.loads(frame)


def make_topic(history: int | None = None) -> Topic:
    def snapshot(st: KeyState) -> dict[str, object]:
        return {"price": 100 + st.seq}

    return Topic("quotes", epoch=EPOCH, history=history, snapshot=snapshot, encode=encode_body)


def publish(topic: Topic, key: str, times: int = 1) -> None:
    for _ in range(times):
        st = topic.state(key)
        body = encode_body({"type": "update", "key": key, "seq": st.seq + 1})
        topic.publish(st, body)


def record(topic: Topic, key: str, times: int = 1) -> None:
    """Publish on a lossless topic, as the orders channel does: recorded, control lane."""
    for _ in range(times):
        st = topic.state(key)
        seq = st.seq = st.seq + 1
        body = encode_body({"type": "update", "key": key, "seq": seq})
        st.history.append((seq, body))
        for subscriber in st.subscribers:
            subscriber.outbox.push_control(body)


def recover(*keys: str, epoch: str = EPOCH, **last_seq: int) -> Subscribe:
    return Subscribe("quotes", keys, None, Recovery(epoch, last_seq))


def kinds(messages: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [(m["type"], m.get("key"), m.get("seq")) for m in messages]


def test_subscribe_queues_the_ack_and_one_snapshot_per_key_at_the_current_seq():
    topic = make_topic()
    publish(topic, "AAPL", times=2)
    subscriber = RecordingSubscriber()

    topic.subscribe(subscriber, Subscribe("quotes", ("AAPL", "MSFT"), 9, None))
    messages = subscriber.take()

    assert messages[0] == {
        "type": "subscribed",
        "channel": "quotes",
        "keys": ["AAPL", "MSFT"],
        "epoch": EPOCH,
        "id": 9,
        "ts_sent": TS,
    }
    assert messages[1:] == [
        {
            "type": "snapshot",
            "channel": "quotes",
            "key": "AAPL",
            "seq": 2,
            "epoch": EPOCH,
            "price": 102,
            "ts_sent": TS,
        },
        {
            "type": "snapshot",
            "channel": "quotes",
            "key": "MSFT",
            "seq": 0,
            "epoch": EPOCH,
            "price": 100,
            "ts_sent": TS,
        },
    ]
    assert subscriber.flushes == 1


def test_publish_after_subscribe_reaches_the_subscriber():
    topic = make_topic()
    subscriber = RecordingSubscriber()
    topic.subscribe(subscriber, Subscribe("quotes", ("AAPL",), None, None))
    subscriber.take()

    publish(topic, "AAPL")

    assert kinds(subscriber.take()) == [("update", "AAPL", 1)]


def test_publish_advances_the_seq_by_one_per_update():
    topic = make_topic()

    publish(topic, "AAPL", times=3)

    assert topic.state("AAPL").seq == 3
    assert topic.state("MSFT").seq == 0


def test_state_recovery_sends_the_latest_state_of_each_key_with_seq_from():
    topic = make_topic()
    publish(topic, "AAPL", times=5)
    publish(topic, "MSFT", times=2)
    subscriber = RecordingSubscriber()

    topic.subscribe(subscriber, recover("AAPL", "MSFT", AAPL=2, MSFT=1))
    messages = subscriber.take()

    assert messages[0]["recovered"] is True
    assert messages[1:] == [
        {
            "type": "update",
            "channel": "quotes",
            "key": "AAPL",
            "seq": 5,
            "epoch": EPOCH,
            "seq_from": 3,
            "price": 105,
            "ts_sent": TS,
        },
        {
            "type": "update",
            "channel": "quotes",
            "key": "MSFT",
            "seq": 2,
            "epoch": EPOCH,
            "price": 102,
            "ts_sent": TS,
        },
    ]


def test_state_recovery_follows_on_without_a_gap():
    topic = make_topic()
    publish(topic, "AAPL", times=40)  # more than any history would hold
    subscriber = RecordingSubscriber()
    topic.subscribe(subscriber, recover("AAPL", AAPL=3))
    publish(topic, "AAPL")

    recovered, following = subscriber.take()[1:]

    assert (recovered["seq_from"], recovered["seq"]) == (4, 40)
    assert ("seq_from" not in following, following["seq"]) == (True, 41)


def test_state_recovery_skips_keys_already_at_the_current_seq():
    topic = make_topic()
    publish(topic, "AAPL", times=3)
    publish(topic, "MSFT", times=2)
    subscriber = RecordingSubscriber()

    topic.subscribe(subscriber, recover("AAPL", "MSFT", AAPL=3, MSFT=1))

    assert kinds(subscriber.take()) == [("subscribed", None, None), ("update", "MSFT", 2)]


def test_state_recovery_ahead_of_the_current_seq_gives_snapshots_for_all_keys():
    topic = make_topic()
    publish(topic, "AAPL", times=2)
    publish(topic, "MSFT", times=2)
    subscriber = RecordingSubscriber()

    topic.subscribe(subscriber, recover("AAPL", "MSFT", AAPL=1, MSFT=5))

    assert_snapshots_not_recovered(subscriber.take(), ["AAPL", "MSFT"])


def test_state_recovery_from_another_epoch_gives_snapshots_for_all_keys():
    topic = make_topic()
    publish(topic, "AAPL", times=2)
    subscriber = RecordingSubscriber()

    topic.subscribe(subscriber, recover("AAPL", epoch="epoch-0", AAPL=1))

    assert_snapshots_not_recovered(subscriber.take(), ["AAPL"])


def test_state_publish_records_no_history():
    topic = make_topic()

    publish(topic, "AAPL", times=3)

    assert not topic.state("AAPL").history


def test_recovery_within_history_replays_exactly_the_missed_updates():
    topic = make_topic(history=8)
    record(topic, "AAPL", times=5)
    record(topic, "MSFT", times=1)
    subscriber = RecordingSubscriber()

    topic.subscribe(subscriber, recover("AAPL", "MSFT", AAPL=2, MSFT=1))
    messages = subscriber.take()

    assert messages[0]["recovered"] is True
    assert kinds(messages[1:]) == [
        ("update", "AAPL", 3),
        ("update", "AAPL", 4),
        ("update", "AAPL", 5),
    ]


def test_recovery_at_the_current_seq_replays_nothing():
    topic = make_topic(history=8)
    record(topic, "AAPL", times=3)
    subscriber = RecordingSubscriber()

    topic.subscribe(subscriber, recover("AAPL", AAPL=3))

    assert kinds(subscriber.take()) == [("subscribed", None, None)]


def assert_snapshots_not_recovered(messages: list[dict[str, object]], keys: list[str]) -> None:
    assert messages[0]["type"] == "subscribed"
    assert messages[0]["recovered"] is False
    assert [m["type"] for m in messages[1:]] == ["snapshot"] * len(keys)
    assert [m["key"] for m in messages[1:]] == keys
    assert all(m["recovered"] is False for m in messages[1:])


def test_recovery_older_than_the_history_gives_snapshots_for_all_keys():
    topic = make_topic(history=3)
    record(topic, "AAPL", times=6)
    record(topic, "MSFT", times=2)
    subscriber = RecordingSubscriber()

    topic.subscribe(subscriber, recover("MSFT", "AAPL", MSFT=1, AAPL=2))

    assert_snapshots_not_recovered(subscriber.take(), ["MSFT", "AAPL"])


def test_recovery_ahead_of_the_current_seq_gives_snapshots_for_all_keys():
    topic = make_topic(history=8)
    record(topic, "AAPL", times=2)
    record(topic, "MSFT", times=2)
    subscriber = RecordingSubscriber()

    topic.subscribe(subscriber, recover("AAPL", "MSFT", AAPL=1, MSFT=5))

    assert_snapshots_not_recovered(subscriber.take(), ["AAPL", "MSFT"])


def test_recovery_from_another_epoch_gives_snapshots_for_all_keys():
    topic = make_topic(history=8)
    record(topic, "AAPL", times=2)
    subscriber = RecordingSubscriber()

    topic.subscribe(subscriber, recover("AAPL", epoch="epoch-0", AAPL=1))

    assert_snapshots_not_recovered(subscriber.take(), ["AAPL"])


def test_unsubscribe_stops_delivery_and_drops_the_pending_update():
    topic = make_topic()
    subscriber = RecordingSubscriber()
    topic.subscribe(subscriber, Subscribe("quotes", ("AAPL",), None, None))
    subscriber.take()
    publish(topic, "AAPL")

    topic.unsubscribe(subscriber, Unsubscribe("quotes", ("AAPL",), 3))
    publish(topic, "AAPL")

    assert subscriber.take() == [
        {"type": "unsubscribed", "channel": "quotes", "keys": ["AAPL"], "id": 3, "ts_sent": TS}
    ]
    assert topic.subscriber_count() == 0


def test_unsubscribe_keeps_the_other_keys():
    topic = make_topic()
    subscriber = RecordingSubscriber()
    topic.subscribe(subscriber, Subscribe("quotes", ("AAPL", "MSFT"), None, None))
    topic.unsubscribe(subscriber, Unsubscribe("quotes", ("AAPL",), None))
    subscriber.take()

    publish(topic, "AAPL")
    publish(topic, "MSFT")

    assert kinds(subscriber.take()) == [("update", "MSFT", 1)]


def test_remove_drops_every_subscription():
    topic = make_topic()
    subscriber = RecordingSubscriber()
    topic.subscribe(subscriber, Subscribe("quotes", ("AAPL", "MSFT"), None, None))
    subscriber.take()

    topic.remove(subscriber)
    publish(topic, "AAPL")
    publish(topic, "MSFT")

    assert subscriber.take() == []
    assert topic.subscriber_count() == 0


def test_resubscribe_drops_a_stale_pending_update_older_than_the_new_snapshot():
    topic = make_topic()
    subscriber = RecordingSubscriber()
    topic.subscribe(subscriber, Subscribe("quotes", ("AAPL",), None, None))
    subscriber.take()
    publish(topic, "AAPL")  # seq 1, still unsent

    topic.subscribe(subscriber, Subscribe("quotes", ("AAPL",), None, None))
    publish(topic, "AAPL")  # seq 2, after the snapshot

    assert kinds(subscriber.take()) == [
        ("subscribed", None, None),
        ("snapshot", "AAPL", 1),
        ("update", "AAPL", 2),
    ]


# --- QuotesChannel ---------------------------------------------------------------


@pytest.fixture
def quotes():
    master = load_master()
    book = PriceBook(master.ref_price, stale_after_ns=10 * NS)
    channel = QuotesChannel(master, book, epoch=EPOCH)
    return master, book, channel


def test_snapshot_of_an_unpriced_instrument_has_null_prices(quotes):
    _, _, channel = quotes
    subscriber = RecordingSubscriber()

    channel.subscribe(subscriber, Subscribe("quotes", ("AAPL",), None, None))

    snapshot = subscriber.take()[1]
    assert (snapshot["bid"], snapshot["ask"], snapshot["last"]) == (None, None, None)
    assert snapshot["stale"] is True


def test_book_change_publishes_the_books_absolute_values(quotes):
    master, book, channel = quotes
    aapl, msft = master.symbol_index["AAPL"], master.symbol_index["MSFT"]
    subscriber = RecordingSubscriber()
    channel.subscribe(subscriber, Subscribe("quotes", ("AAPL", "MSFT"), None, None))
    subscriber.take()
    batch = make_batch(
        [aapl, msft, aapl], bid=[10.0, 20.0, 11.0], ask=[10.5, 20.5, 11.5], ts_event=5, ts_recv=6
    )
    changed = book.apply(batch).changed_ix

    channel.on_book_changed(changed, TS)

    updates = {m["key"]: m for m in subscriber.take()}
    assert updates["AAPL"]["bid"] == 11.0
    assert updates["AAPL"]["ask"] == 11.5
    assert updates["MSFT"]["bid"] == 20.0
    assert updates["AAPL"]["last"] is None
    assert (updates["AAPL"]["seq"], updates["AAPL"]["epoch"]) == (1, EPOCH)
    assert (updates["AAPL"]["ts_event"], updates["AAPL"]["ts_recv"]) == (5, 6)
    assert updates["AAPL"]["stale"] is False


def test_book_change_flushes_each_touched_subscriber_once_per_batch(quotes):
    master, book, channel = quotes
    ix = [master.symbol_index[s] for s in ("AAPL", "MSFT", "NVDA")]
    both = RecordingSubscriber()
    idle = RecordingSubscriber()
    channel.subscribe(both, Subscribe("quotes", ("AAPL", "MSFT"), None, None))
    channel.subscribe(idle, Subscribe("quotes", ("AMZN",), None, None))
    changed = book.apply(make_batch(ix, last=[1.0, 2.0, 3.0], size=[1, 1, 1])).changed_ix

    channel.on_book_changed(changed, TS)

    assert (both.flushes, idle.flushes) == (2, 1)  # one each at subscribe, one per batch


def test_book_change_with_no_instruments_flushes_nobody(quotes):
    _, _, channel = quotes
    subscriber = RecordingSubscriber()
    channel.subscribe(subscriber, Subscribe("quotes", ("AAPL",), None, None))

    channel.on_book_changed(np.empty(0, dtype=np.int64), TS)

    assert subscriber.flushes == 1


class CountingOrjson:
    """The quotes module's ``orjson``, counting encodes."""

    def __init__(self) -> None:
        self.calls = 0

    def dumps(self, value: object) -> bytes:
        self.calls += 1
        return orjson.dumps(value)


def test_book_change_encodes_only_watched_instruments(quotes, monkeypatch):
    master, book, channel = quotes
    counting = CountingOrjson()
    monkeypatch.setattr(quotes_module, "orjson", counting)
    subscriber = RecordingSubscriber()
    channel.subscribe(subscriber, Subscribe("quotes", ("AAPL",), None, None))
    subscriber.take()
    every = list(range(len(master.symbols)))
    changed = book.apply(make_batch(every, last=[1.0] * len(every), size=[1] * len(every)))

    channel.on_book_changed(changed.changed_ix, TS)

    assert counting.calls == 1
    assert kinds(subscriber.take()) == [("update", "AAPL", 1)]


def test_book_change_of_unwatched_instruments_encodes_and_keeps_nothing(quotes, monkeypatch):
    master, book, channel = quotes
    counting = CountingOrjson()
    monkeypatch.setattr(quotes_module, "orjson", counting)
    ix = [master.symbol_index[s] for s in ("AAPL", "MSFT")]

    for price in (1.0, 2.0, 3.0):
        changed = book.apply(make_batch(ix, last=[price, price], size=[1, 1])).changed_ix
        channel.on_book_changed(changed, TS)

    assert counting.calls == 0
    assert channel.topic.live_state("AAPL") is None


def test_seq_of_an_unwatched_instrument_advances_for_a_later_snapshot(quotes):
    master, book, channel = quotes
    aapl = master.symbol_index["AAPL"]
    for price in (1.0, 2.0, 3.0):
        channel.on_book_changed(
            book.apply(make_batch([aapl], last=[price], size=[1])).changed_ix, TS
        )
    subscriber = RecordingSubscriber()

    channel.subscribe(subscriber, Subscribe("quotes", ("AAPL",), None, None))

    snapshot = subscriber.take()[1]
    assert (snapshot["seq"], snapshot["last"]) == (3, 3.0)


def test_quotes_recovery_after_the_last_subscriber_left_sends_the_latest_quote(quotes):
    master, book, channel = quotes
    aapl = master.symbol_index["AAPL"]
    first = RecordingSubscriber()
    channel.subscribe(first, Subscribe("quotes", ("AAPL",), None, None))
    channel.on_book_changed(book.apply(make_batch([aapl], last=[1.0], size=[1])).changed_ix, TS)
    last_seq = int(str(first.take()[-1]["seq"]))
    channel.remove(first)  # the connection dropped; nobody watches AAPL
    for price in (2.0, 3.0, 4.0):
        channel.on_book_changed(
            book.apply(make_batch([aapl], last=[price], size=[1])).changed_ix, TS
        )
    second = RecordingSubscriber()

    channel.subscribe(
        second, Subscribe("quotes", ("AAPL",), 7, Recovery(EPOCH, {"AAPL": last_seq}))
    )
    ack, update = second.take()

    assert ack["recovered"] is True
    assert (update["type"], update["seq_from"], update["seq"]) == ("update", last_seq + 1, 4)
    assert (update["last"], update["stale"]) == (4.0, False)
