"""The churn bench's arithmetic and report (its run is tests/e2e/test_load_tool.py's)."""

from __future__ import annotations

import os
import resource

import pytest

from load_tests.churn import TARGET_IDLE_RSS_PCT, format_churn, growth_pct, rss_mb


def test_growth_is_the_change_against_the_start_in_percent():
    assert growth_pct(100.0, 120.0) == pytest.approx(20.0)
    assert growth_pct(200.0, 150.0) == pytest.approx(-25.0)


def test_rss_of_this_process_is_its_resident_set_in_megabytes():
    # The current resident set never exceeds the peak the kernel reports (KiB on Linux).
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ballast = bytearray(64 * 1024 * 1024)  # 64 MB, touched: resident now
    ballast[::4096] = b"x" * len(ballast[::4096])
    with_ballast = rss_mb(os.getpid())
    assert with_ballast <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + 1
    assert with_ballast >= 64
    del ballast
    assert peak_mb > 0


def result(after_churn_pct: float) -> dict[str, object]:
    cell = {"median": after_churn_pct, "min": after_churn_pct, "max": after_churn_pct}
    return {
        "cycles": 1000,
        "watchers": 5,
        "runs": [{}],
        "summary": {"after_churn_pct": cell},
        "target_idle_rss_pct": TARGET_IDLE_RSS_PCT,
        "target_met_every_run": after_churn_pct <= TARGET_IDLE_RSS_PCT,
        "load_average": [1.0, 2.0],
    }


def test_the_report_gives_each_figure_as_median_and_range_and_the_verdict():
    text = format_churn(result(12.5))

    assert "after_churn_pct" in text
    assert "12.5 [12.5-12.5]" in text
    assert text.endswith("in every run: met")
    assert format_churn(result(35.0)).endswith("in every run: MISSED")
