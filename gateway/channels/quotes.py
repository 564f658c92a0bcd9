"""The ``quotes`` channel: top of book per instrument, pushed as absolute values.

Every accepted tick batch (and every staleness flip) advances the seq of
each changed instrument and publishes one update per changed instrument that
somebody watches. Each update is encoded once, whatever the number of
subscribers, and each subscriber gets at most one frame per batch; the
frames are written a bounded number of connections per loop step
(``Flusher``), so handshakes and replies are not held behind the fan-out. An
instrument nobody watches costs one vectorised seq increment: nothing is
encoded or recorded for it, since a recovery sends the latest state
(``Topic``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import orjson

from gateway.ws.channelspecs import QUOTES
from gateway.ws.encoding import encode_body
from gateway.ws.flusher import FLUSH_CHUNK, Flusher
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
        self,
        master: InstrumentMaster,
        book: PriceBook,
        *,
        epoch: str,
        flush_chunk: int = FLUSH_CHUNK,
    ) -> None:
        self._book = book
        self._flusher = Flusher(_call_soon, flush_chunk)
        self._ix_of = master.symbol_index
        self._symbols = master.symbols
        # Dense by instrument_ix: every instrument's seq, and whether a key
        # state (with subscribers) exists for it.
        m = len(master.symbols)
        self._seq = np.zeros(m, dtype=np.int64)
        self._is_watched = np.zeros(m, dtype=np.bool_)
        self.topic = Topic(
            QUOTES,
            epoch=epoch,
            snapshot=self._snapshot_fields,
            encode=encode_body,
            initial_seq=self._start_watching,
            on_idle=self._stop_watching,
        )
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
        """Advance the changed instruments' seqs; publish the watched ones, flush once each.

        ``changed_ix`` is sorted and unique (``PriceBook.apply``). Touched
        subscribers are flushed a chunk per loop step (``Flusher``).
        """
        if changed_ix.size == 0:
            return
        self._seq[changed_ix] += 1
        live = changed_ix[self._is_watched[changed_ix]]
        if live.size == 0:
            return
        book = self._book
        columns = zip(
            live.tolist(),
            book.bid[live].tolist(),
            book.ask[live].tolist(),
            book.last[live].tolist(),
            book.size[live].tolist(),
            book.ts_event[live].tolist(),
            book.ts_recv[live].tolist(),
            book.is_stale[live].tolist(),
            strict=True,
        )
        symbols = self._symbols
        live_state = self.topic.live_state
        epoch = self._epoch
        publish = self.topic.publish
        dumps = orjson.dumps
        touched: set[Subscriber] = set()
        for ix, bid, ask, last, size, ts_event, ts_recv, is_stale in columns:
            st = live_state(symbols[ix])
            assert st is not None  # watched instruments have a live state
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
            touched.update(st.subscribers)
        self._flusher.flush(touched)

    def _start_watching(self, key: str) -> int:
        ix = self._ix_of[key]
        self._is_watched[ix] = True
        return int(self._seq[ix])

    def _stop_watching(self, st: KeyState) -> None:
        ix = self._ix_of[st.key]
        self._is_watched[ix] = False
        assert self._seq[ix] == st.seq  # both advance with every change

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


def _call_soon(callback: Callable[[], None]) -> None:
    asyncio.get_running_loop().call_soon(callback)
