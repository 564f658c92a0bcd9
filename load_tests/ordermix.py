"""An order storm's plan and its tally: the send schedule, the duplicate mix and the figures.

Pure: no I/O and no clock. ``build_schedule`` fixes, before the run, when
each request is sent and which idempotency key it carries, so the sender is
**open-loop**: a request goes out at its time whether or not earlier ones
answered, and an overloaded server shows up as latency rather than as a
slower sender (latency is measured from the scheduled time, so the
sender's own lateness counts against the server, never for it).

A share of the requests (``duplicate_share``, 30% by default) repeats the
key and the body of an earlier request, as a client's retry does: the
server must answer them from its idempotency record (a replay) without
submitting twice. A duplicate repeats a key first sent at least
``min_duplicate_age_s`` earlier, so most originals have been answered by
then; one still in flight answers ``409`` and is counted as
``in_progress``.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "SYMBOLS",
    "OrderTally",
    "Outcome",
    "Schedule",
    "Spread",
    "build_schedule",
    "classify",
    "order_body",
    "spread",
    "sustainable_rate",
]

NS_PER_S: Final = 1_000_000_000

# Liquid USD equities of the default instrument master: every order prices in USD.
SYMBOLS: Final = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "JPM", "V")


@dataclass(frozen=True, slots=True)
class Schedule:
    """The requests of a run, in send order.

    ``send_at_ns[i]`` is when request i goes out, in ns from the run's
    start; ``key_index[i]`` names its idempotency key (and its body);
    ``is_duplicate[i]`` says it repeats an earlier request's key.
    ``rate_per_s`` and ``duration_s`` are what it was built for.
    """

    rate_per_s: float
    duration_s: float
    send_at_ns: tuple[int, ...]
    key_index: tuple[int, ...]
    is_duplicate: tuple[bool, ...]

    def __len__(self) -> int:
        return len(self.send_at_ns)

    @property
    def fresh(self) -> int:
        """Requests with a key of their own."""
        return len(self.send_at_ns) - sum(self.is_duplicate)


def build_schedule(
    rate_per_s: float,
    duration_s: float,
    *,
    duplicate_share: float = 0.3,
    min_duplicate_age_s: float = 0.2,
    seed: int = 1,
) -> Schedule:
    """Requests at a constant ``rate_per_s`` for ``duration_s``, a seeded share repeating keys.

    Request i goes out at ``i / rate_per_s``. Each is a duplicate with
    probability ``duplicate_share`` when a key at least
    ``min_duplicate_age_s`` old exists (so the first requests are all
    fresh); a duplicate repeats one of those keys, drawn uniformly. Fresh
    keys are numbered 0, 1, 2, ... in send order.
    """
    if not rate_per_s > 0:
        raise ValueError(f"rate_per_s must be positive, was {rate_per_s}")
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive, was {duration_s}")
    if not 0 <= duplicate_share < 1:
        raise ValueError(f"duplicate_share must be within [0, 1), was {duplicate_share}")
    if min_duplicate_age_s < 0:
        raise ValueError(f"min_duplicate_age_s must not be negative, was {min_duplicate_age_s}")
    rng = random.Random(seed)
    count = int(rate_per_s * duration_s)
    age_ns = int(min_duplicate_age_s * NS_PER_S)
    send_at: list[int] = []
    keys: list[int] = []
    duplicates: list[bool] = []
    fresh_sent_at: list[int] = []  # send time of fresh key k, ascending
    eligible = 0  # fresh keys at least age_ns old at the current send time
    for i in range(count):
        at = int(i * NS_PER_S / rate_per_s)
        while eligible < len(fresh_sent_at) and fresh_sent_at[eligible] <= at - age_ns:
            eligible += 1
        if eligible and rng.random() < duplicate_share:
            keys.append(rng.randrange(eligible))
            duplicates.append(True)
        else:
            keys.append(len(fresh_sent_at))
            fresh_sent_at.append(at)
            duplicates.append(False)
        send_at.append(at)
    return Schedule(rate_per_s, duration_s, tuple(send_at), tuple(keys), tuple(duplicates))


def order_body(key_index: int, accounts: Sequence[str]) -> bytes:
    """The JSON body of the order of fresh key ``key_index``: one lot at market.

    Deterministic in the key, so a duplicate sends the very body of its
    original (the same fingerprint: a replay, not ``idempotency_key_reused``).
    Accounts take turns; each account alternates buy and sell so its
    positions and cash stay near where they started however long the run.
    """
    if not accounts:
        raise ValueError("accounts must not be empty")
    turn, slot = divmod(key_index, len(accounts))
    side = "buy" if turn % 2 == 0 else "sell"
    symbol = SYMBOLS[slot % len(SYMBOLS)]
    return (
        b'{"account_id":"%s","symbol":"%s","side":"%s","quantity":"1",'
        b'"type":"market","time_in_force":"ioc"}'
        % (accounts[slot].encode(), symbol.encode(), side.encode())
    )


class Outcome:
    """How an answer is counted (the keys of ``OrderTally.outcomes``)."""

    ACCEPTED: Final = "accepted"  # 202, a new order
    REPLAYED: Final = "replayed"  # an answer from the idempotency record
    IN_PROGRESS: Final = "in_progress"  # 409: the key's first attempt still runs
    RATE_LIMITED: Final = "rate_limited"  # 429
    REFUSED: Final = "refused"  # any other 4xx: the order was refused
    UNAVAILABLE: Final = "unavailable"  # 5xx
    FAILED: Final = "failed"  # no answer: the connection failed or timed out


def classify(status: int, *, is_replayed: bool) -> str:
    """The outcome of an answer with ``status``; ``is_replayed`` from ``Idempotent-Replayed``."""
    if is_replayed:
        return Outcome.REPLAYED
    if status == 202:
        return Outcome.ACCEPTED
    if status == 409:
        return Outcome.IN_PROGRESS
    if status == 429:
        return Outcome.RATE_LIMITED
    if 400 <= status < 500:
        return Outcome.REFUSED
    return Outcome.UNAVAILABLE


@dataclass(slots=True)
class OrderTally:
    """The outcomes of a run's requests, and the problem codes of the refusals."""

    outcomes: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: str, code: str | None = None) -> None:
        """Count one answer (``code``: the problem's ``code`` of an error answer)."""
        self.outcomes[outcome] += 1
        if code is not None:
            self.codes[code] += 1

    @property
    def answered(self) -> int:
        """Requests that got an HTTP answer."""
        return sum(n for outcome, n in self.outcomes.items() if outcome != Outcome.FAILED)

    @property
    def errors(self) -> int:
        """Answers that are neither an acceptance, a replay nor a 409 of a duplicate in flight."""
        good = (Outcome.ACCEPTED, Outcome.REPLAYED, Outcome.IN_PROGRESS)
        return sum(n for outcome, n in self.outcomes.items() if outcome not in good)

    def per_s(self, outcome: str, duration_s: float) -> float:
        """``outcome`` answers per second of ``duration_s``."""
        return round(self.outcomes[outcome] / duration_s, 1) if duration_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Spread:
    """The median and range of repeated runs' values (None: no run had one)."""

    median: float | None
    low: float | None
    high: float | None
    runs: int

    def as_dict(self) -> dict[str, float | int | None]:
        """The JSON form."""
        return {"median": self.median, "min": self.low, "max": self.high, "runs": self.runs}


def spread(values: Sequence[float | None]) -> Spread:
    """Median, min and max of the values that are not None."""
    present = [v for v in values if v is not None]
    if not present:
        return Spread(None, None, None, len(values))
    return Spread(
        round(statistics.median(present), 3),
        round(min(present), 3),
        round(max(present), 3),
        len(values),
    )


def sustainable_rate(
    steps: Sequence[tuple[float, float | None, bool]], p99_limit_ms: float
) -> float | None:
    """The highest offered rate of an ascending ladder whose p99 holds, before the first miss.

    ``steps`` are ``(offered_rate, p99_ms, is_clean)`` in ascending rate;
    a step holds when its p99 is known, at most ``p99_limit_ms``, and the
    step is clean (no errors). The search stops at the first step that does
    not hold: a rate above a miss is not sustainable even if it happened to
    pass.
    """
    best = None
    for rate, p99_ms, is_clean in steps:
        if p99_ms is None or p99_ms > p99_limit_ms or not is_clean:
            break
        best = rate
    return best
