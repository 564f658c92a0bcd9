"""Per-client outbound buffering: encoded message bodies in, frames out.

A message is held as its *body*: its JSON object without the closing brace,
encoded once and shared by every client that receives it. A channel whose
updates carry only part of a key's state (the changed rows of a portfolio)
queues a ``Delta`` instead, which knows how to merge with a newer one (bodies
are encoded by the shell's ``encoding.encode_body``). Frame assembly
appends the per-frame tail ``,"ts_sent":<ns>}`` to each body and joins them
into one JSON array, so a frame costs one ``join`` whatever the fan-out.

Two lanes:
- the **control lane** is lossless and ordered (acks, errors, snapshots,
  replays);
- the **state lane** conflates: one entry per key holding the latest update.
  When an update replaces one that was never sent, the entry keeps the first
  seq it covers and the message goes out with ``seq_from``, so the client can
  tell conflation (``seq_from == last + 1``) from loss (a gap).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Final, Protocol

__all__ = ["Body", "Delta", "OutboundBound", "Outbox"]

_FRAME_OPEN: Final = b"["
_FRAME_CLOSE: Final = b"]"


class Delta(Protocol):
    """An update that carries part of a key's state and merges with newer ones."""

    def merged_with(self, newer: Delta) -> Delta:
        """One update standing for this one followed by ``newer``."""
        ...

    def body(self) -> bytes:
        """The encoded body (without the closing brace)."""
        ...


Body = bytes | Delta


def _encoded(body: Body) -> bytes:
    return body if isinstance(body, bytes) else body.body()


class Outbox:
    """Messages waiting for one client's socket.

    The state lane is two dicts rather than an object per entry: queueing an
    update is the hot path of the fan-out (once per client per changed key),
    so it costs two dict stores. ``_first`` holds the first seq an unsent
    entry stands for; ``_merged`` those keys whose entry replaced another.
    """

    __slots__ = (
        "_control",
        "_deltas",
        "_first",
        "_merged",
        "_state",
        "conflated",
        "queued_bytes",
    )

    def __init__(self) -> None:
        self._control: list[bytes] = []
        self._state: dict[Hashable, Body] = {}
        self._first: dict[Hashable, int] = {}
        self._merged: set[Hashable] = set()
        self._deltas = 0  # state entries that are Deltas, not bytes
        self.queued_bytes = 0
        self.conflated = 0

    def __bool__(self) -> bool:
        return bool(self._control) or bool(self._state)

    def push_control(self, body: Body) -> None:
        """Queue a message that must be delivered, in order."""
        encoded = _encoded(body)
        self._control.append(encoded)
        self.queued_bytes += len(encoded)

    def push_state(self, key: Hashable, seq: int, body: Body) -> None:
        """Queue the latest update for ``key``, merging with (or replacing) an unsent one."""
        state = self._state
        old = state.get(key)
        if old is None:
            state[key] = body
            self._first[key] = seq
            if isinstance(body, bytes):
                self.queued_bytes += len(body)
            else:
                self._deltas += 1
                self.queued_bytes += len(body.body())
            return
        if not isinstance(body, bytes):
            assert not isinstance(old, bytes)  # a key's updates are all of one kind
            body = old.merged_with(body)
        state[key] = body
        self._merged.add(key)
        self.queued_bytes += len(_encoded(body)) - len(_encoded(old))
        self.conflated += 1

    def drop_state(self, keys: Iterable[Hashable]) -> None:
        """Forget unsent updates for ``keys`` (after a resubscribe or an unsubscribe)."""
        for key in keys:
            body = self._state.pop(key, None)
            if body is not None:
                if not isinstance(body, bytes):
                    self._deltas -= 1
                del self._first[key]
                self._merged.discard(key)
                self.queued_bytes -= len(_encoded(body))

    def take_frame(self, ts_sent_ns: int) -> bytes | None:
        """Return every queued message as one JSON-array frame and empty the outbox."""
        if not self:
            return None
        parts = self._control
        merged, first = self._merged, self._first
        if merged or self._deltas:
            for key, body in self._state.items():
                encoded = body if isinstance(body, bytes) else body.body()
                if merged and key in merged:
                    encoded += b',"seq_from":%d' % first[key]
                parts.append(encoded)
        else:  # the common case: every body is bytes, none merged
            parts.extend(self._state.values())  # type: ignore[arg-type]
        self._control = []
        self._state = {}
        self._first = {}
        self._deltas = 0
        if merged:
            self._merged = set()
        self.queued_bytes = 0
        tail = b',"ts_sent":%d}' % ts_sent_ns
        return _FRAME_OPEN + (tail + b",").join(parts) + tail + _FRAME_CLOSE


class OutboundBound:
    """The slow-consumer rule: over the bound for longer than the grace period.

    A client is over its bound while bytes written to it wait in user space
    (its kernel send buffer was full at the last write, so it is at least a
    send buffer behind) or while the bytes waiting for it exceed
    ``max_bytes``. It is back within the bound only once everything written
    has reached the kernel: a client that reads just fast enough to drain
    the socket below the low-water mark, and then falls behind again, never
    catches up and stays over. It is due to be closed once it has been over
    the bound continuously for ``grace_ns``.
    """

    __slots__ = ("_grace_ns", "_max_bytes", "over_since_ns")

    def __init__(self, max_bytes: int, grace_ns: int) -> None:
        self._max_bytes = max_bytes
        self._grace_ns = grace_ns
        self.over_since_ns: int | None = None

    def observe(self, queued_bytes: int, unsent_bytes: int, now_ns: int) -> None:
        """Record the client's state: bytes queued for it, bytes its socket did not take."""
        if unsent_bytes > 0 or queued_bytes + unsent_bytes > self._max_bytes:
            if self.over_since_ns is None:
                self.over_since_ns = now_ns
        else:
            self.over_since_ns = None

    def is_expired(self, now_ns: int) -> bool:
        """Return whether the client has been over its bound for the whole grace period."""
        since = self.over_since_ns
        return since is not None and now_ns - since >= self._grace_ns
