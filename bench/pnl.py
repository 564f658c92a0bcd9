"""``python -m bench pnl``: the portfolio engine at 100,000 accounts.

Builds N accounts x M instruments x about P positions (some options) and
reports, in one run:

- full revaluation time (median of repeats);
- incremental recompute time for batches touching 0.1%, 1% and 10% of the
  instruments (median of repeats; each batch moves random instruments; the
  options on them are revalued too);
- VaR time for all accounts (exposures, parametric, historical, stress), and
  the event-loop lag while it runs in a worker thread;
- the event-loop side of one risk cadence tick: the intraday EWMA sample,
  repricing every option for time, and copying what the worker reads (the
  loop-stall budget of the risk cadence);
- peak memory (max RSS);
- the speed-up over the scalar loop, timed on a sample and extrapolated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.scalar import ScalarInputs, sample_positions, scalar_revalue
from bench.universe import Universe, build_universe
from portfolio.engine import PortfolioEngine
from portfolio.risk import historical_var, option_scenario_pnl, parametric_var
from portfolio.riskmodel import RiskModel
from portfolio.riskrun import RiskUniverse, capture, run_risk, take_snapshot
from portfolio.stress import DEFAULT_SCENARIOS, stress_pnl
from portfolio.valuation import NS_PER_YEAR
from pricing.instruments import InstrumentType
from pricing.pricebook import TickBatch

__all__ = ["main"]

_FRACTIONS = (("0.1%", 0.001), ("1%", 0.01), ("10%", 0.10))
_CONFIDENCES = (0.95, 0.99)


def _median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000.0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _incremental(
    u: Universe, engine: PortfolioEngine, fraction: float, repeats: int, rng: np.random.Generator
) -> tuple[float, int]:
    plain = np.flatnonzero(~u.master.mask_of(InstrumentType.OPTION))
    k = max(1, round(len(u.master) * fraction))
    times, touched = [], []
    for r in range(repeats):
        chosen = np.sort(rng.choice(plain, size=k, replace=False))
        mid = u.prices.mid()[chosen] * np.exp(rng.normal(0.0, 0.001, k))
        ts = np.full(k, u.now_ns + r + 1)
        result = u.prices.apply(
            TickBatch.from_columns(chosen, mid * 0.9999, mid * 1.0001, mid, np.ones(k), ts, ts)
        )
        started = time.perf_counter()
        change = engine.on_prices_changed(result.changed_ix, u.now_ns)
        times.append(time.perf_counter() - started)
        touched.append(change.positions.size)
    return _median_ms(times), int(statistics.median(touched))


def _train(model: RiskModel, days: int, samples: int, rng: np.random.Generator) -> None:
    # Factor-structured returns: a market factor, a factor per group, noise;
    # a daily history seeds the daily model, per-second ones the intraday one.
    groups = model.daily.group_of
    k = int(groups.max()) + 1

    def returns(n: int, scale: float) -> np.ndarray:
        market = rng.normal(0.0, 0.01 * scale, (n, 1))
        sector = rng.normal(0.0, 0.008 * scale, (n, k))
        return market + sector[:, groups] + rng.normal(0.0, 0.012 * scale, (n, groups.size))

    model.seed(np.exp(np.cumsum(np.vstack([np.zeros(groups.size), returns(days, 1.0)]), axis=0)))
    for r in returns(samples, 1.0 / 150.0):
        model.intraday.update(r)


async def _risk_with_lag(
    fn: Callable[[], object], repeats: int
) -> tuple[list[float], float, float]:
    # Runs fn in a worker thread ``repeats`` times while sampling how late the
    # loop wakes up; returns the run times and the max and p99 lag.
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    done = asyncio.Event()

    async def monitor() -> None:
        while not done.is_set():
            expected = loop.time() + 0.005
            await asyncio.sleep(0.005)
            lags.append(max(0.0, loop.time() - expected))

    task = asyncio.create_task(monitor())
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await asyncio.to_thread(fn)
        times.append(time.perf_counter() - started)
    done.set()
    await task
    return times, max(lags, default=0.0), float(np.percentile(lags, 99)) if lags else 0.0


def _timed_ms(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    u = build_universe(
        accounts=args.accounts,
        instruments=args.instruments,
        positions_per_account=args.positions_per_account,
        seed=args.seed,
    )
    engine = PortfolioEngine(
        u.prices, u.positions, u.fx, u.terms, max_leverage=2.0, now_ns=u.now_ns
    )
    build_s = time.perf_counter() - started
    p = u.positions.size_p
    options = int(u.terms.is_option[u.positions.pos_instrument].sum())

    full = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        engine.revalue_all(u.now_ns)
        full.append(time.perf_counter() - t)
    full_ms = _median_ms(full)

    incremental = {}
    touched = {}
    for label, fraction in _FRACTIONS:
        incremental[label], touched[label] = _incremental(u, engine, fraction, args.repeats, rng)

    universe = RiskUniverse(u.master, u.terms, u.fx.currencies)
    model = RiskModel(universe.group_of, lam=0.94, window=250, min_days=20, intraday_half_life=20.0)
    _train(model, 500, 60, rng)
    every = np.arange(u.positions.size_n, dtype=np.int64)
    # The event loop's share of one risk cadence tick.
    assert engine.usd_per is not None  # set by the first revaluation
    levels = universe.levels(engine.marks.mark, engine.usd_per)
    loop_side = {
        "sample_ms": _timed_ms(lambda: model.sample(levels)),
        "reprice_options_ms": _timed_ms(lambda: engine.revalue_options(u.now_ns)),
        "copy_ms": _timed_ms(lambda: (capture(engine, every, u.now_ns), model.intraday.copy())),
    }
    state = capture(engine, every, u.now_ns)
    snapshot = take_snapshot(state, u.terms, universe)  # warm-up: first-touch page faults
    parts = {"exposures_ms": _timed_ms(lambda: take_snapshot(state, u.terms, universe))}
    moments = model.daily.moments()
    parts["parametric_ms"] = _timed_ms(
        lambda: parametric_var(
            snapshot.exposures, moments, confidences=_CONFIDENCES, horizon_scale=1.0
        )
    )
    history = model.daily.scenarios()
    held = snapshot.options.instrument

    def historical() -> None:
        option_pnl = option_scenario_pnl(
            snapshot.option_spot,
            u.terms.strike[held],
            (u.terms.expiry_ns[held] - u.now_ns) / NS_PER_YEAR,
            u.terms.implied_vol[held],
            u.terms.rate[held],
            u.terms.dividend_yield[held],
            u.terms.is_call[held],
            history[:, universe.series_of_instrument[held]],
        )
        historical_var(
            snapshot.linear,
            history,
            confidences=_CONFIDENCES,
            return_scale=1.0,
            options=snapshot.options,
            option_pnl=option_pnl,
        )

    parts["historical_ms"] = _timed_ms(historical)
    parts["stress_ms"] = _timed_ms(lambda: stress_pnl(snapshot.stress, u.terms, DEFAULT_SCENARIOS))

    def whole_run() -> None:
        run_risk(
            take_snapshot(state, u.terms, universe),
            model.daily,
            model.intraday,
            u.terms,
            DEFAULT_SCENARIOS,
            confidences=_CONFIDENCES,
            horizon_days=1.0,
            intraday_interval_s=1.0,
            universe=universe,
        )

    whole_run()  # the first run also pays for first-touch page faults
    var_times, lag_max_s, lag_p99_s = asyncio.run(_risk_with_lag(whole_run, args.repeats))

    sample = sample_positions(u, args.scalar_sample, rng)
    inputs = ScalarInputs(u, sample)
    t = time.perf_counter()
    scalar_revalue(inputs)
    scalar_s = time.perf_counter() - t
    scalar_full_ms = scalar_s / len(sample) * p * 1000
    return {
        "accounts": u.positions.size_n,
        "instruments": len(u.master),
        "positions": p,
        "option_positions": options,
        "build_s": round(build_s, 1),
        "full_reval_ms": round(full_ms, 1),
        "incremental_ms": {k: round(v, 2) for k, v in incremental.items()},
        "incremental_positions": touched,
        "incremental_vs_full": {k: round(full_ms / v, 1) for k, v in incremental.items()},
        "var_ms": round(_median_ms(var_times), 1),
        "var_parts_ms": {k: round(v, 1) for k, v in parts.items()},
        "risk_loop_side_ms": {k: round(v, 1) for k, v in loop_side.items()},
        "risk_thread_loop_lag_ms": {
            "max": round(lag_max_s * 1000, 2),
            "p99": round(lag_p99_s * 1000, 2),
        },
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "scalar_full_reval_ms_extrapolated": round(scalar_full_ms, 1),
        "speedup_vs_scalar": round(scalar_full_ms / full_ms, 1),
        "scalar_method": (
            f"the scalar loop (bench/scalar.py), inputs prepared beforehand, timed on a "
            f"uniform random sample of {len(sample)} positions ({scalar_s:.3f} s) and "
            f"scaled linearly to {p} positions"
        ),
    }


def report(result: dict[str, Any]) -> str:
    inc = result["incremental_ms"]
    ratio = result["incremental_vs_full"]
    lines = [
        f"book: {result['accounts']:,} accounts x {result['instruments']:,} instruments x "
        f"{result['positions']:,} positions ({result['option_positions']:,} options), "
        f"built in {result['build_s']} s",
        f"full revaluation (median): {result['full_reval_ms']} ms",
    ]
    lines += [
        f"incremental, {label} of instruments: {inc[label]} ms "
        f"({result['incremental_positions'][label]:,} positions; "
        f"{ratio[label]}x cheaper than full)"
        for label in inc
    ]
    parts = result["var_parts_ms"]
    lag = result["risk_thread_loop_lag_ms"]
    loop = result["risk_loop_side_ms"]
    lines += [
        f"VaR + stress for all accounts (median): {result['var_ms']} ms in a worker thread "
        f"(exposures {parts['exposures_ms']}, parametric {parts['parametric_ms']}, "
        f"historical {parts['historical_ms']}, stress {parts['stress_ms']} ms)",
        f"event-loop lag while it ran: max {lag['max']} ms, p99 {lag['p99']} ms",
        f"risk cadence on the loop: intraday sample {loop['sample_ms']} ms, options repriced "
        f"{loop['reprice_options_ms']} ms, copies for the worker {loop['copy_ms']} ms",
        f"peak RSS: {result['peak_rss_mb']} MB",
        f"scalar loop, extrapolated: {result['scalar_full_reval_ms_extrapolated']} ms -> "
        f"speed-up {result['speedup_vs_scalar']}x",
        f"  method: {result['scalar_method']}",
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--instruments", type=int, default=5_000)
    parser.add_argument("--positions-per-account", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--scalar-sample", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def main(args: argparse.Namespace) -> int:
    result = run(args)
    if args.json:
        print(json.dumps(result))  # noqa: T201  # the benchmark's output
    else:
        print(report(result))  # noqa: T201  # the benchmark's output
    sys.stdout.flush()
    return 0
