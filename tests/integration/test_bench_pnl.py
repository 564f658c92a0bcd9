"""``python -m bench pnl`` at a small scale: its baseline does the engine's job, its JSON holds.

The benchmark's speed-up is only meaningful if the scalar loop computes what
the engine computes, so the loop is checked against the engine's totals on
every position of a small book. Figures are not asserted (no timing in
tests); the JSON's shape and its counts are.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from bench.scalar import ScalarInputs, scalar_revalue
from bench.universe import build_universe
from portfolio.engine import TOTAL_FIELDS, PortfolioEngine

ROOT = Path(__file__).resolve().parents[2]
# The scalar loop's sums, in its order, and the engine's names for them.
SCALAR_SUMS = (
    "market_value",
    "unrealised_pnl",
    "day_pnl",
    "gross_exposure",
    "net_exposure",
    "gamma",
    "vega",
    "theta",
    "rho",
)


def test_scalar_baseline_sums_equal_the_engine_totals() -> None:
    u = build_universe(accounts=150, instruments=120, positions_per_account=8, seed=3)
    engine = PortfolioEngine(
        u.prices, u.positions, u.fx, u.terms, max_leverage=2.0, now_ns=u.now_ns
    )
    every = list(range(u.positions.size_p))

    scalar = scalar_revalue(ScalarInputs(u, every))

    accounts = np.array(sorted(scalar), dtype=np.int64)
    totals = engine.totals(accounts)
    assert int(u.terms.is_option[u.positions.pos_instrument].sum()) > 0  # options are covered
    for i, a in enumerate(accounts.tolist()):
        for j, name in enumerate(SCALAR_SUMS):
            expected = scalar[a][j]
            got = totals.values[i, TOTAL_FIELDS.index(name)]
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-6), (a, name)


def test_bench_pnl_json_reports_every_figure_at_a_small_scale() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "pnl",
            "--accounts=300",
            "--instruments=200",
            "--positions-per-account=6",
            "--repeats=1",
            "--scalar-sample=500",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=300,
    )

    result = orjson.loads(out.stdout)
    assert result["accounts"] == 300
    assert result["instruments"] == 200
    assert 0 < result["option_positions"] < result["positions"]
    assert set(result["incremental_ms"]) == {"0.1%", "1%", "10%"}
    touched = result["incremental_positions"]
    assert touched["0.1%"] <= touched["1%"] <= touched["10%"] <= result["positions"]
    for key in ("full_reval_ms", "var_ms", "peak_rss_mb", "speedup_vs_scalar"):
        assert math.isfinite(result[key]), key
        assert result[key] > 0, key
    assert "500" in result["scalar_method"]
