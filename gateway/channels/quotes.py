"""The ``quotes`` channel: top of book per instrument, pushed as absolute values.

Every accepted tick batch (and every staleness flip) publishes one update per
changed instrument. Each update is encoded once, whatever the number of
subscribers, and each subscriber gets at most one frame per batch.
"""

from __future__ import annotations

import orjson

from gateway.ws.channelspecs import QUOTES
from gateway.ws.encoding import encode_body
from gateway.ws.session import Message, Subscribe, Unsubscribe
from gateway.ws.topic import KeyState, Subscriber, Topic
from pricing.instruments import InstrumentMaster
from pricing.pricebook import PriceBook
from pricing.types import I64Array1D

__all__ = ["QuotesChannel"]


class QuotesChannel:
    """Fan-out of the PriceBook to ``quotes`` subscribers."""

    name = QUOTES

    def __init__(
        self, master: InstrumentMaster, book: PriceBook, *, epoch: str, history: int
    ) -> None:
        self._book = book
        self._ix_of = master.symbol_index
        self.topic = Topic(
            QUOTES,
            epoch=epoch,
            history=history,
            snapshot=self._snapshot_fields,
            encode=encode_body,
        )
        # Dense by instrument_ix, so a batch looks its keys up by position.
        self._states = [self.topic.state(symbol) for symbol in master.symbols]
        self._epoch = epoch

    def subscribe(self, subscriber: Subscriber, command: Subscribe) -> None:
        """See ``Channel.subscribe``."""
        self.topic.subscribe(subscriber, command)

    def unsubscribe(self, subscriber: Subscriber, command: Unsubscribe) -> None:
        """See ``Channel.unsubscribe``."""
        self.topic.unsubscribe(subscriber, command)

    def remove(self, subscriber: Subscriber) -> None:
        """See ``Channel.remove``."""
        self.topic.remove(subscriber)

    def on_book_changed(self, changed_ix: I64Array1D, now_ns: int) -> None:
        """Publish the changed instruments and flush each touched subscriber once."""
        if changed_ix.size == 0:
            return
        book = self._book
        columns = zip(
            changed_ix.tolist(),
            book.bid[changed_ix].tolist(),
            book.ask[changed_ix].tolist(),
            book.last[changed_ix].tolist(),
            book.size[changed_ix].tolist(),
            book.ts_event[changed_ix].tolist(),
            book.ts_recv[changed_ix].tolist(),
            book.is_stale[changed_ix].tolist(),
            strict=True,
        )
        states = self._states
        epoch = self._epoch
        publish = self.topic.publish
        dumps = orjson.dumps
        touched: set[Subscriber] = set()
        for ix, bid, ask, last, size, ts_event, ts_recv, is_stale in columns:
            st = states[ix]
            body = dumps(
                {
                    "type": "update",
                    "channel": QUOTES,
                    "key": st.key,
                    "seq": st.seq + 1,
                    "epoch": epoch,
                    "bid": bid,
                    "ask": ask,
                    "last": last,
                    "size": size,
                    "ts_event": ts_event,
                    "ts_recv": ts_recv,
                    "stale": is_stale,
                }
            )[:-1]
            publish(st, body)
            if st.subscribers:
                touched.update(st.subscribers)
        for subscriber in touched:
            subscriber.flush()

    def _snapshot_fields(self, st: KeyState) -> Message:
        ix = self._ix_of[st.key]
        book = self._book
        # orjson writes NaN ("no price yet") as null.
        return {
            "bid": float(book.bid[ix]),
            "ask": float(book.ask[ix]),
            "last": float(book.last[ix]),
            "size": float(book.size[ix]),
            "ts_event": int(book.ts_event[ix]),
            "ts_recv": int(book.ts_recv[ix]),
            "stale": bool(book.is_stale[ix]),
        }
