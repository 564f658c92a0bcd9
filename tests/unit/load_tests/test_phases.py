"""Phases of a run: each interval counted in exactly one phase."""

from __future__ import annotations

from pathlib import Path

from load_tests.checker import StreamCounts
from load_tests.run import RunConfig, _Aggregate, _phases, phase_of
from load_tests.stats import Totals

# A 20 s spike run with the default window: a third in, a third long.
WINDOW = (20 / 3, 40 / 3)
BOUNDS = [("baseline", 0.0, WINDOW[0]), ("spike", *WINDOW), ("recovery", WINDOW[1], 20.0)]


def spike_config(duration_s: float = 20.0) -> RunConfig:
    return RunConfig(
        scenario="spike",
        url="ws://127.0.0.1:1/ws",
        clients=10,
        symbols_per_client=5,
        duration_s=duration_s,
        out=Path("unused"),
    )


def test_the_default_spike_window_of_a_20_s_run_is_a_third_in_and_a_third_long():
    start, end = spike_config().spike_window() or (0.0, 0.0)

    assert (start, end) == WINDOW


def test_each_interval_falls_in_exactly_one_phase():
    # By hand: interval k covers (k-1, k]; its middle k - 0.5 is in the
    # baseline while below 6.67 (k = 1..7), in the spike below 13.33
    # (k = 8..13), and in the recovery after (k = 14..20).
    phases = [phase_of(float(k), 1.0, BOUNDS) for k in range(1, 21)]

    assert phases == ["baseline"] * 7 + ["spike"] * 6 + ["recovery"] * 7


def test_phase_rates_count_no_interval_twice():
    config = spike_config()
    aggregate = _Aggregate(workers=1)
    for k in range(1, 22):  # 21: the closing interval, after the run
        aggregate.intervals[k] = Totals(counts=StreamCounts(delivered=100))

    phases = _phases(config, aggregate, config.spike_window())

    # 100 messages in each one-second interval: 100/s in every phase, and the
    # phases' deliveries add up to the run's 2,000, not more.
    assert [(p.name, p.delivered_per_s) for p in phases] == [
        ("baseline", 100.0),
        ("spike", 100.0),
        ("recovery", 100.0),
    ]
