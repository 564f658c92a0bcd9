"""When the trading day rolls: the next HH:MM UTC after now."""

from __future__ import annotations

import calendar
import datetime as dt

import pytest

from gateway.accounts.dayroll import day_start_ns, seconds_until_utc
from tests.builders import NS


def at(hour: int, minute: int, second: float = 0.0) -> int:
    midnight = calendar.timegm(dt.date(2026, 11, 21).timetuple())
    return int((midnight + hour * 3600 + minute * 60 + second) * NS)


@pytest.mark.parametrize(
    ("now", "roll_minute", "expected_s"),
    [
        (at(21, 0), 22 * 60, 3600.0),  # later today
        (at(22, 30), 22 * 60, 23.5 * 3600),  # passed today: tomorrow
        (at(0, 0), 0, 86_400.0),  # exactly now: the next one, a day away
        (at(23, 59, 30), 0, 30.0),  # just before midnight
    ],
)
def test_seconds_until_the_next_roll(now: int, roll_minute: int, expected_s: float) -> None:
    assert seconds_until_utc(roll_minute, now) == pytest.approx(expected_s, abs=1e-6)


@pytest.mark.parametrize(
    ("now", "roll_minute", "expected"),
    [
        (at(23, 0), 22 * 60, at(22, 0)),  # rolled an hour ago
        (at(21, 0), 22 * 60, at(22, 0) - 86_400 * NS),  # not yet today: yesterday's roll
        (at(22, 0), 22 * 60, at(22, 0)),  # exactly at the roll: it starts now
    ],
)
def test_the_day_started_at_the_last_roll(now: int, roll_minute: int, expected: int) -> None:
    assert day_start_ns(roll_minute, now) == expected
