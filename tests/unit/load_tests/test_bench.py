"""The benchmark's arithmetic: medians and ranges over runs, CPU per delivered update."""

from __future__ import annotations

import os

from load_tests.bench import _cpu_per_million, _cpu_s, _median, _range_cell, _summary, _worst
from load_tests.checker import StreamCounts
from load_tests.stats import Sample, Totals


def test_summary_gives_median_and_range_of_each_figure():
    runs = [
        {"p99_ms": 30.0, "gaps": 0, "codes": {"4008": 1}},
        {"p99_ms": 10.0, "gaps": 2, "codes": {}},
        {"p99_ms": 20.0, "gaps": 0, "codes": {}},
    ]

    summary = _summary(runs)

    assert summary["p99_ms"] == {"median": 20.0, "min": 10.0, "max": 30.0}
    assert summary["gaps"] == {"median": 0, "min": 0, "max": 2}
    assert summary["codes"] == {"4008": 1}  # not a number: the first run's
    assert summary["runs"] == runs
    assert (_median(summary, "p99_ms"), _worst(summary, "p99_ms")) == (20.0, 30.0)


def test_a_figure_some_runs_lack_counts_them_and_has_no_worst_value():
    summary = _summary(
        [{"all_connected_s": 2.5}, {"all_connected_s": None}, {"all_connected_s": 3.5}]
    )

    assert summary["all_connected_s"] == {"median": 3.0, "min": 2.5, "max": 3.5, "missing": 1}
    assert _worst(summary, "all_connected_s") is None
    assert _range_cell(summary["all_connected_s"]) == "3.0 [2.5-3.5] (1 none)"


def test_cpu_per_million_delivered_updates():
    assert _cpu_per_million(7.5, 2_500_000) == 3.0
    assert _cpu_per_million(None, 2_500_000) is None
    assert _cpu_per_million(1.0, 0) is None


def test_cpu_seconds_of_a_process_come_from_proc():
    spent = _cpu_s(os.getpid())

    assert spent is not None
    assert spent > 0
    assert _cpu_s(2**22 + 1) is None  # above the kernel's pid limit: no such process


def test_totals_keep_the_first_attempt_the_latest_first_connect_and_the_slowest():
    totals = Totals()

    for first_connects, last, first_attempt, slowest in (
        (3, 1.25, 0.5, 0.25),
        (0, 0.0, None, 0.0),
        (2, 0.75, 0.25, 0.5),
    ):
        totals.add(
            Sample(
                worker=0,
                index=1,
                t_end=1.0,
                connected=0,
                counts=StreamCounts(),
                first_connects=first_connects,
                last_first_connect_s=last,
                first_attempt_s=first_attempt,
                max_connect_s=slowest,
            )
        )

    assert totals.first_connects == 5
    assert (totals.first_attempt_s, totals.last_first_connect_s) == (0.25, 1.25)
    assert totals.max_connect_s == 0.5
