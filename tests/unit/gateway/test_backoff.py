"""Exponential backoff with equal jitter."""

from __future__ import annotations

import random

import pytest

from gateway.backoff import Backoff


class HighestRandom(random.Random):
    """A Random whose uniform(a, b) always returns b: each delay is its cap."""

    def uniform(self, a: float, b: float) -> float:
        return b


class LowestRandom(random.Random):
    """A Random whose uniform(a, b) always returns a: each delay is half its cap."""

    def uniform(self, a: float, b: float) -> float:
        return a


def test_delays_stay_within_half_cap_and_cap_as_the_cap_doubles_to_the_max():
    backoff = Backoff(1.0, 8.0, rng=random.Random(1234))
    caps = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]

    delays = [backoff.next_delay_s() for _ in caps]

    for delay, cap in zip(delays, caps, strict=True):
        assert cap / 2 <= delay <= cap


def test_cap_doubles_from_initial_up_to_max():
    backoff = Backoff(0.25, 3.0, rng=HighestRandom())

    delays = [backoff.next_delay_s() for _ in range(6)]

    assert delays == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]


def test_no_delay_is_shorter_than_half_its_cap():
    backoff = Backoff(1.0, 4.0, rng=LowestRandom())

    delays = [backoff.next_delay_s() for _ in range(4)]

    assert delays == [0.5, 1.0, 2.0, 2.0]


def test_same_seed_gives_the_same_delays():
    first = Backoff(1.0, 30.0, rng=random.Random(7))
    second = Backoff(1.0, 30.0, rng=random.Random(7))

    assert [first.next_delay_s() for _ in range(5)] == [second.next_delay_s() for _ in range(5)]


def test_attempts_count_each_delay():
    backoff = Backoff(1.0, 8.0, rng=random.Random(1))

    for _ in range(3):
        backoff.next_delay_s()

    assert backoff.attempts == 3


def test_reset_starts_over_from_the_initial_cap():
    backoff = Backoff(1.0, 8.0, rng=HighestRandom())
    for _ in range(4):
        backoff.next_delay_s()

    backoff.reset()

    assert backoff.attempts == 0
    assert backoff.next_delay_s() == 1.0


@pytest.mark.parametrize(("initial_s", "max_s"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_initial_must_be_positive_and_not_above_max(initial_s, max_s):
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(initial_s, max_s)
