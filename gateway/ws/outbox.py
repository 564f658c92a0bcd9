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

A subscription may ask for at most one update per key every ``max_rate_ms``
(``set_min_gap``): a frame then leaves that key's entry queued (still
conflating) until the gap since its last send has passed, and
``next_due_ns`` tells the shell when to flush again.
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
        "_due",
        "_first",
        "_merged",
        "_min_gap",
        "_state",
        "conflated",
        "next_due_ns",
        "queued_bytes",
    )

    def __init__(self) -> None:
        self._control: list[bytes] = []
        self._state: dict[Hashable, Body] = {}
        self._first: dict[Hashable, int] = {}
        self._merged: set[Hashable] = set()
        self._deltas = 0  # state entries that are Deltas, not bytes
        self._min_gap: dict[Hashable, int] = {}  # key -> ns between two sends (max_rate_ms)
        self._due: dict[Hashable, int] = {}  # key -> when it may be sent again
        self.queued_bytes = 0
        self.conflated = 0
        # When a held (rate-limited) entry falls due, if one is held.
        self.next_due_ns: int | None = None

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

    def set_min_gap(self, key: Hashable, gap_ns: int) -> None:
        """Send ``key``'s updates at most once per ``gap_ns`` (0: as they come)."""
        if gap_ns > 0:
            self._min_gap[key] = gap_ns
        else:
            self._min_gap.pop(key, None)
            self._due.pop(key, None)

    def drop_state(self, keys: Iterable[Hashable]) -> None:
        """Forget unsent updates and the rate of ``keys`` (after a resubscribe or unsubscribe)."""
        min_gap, due = self._min_gap, self._due
        for key in keys:
            if min_gap:
                min_gap.pop(key, None)
                due.pop(key, None)
            body = self._state.pop(key, None)
            if body is not None:
                if not isinstance(body, bytes):
                    self._deltas -= 1
                del self._first[key]
                self._merged.discard(key)
                self.queued_bytes -= len(_encoded(body))

    def take_frame(self, ts_sent_ns: int) -> bytes | None:
        """Return every queued message as one JSON-array frame and empty the outbox."""
        if self._min_gap and self._state:
            return self._take_due_frame(ts_sent_ns)
        self.next_due_ns = None
        return self._take_all(ts_sent_ns)

    def _take_all(self, ts_sent_ns: int) -> bytes | None:
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

    def _take_due_frame(self, now_ns: int) -> bytes | None:
        # Rate-limited entries not yet due stay queued; the rest go now.
        min_gap, due, state = self._min_gap, self._due, self._state
        held = [k for k in state if k in min_gap and due.get(k, 0) > now_ns]
        for key, gap in min_gap.items():
            if key in state and due.get(key, 0) <= now_ns:
                due[key] = now_ns + gap  # sent in this frame
        if not held:
            self.next_due_ns = None
            return self._take_all(now_ns)
        first, merged = self._first, self._merged
        kept_state = {k: state.pop(k) for k in held}
        kept_first = {k: first.pop(k) for k in held}
        kept_merged = {k for k in held if k in merged}
        merged.difference_update(kept_merged)
        kept_deltas = sum(1 for body in kept_state.values() if not isinstance(body, bytes))
        self._deltas -= kept_deltas
        frame = self._take_all(now_ns)
        self._state, self._first, self._merged = kept_state, kept_first, kept_merged
        self._deltas = kept_deltas
        self.queued_bytes = sum(len(_encoded(body)) for body in kept_state.values())
        self.next_due_ns = min(due[k] for k in held)
        return frame


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
