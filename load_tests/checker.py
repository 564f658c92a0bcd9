"""Checking a client's message stream against the protocol, as it arrives.

One ``StreamChecker`` per connection. For every (channel, key) it keeps the
epoch and the last seq, and checks each message:

- **snapshot before deltas**: an ``update`` of a key without a snapshot (or
  an all-or-nothing recovery) since the subscribe is an error;
- **seq continuity**: an update must start at ``last_seq + 1`` (``seq_from``
  when the server merged several, else ``seq``); anything later is a gap of
  that many updates, anything earlier (a repeat or a step back) an error;
- **one epoch**: an update of another epoch than the key's snapshot is an
  error (after a restart the client must resubscribe);
- **absolute values**: a quote update carries every field of the quote, a
  portfolio update whole rows and whole totals.

It also counts, per key, what the server ``produced`` (the advance of the
seq) and what arrived: ``produced - delivered`` updates were merged by
conflation, and ``conflated`` counts them as the ``seq_from`` ranges show.
Latency is receive time minus the update's source time (``ts_event`` for
quotes, the totals' ``as_of`` for portfolios). A quote update that carries
no newer ``ts_event`` than the key's last (a staleness flip after a quiet
spell) has no latency: its source time is the old tick's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["KeyState", "StreamChecker", "StreamCounts"]

QUOTE_FIELDS: Final = ("bid", "ask", "last", "size", "ts_event", "stale")
ROW_FIELDS: Final = ("symbol", "quantity", "price", "market_value", "status")
TOTALS_FIELDS: Final = ("equity", "market_value", "day_pnl", "status", "as_of")


@dataclass(slots=True)
class KeyState:
    """What the checker knows of one (channel, key)."""

    epoch: str | None = None
    last_seq: int | None = None
    last_ts_event: int = 0


@dataclass(slots=True)
class StreamCounts:
    """Counts since the last ``take`` (see the module docstring)."""

    messages: int = 0
    snapshots: int = 0
    delivered: int = 0
    produced: int = 0
    conflated: int = 0
    gaps: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def take(self) -> StreamCounts:
        """A copy of the counts, which are then zeroed (in place: checkers share them)."""
        taken = StreamCounts(
            self.messages,
            self.snapshots,
            self.delivered,
            self.produced,
            self.conflated,
            self.gaps,
            self.errors.copy(),
        )
        self.messages = self.snapshots = self.delivered = 0
        self.produced = self.conflated = self.gaps = 0
        self.errors.clear()
        return taken

    def add(self, other: StreamCounts) -> None:
        """Add ``other`` into these counts."""
        self.messages += other.messages
        self.snapshots += other.snapshots
        self.delivered += other.delivered
        self.produced += other.produced
        self.conflated += other.conflated
        self.gaps += other.gaps
        self.errors.update(other.errors)


class StreamChecker:
    """Protocol checks and counts for one connection's messages."""

    def __init__(self, counts: StreamCounts | None = None) -> None:
        self.keys: dict[tuple[str, str], KeyState] = {}
        self.counts = counts if counts is not None else StreamCounts()

    def on_message(self, message: Mapping[str, Any], recv_ns: int) -> int | None:
        """Check one message; return its latency in ns when it is an update with a source time."""
        self.counts.messages += 1
        kind = message.get("type")
        if kind == "update":
            return self._update(message, recv_ns)
        if kind == "snapshot":
            self._snapshot(message)
        elif kind == "subscribed" and message.get("recovered") is True:
            # All-or-nothing recovery after a reconnect: the missed updates
            # follow in order, continuing from the seqs kept from before.
            for key in message.get("keys", ()):
                state = self.keys.setdefault((str(message["channel"]), str(key)), KeyState())
                state.epoch = str(message.get("epoch"))
        elif kind == "error":
            self.counts.errors[f"server:{message.get('code')}"] += 1
        return None

    def forget(self, channel: str, keys: list[str]) -> None:
        """Stop tracking keys the client (or the server) unsubscribed."""
        for key in keys:
            self.keys.pop((channel, key), None)

    def _snapshot(self, message: Mapping[str, Any]) -> None:
        self.counts.snapshots += 1
        key = (str(message.get("channel")), str(message.get("key")))
        state = self.keys.setdefault(key, KeyState())
        state.epoch = str(message.get("epoch"))
        state.last_seq = _int(message.get("seq"))
        if state.last_seq is None:
            self.counts.errors["bad_seq"] += 1
        state.last_ts_event = _int(message.get("ts_event")) or 0

    def _update(self, message: Mapping[str, Any], recv_ns: int) -> int | None:
        counts = self.counts
        counts.delivered += 1
        channel = str(message.get("channel"))
        state = self.keys.get((channel, str(message.get("key"))))
        seq = _int(message.get("seq"))
        if seq is None:
            counts.errors["bad_seq"] += 1
            return None
        if state is None or state.epoch is None:
            counts.errors["update_before_snapshot"] += 1
            return None
        if message.get("epoch") != state.epoch:
            counts.errors["epoch_changed"] += 1
            return None
        first = _int(message.get("seq_from", seq))
        if first is None or first > seq:
            counts.errors["bad_seq"] += 1
            return None
        if state.last_seq is not None:
            expected = state.last_seq + 1
            if first > expected:
                counts.gaps += first - expected
            elif first < expected:
                counts.errors["seq_went_back"] += 1
                return None
            counts.produced += seq - state.last_seq
        else:  # a recovery: the first replayed update starts the count
            counts.produced += seq - first + 1
        counts.conflated += seq - first
        state.last_seq = seq
        if channel == "quotes":
            if not all(name in message for name in QUOTE_FIELDS):
                counts.errors["not_absolute"] += 1
            # Only a new tick has a latency: an update that keeps the last
            # tick's source time (a staleness flip) is not one.
            ts_event = _int(message.get("ts_event"))
            if ts_event is None or ts_event <= state.last_ts_event:
                return None
            state.last_ts_event = ts_event
            return recv_ns - ts_event
        return self._portfolio(message, recv_ns)

    def _portfolio(self, message: Mapping[str, Any], recv_ns: int) -> int | None:
        rows = message.get("positions", [])
        totals = message.get("totals")
        whole_rows = isinstance(rows, list) and all(
            isinstance(row, dict) and all(name in row for name in ROW_FIELDS) for row in rows
        )
        whole_totals = totals is None or (
            isinstance(totals, dict) and all(name in totals for name in TOTALS_FIELDS)
        )
        if not (whole_rows and whole_totals) or (
            not rows and totals is None and "risk" not in message
        ):
            self.counts.errors["not_absolute"] += 1
        as_of = totals.get("as_of") if isinstance(totals, dict) else None
        return recv_ns - as_of if isinstance(as_of, int) and as_of > 0 else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
