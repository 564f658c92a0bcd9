"""Fan-out: per-key sequence numbers, recovery and subscribers.

Sequence numbers are per (channel, key): every update published for a key
increments its seq by one, for all clients alike, so one encoded body serves
every subscriber. ``seq`` restarts at 0 with each ``epoch`` (a new epoch per
server start), so a client that sees the epoch change knows its seqs are void.

Recovery depends on what an update carries. On a *state* channel (quotes,
portfolio) every update carries absolute values, so the key's latest state,
sent as one update with ``seq_from = last_seq + 1``, is a gap-free recovery
from any earlier seq of the epoch: such a topic keeps no history, and the
channel encodes nothing for a key nobody watches. A *lossless* channel
(orders) keeps each key's last ``history`` updates and replays them, all
or nothing.

Subscribing is atomic: the snapshot (or the replay) is built and the client
is registered in one synchronous step, so no update can fall between them.
Publishing never awaits a client: it queues bodies on each subscriber's
outbox and asks the subscriber to flush, which writes only if its socket can
take it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Protocol

from gateway.ws.outbox import Body, Outbox
from gateway.ws.session import Message, Recovery, Subscribe, Unsubscribe, with_request_id

__all__ = ["Channel", "KeyState", "Subscriber", "Topic"]


class Subscriber(Protocol):
    """A connection as the fan-out sees it."""

    @property
    def outbox(self) -> Outbox:
        """Where published messages queue."""
        ...

    def flush(self) -> None:
        """Write queued messages now if the socket can take them; never blocks."""
        ...


class Channel(Protocol):
    """The fan-out side of one channel."""

    @property
    def name(self) -> str:
        """Channel name on the wire."""
        ...

    def subscribe(self, subscriber: Subscriber, command: Subscribe) -> None:
        """Register the subscription and queue its ack and snapshot or replay."""
        ...

    def unsubscribe(self, subscriber: Subscriber, command: Unsubscribe) -> None:
        """Drop the subscriptions and queue the ack."""
        ...

    def remove(self, subscriber: Subscriber) -> None:
        """Drop every subscription of a closed connection."""
        ...


class KeyState:
    """Seq, recovery history (lossless channels only) and subscribers of one key."""

    __slots__ = ("history", "key", "outbox_key", "seq", "subscribers")

    def __init__(self, channel: str, key: str, history: int, seq: int = 0) -> None:
        self.key = key
        self.outbox_key: Hashable = (channel, key)
        self.seq = seq
        self.history: deque[tuple[int, Body]] = deque(maxlen=history)
        self.subscribers: set[Subscriber] = set()

    def replay_after(self, last_seq: int) -> list[Body] | None:
        """Bodies of every update after ``last_seq``, or None if history lacks one."""
        missing = self.seq - last_seq
        if missing < 0:
            return None
        if missing == 0:
            return []
        if len(self.history) < missing:
            return None
        replay = list(self.history)[-missing:]
        # The history holds consecutive seqs, so a full slice ends at self.seq.
        assert replay[0][0] == last_seq + 1
        return [body for _, body in replay]


class Topic:
    """Every key of one channel, with the subscribe, publish and recovery logic.

    ``snapshot`` builds the snapshot message of a key (without seq, epoch and
    type, which the topic adds); ``encode`` turns a message into a body (the
    shell's ``encoding.encode_body``).

    ``history`` is None for a state channel: a recovery in the epoch gets,
    for each key that moved since ``last_seq``, one ``update`` holding the
    snapshot's fields, with ``seq`` the key's current seq and ``seq_from``
    ``last_seq + 1``. A lossless channel passes the number of updates each
    key keeps (``KeyState.history``, which it appends to as it publishes),
    and a recovery replays them if every missed one is there.

    By default a key's state lives for ever. A channel with many keys, few of
    them watched (accounts), passes ``initial_seq`` and ``on_idle``: a key's
    state then exists only while it has subscribers, starts at the seq the
    channel kept for it, and is handed back to ``on_idle`` (with its seq) when
    the last subscriber leaves. Such a channel must be a state channel: the
    updates of an unwatched key are never recorded.
    """

    def __init__(
        self,
        channel: str,
        *,
        epoch: str,
        snapshot: Callable[[KeyState], Message],
        encode: Callable[[Message], bytes],
        history: int | None = None,
        initial_seq: Callable[[str], int] | None = None,
        on_idle: Callable[[KeyState], None] | None = None,
    ) -> None:
        self.channel = channel
        self.epoch = epoch
        self._history = history
        self._snapshot = snapshot
        self._encode = encode
        self._initial_seq = initial_seq
        self._on_idle = on_idle
        assert history is None or on_idle is None  # history needs keys that live for ever
        self._states: dict[str, KeyState] = {}
        self._keys_of: dict[Subscriber, set[str]] = {}

    def state(self, key: str) -> KeyState:
        """Return the state of ``key``, creating it on first use."""
        st = self._states.get(key)
        if st is None:
            seq = self._initial_seq(key) if self._initial_seq is not None else 0
            st = self._states[key] = KeyState(self.channel, key, self._history or 0, seq)
        return st

    def live_state(self, key: str) -> KeyState | None:
        """The state of ``key`` if it exists now."""
        return self._states.get(key)

    @staticmethod
    def publish(st: KeyState, body: Body) -> None:
        """Queue a state update encoded with seq ``st.seq + 1`` on the subscribers' state lane.

        Nothing is recorded: a state channel recovers from the latest state.
        The caller flushes the subscribers once per batch, so each gets one frame.
        """
        seq = st.seq = st.seq + 1
        for subscriber in st.subscribers:
            subscriber.outbox.push_state(st.outbox_key, seq, body)

    def subscribe(self, subscriber: Subscriber, command: Subscribe) -> None:
        """Register and queue ``subscribed`` plus a replay or snapshots, atomically."""
        states = [self.state(key) for key in command.keys]
        replays = self._replays(states, command.recovery)
        ack: Message = {
            "type": "subscribed",
            "channel": self.channel,
            "keys": list(command.keys),
            "epoch": self.epoch,
        }
        if command.recovery is not None:
            ack["recovered"] = replays is not None
        outbox = subscriber.outbox
        outbox.push_control(self._encode(with_request_id(ack, command.request_id)))
        outbox.drop_state(st.outbox_key for st in states)
        if command.max_rate_ms:
            gap_ns = command.max_rate_ms * 1_000_000
            for st in states:
                outbox.set_min_gap(st.outbox_key, gap_ns)
        for i, st in enumerate(states):
            if replays is not None:
                for body in replays[i]:
                    outbox.push_control(body)
            else:
                outbox.push_control(self._snapshot_body(st, command.recovery is not None))
            st.subscribers.add(subscriber)
        self._keys_of.setdefault(subscriber, set()).update(command.keys)
        subscriber.flush()

    def unsubscribe(self, subscriber: Subscriber, command: Unsubscribe) -> None:
        """Drop subscriptions to ``command.keys`` and queue ``unsubscribed``."""
        self._drop(subscriber, command.keys)
        ack: Message = {"type": "unsubscribed", "channel": self.channel, "keys": list(command.keys)}
        subscriber.outbox.push_control(self._encode(with_request_id(ack, command.request_id)))
        subscriber.flush()

    def remove(self, subscriber: Subscriber) -> None:
        """Drop every subscription of ``subscriber``."""
        keys = self._keys_of.pop(subscriber, set())
        for key in keys:
            st = self._states[key]
            st.subscribers.discard(subscriber)
            self._release_if_idle(st)

    def key_count(self) -> int:
        """Keys with a live state (on a channel with ``on_idle``: the watched ones)."""
        return len(self._states)

    def subscriber_count(self) -> int:
        """Connections with at least one subscription on this channel."""
        return len(self._keys_of)

    def _drop(self, subscriber: Subscriber, keys: Iterable[str]) -> None:
        mine = self._keys_of.get(subscriber)
        if mine is None:
            return
        dropped = [self._states[k] for k in keys if k in mine]
        for st in dropped:
            st.subscribers.discard(subscriber)
            mine.discard(st.key)
        subscriber.outbox.drop_state(st.outbox_key for st in dropped)
        if not mine:
            del self._keys_of[subscriber]
        for st in dropped:
            self._release_if_idle(st)

    def _release_if_idle(self, st: KeyState) -> None:
        if self._on_idle is not None and not st.subscribers:
            del self._states[st.key]
            self._on_idle(st)

    def _replays(
        self, states: Sequence[KeyState], recovery: Recovery | None
    ) -> list[list[Body]] | None:
        # All keys recover or none does: a partial recovery is never sent.
        if recovery is None or recovery.epoch != self.epoch:
            return None
        replays: list[list[Body]] = []
        if self._history is None:
            for st in states:
                last_seq = recovery.last_seq[st.key]
                if last_seq > st.seq:
                    return None
                replays.append([] if last_seq == st.seq else [self._latest_body(st, last_seq)])
            return replays
        for st in states:
            replay = st.replay_after(recovery.last_seq[st.key])
            if replay is None:
                return None
            replays.append(replay)
        return replays

    def _latest_body(self, st: KeyState, last_seq: int) -> bytes:
        # The key's state as one update standing for every seq after last_seq.
        message: Message = {
            "type": "update",
            "channel": self.channel,
            "key": st.key,
            "seq": st.seq,
            "epoch": self.epoch,
        }
        if st.seq != last_seq + 1:
            message["seq_from"] = last_seq + 1
        message.update(self._snapshot(st))
        return self._encode(message)

    def _snapshot_body(self, st: KeyState, is_recovery: bool) -> bytes:
        message: Message = {
            "type": "snapshot",
            "channel": self.channel,
            "key": st.key,
            "seq": st.seq,
            "epoch": self.epoch,
        }
        if is_recovery:
            message["recovered"] = False
        message.update(self._snapshot(st))
        return self._encode(message)
