"""Statistics and tick invariants of the seeded market model.

Tolerances are four standard errors of the statistic under the model's own
distribution, so a correct model fails with probability below ~1e-4 per check
(and, the seeds being fixed, never flakes); each is derived where it is used.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pricing.instruments import CSV_COLUMNS, InstrumentMaster, parse_instrument_csv
from pricing.pricebook import TickBatch
from pricing.simulator import (
    CALM,
    TRADING_SECONDS_PER_YEAR,
    MarketModel,
    ModelParams,
    Regime,
)

DAY_S = TRADING_SECONDS_PER_YEAR / 252
SIGMA = 0.3
EQUITY_DRIFT = 0.05
MARKET_SHARE = 0.25
SECTOR_SHARE = 0.25
SECTOR_ALPHA = range(0, 4)
SECTOR_BETA = range(4, 8)
STATS_STEPS = 20_000
Emitted = tuple[InstrumentMaster, TickBatch]


def csv_row(symbol: str, kind: str, *, sector: str, **fields: str) -> str:
    values = {
        "id": f"{symbol}.TEST",
        "symbol": symbol,
        "type": kind,
        "currency": "USD",
        "tick_size": "0.01",
        "lot_size": "1",
        "multiplier": "1",
        "sector": sector,
        "ref_price": "100",
        "volatility": str(SIGMA),
        "weight": "1",
    } | fields
    return ",".join(values.get(column, "") for column in CSV_COLUMNS)


def equity_rows() -> list[str]:
    # E0..E3 in sector "alpha", E4..E7 in sector "beta".
    return [
        csv_row(f"E{n}", "equity", sector="alpha" if n in SECTOR_ALPHA else "beta")
        for n in range(8)
    ]


def equities_master() -> InstrumentMaster:
    return parse_instrument_csv("\n".join([",".join(CSV_COLUMNS), *equity_rows()]) + "\n")


def mixed_master() -> InstrumentMaster:
    # Odd tick grids and lots, a price below one tick (bid clamps at 0) and an option.
    rows = [
        *equity_rows(),
        csv_row(
            "ESZ6", "future", sector="index", tick_size="0.25", multiplier="50", ref_price="6000"
        ),
        csv_row(
            "ZNZ6",
            "future",
            sector="rates",
            tick_size="0.015625",
            multiplier="1000",
            ref_price="110.5",
        ),
        csv_row(
            "EURUSD",
            "fx",
            sector="fx",
            tick_size="0.00001",
            lot_size="1000",
            ref_price="1.1",
            base_currency="EUR",
        ),
        csv_row(
            "7203",
            "equity",
            sector="autos",
            currency="JPY",
            tick_size="1",
            lot_size="100",
            ref_price="3000",
        ),
        csv_row("PENNY", "equity", sector="alpha", ref_price="0.004"),
        csv_row(
            "E0C100",
            "option",
            id="E0C100.OPRA",
            sector="alpha",
            underlying="E0",
            option_type="C",
            strike="100",
            expiry="2027-01-15",
            ref_price="5",
        ),
    ]
    return parse_instrument_csv("\n".join([",".join(CSV_COLUMNS), *rows]) + "\n")


def daily_params(**overrides: float) -> ModelParams:
    # No ticks are needed where only mids are read, so the rate is zero.
    fields = {
        "tick_rate_per_s": 0.0,
        "step_s": DAY_S,
        "market_share": MARKET_SHARE,
        "sector_share": SECTOR_SHARE,
        "equity_drift": EQUITY_DRIFT,
    } | overrides
    return ModelParams(**fields)


def log_returns(model: MarketModel, steps: int) -> np.ndarray:
    # Shape (steps, M): the per-step change of each instrument's log mid.
    mids = np.empty((steps + 1, model.size_m))
    mids[0] = model.mids()
    for n in range(steps):
        model.step(n + 1)
        mids[n + 1] = model.mids()
    return np.diff(np.log(mids), axis=0)


def run_batches(model: MarketModel, steps: int) -> list[TickBatch]:
    return [model.step(n + 1) for n in range(steps)]


def same_batches(a: list[TickBatch], b: list[TickBatch]) -> bool:
    columns = ("instrument_ix", "bid", "ask", "last", "size", "ts_event", "ts_recv")
    return len(a) == len(b) and all(
        np.array_equal(getattr(x, name), getattr(y, name))
        for x, y in zip(a, b, strict=True)
        for name in columns
    )


def mean_pair_correlation(returns: np.ndarray, pairs: list[tuple[int, int]]) -> float:
    corr = np.corrcoef(returns, rowvar=False)
    return float(np.mean([corr[i, j] for i, j in pairs]))


@pytest.fixture(scope="module")
def calm_daily_returns() -> np.ndarray:
    model = MarketModel(equities_master(), daily_params(), seed=11)
    return log_returns(model, STATS_STEPS)


# --- calm statistics -------------------------------------------------------------------------


def test_realised_volatility_matches_instrument_volatility(calm_daily_returns: np.ndarray) -> None:
    # One series of N normal returns estimates sigma with standard error
    # sigma / sqrt(2N) = 0.3 / 200 = 0.0015; averaging eight correlated series can
    # only shrink it. Four standard errors: 0.006.
    returns = calm_daily_returns

    annualised = float(np.mean(returns.std(axis=0, ddof=1)) * math.sqrt(252))

    assert annualised == pytest.approx(SIGMA, abs=0.006)


def test_same_sector_correlation_is_market_plus_sector_share(
    calm_daily_returns: np.ndarray,
) -> None:
    # A sample correlation has standard error (1 - rho^2) / sqrt(N):
    # 0.75 / 141.4 = 0.0053 at rho = 0.5; a mean over pairs is no worse. 4 SE: 0.021.
    pairs = [(i, j) for group in (SECTOR_ALPHA, SECTOR_BETA) for i in group for j in group if i < j]

    correlation = mean_pair_correlation(calm_daily_returns, pairs)

    assert correlation == pytest.approx(MARKET_SHARE + SECTOR_SHARE, abs=0.021)


def test_cross_sector_correlation_is_market_share(calm_daily_returns: np.ndarray) -> None:
    # As above at rho = 0.25: 0.9375 / 141.4 = 0.0066. 4 SE: 0.027.
    pairs = [(i, j) for i in SECTOR_ALPHA for j in SECTOR_BETA]

    correlation = mean_pair_correlation(calm_daily_returns, pairs)

    assert correlation == pytest.approx(MARKET_SHARE, abs=0.027)


def test_mean_annual_log_return_is_drift_minus_half_variance() -> None:
    # With daily steps, 20 years of data estimate the mean with SE 0.3 / sqrt(20) = 0.07,
    # far above the 0.005 under test. GBM steps are exact in distribution whatever
    # their length, so step one trading year at a time: each step is one draw of the
    # annual log return, SE 0.3 / sqrt(20_000) = 0.0021 for one series (the mean over
    # eight correlated series is no worse). 4 SE: 0.0085, which still tells the expected
    # 0.05 - 0.045 = 0.005 from a missing Ito term (0.05) and from no drift (-0.045).
    model = MarketModel(equities_master(), daily_params(step_s=TRADING_SECONDS_PER_YEAR), seed=13)

    returns = log_returns(model, STATS_STEPS)

    assert float(returns.mean()) == pytest.approx(EQUITY_DRIFT - SIGMA**2 / 2, abs=0.0085)


# --- regimes ---------------------------------------------------------------------------------


def test_spike_regime_multiplies_realised_volatility_by_vol_multiplier() -> None:
    # SE of the estimate: 0.6 / sqrt(2 * 20_000) = 0.003. 4 SE: 0.012.
    model = MarketModel(equities_master(), daily_params(), seed=17)
    model.set_regime(Regime("spike", vol_multiplier=2.0), steps=STATS_STEPS)

    returns = log_returns(model, STATS_STEPS)

    annualised = float(np.mean(returns.std(axis=0, ddof=1)) * math.sqrt(252))
    assert annualised == pytest.approx(2.0 * SIGMA, abs=0.012)


def test_regime_stays_in_force_until_its_last_step() -> None:
    model = MarketModel(equities_master(), daily_params(), seed=1)
    spike = Regime("spike", rate_multiplier=3.0, vol_multiplier=2.0)
    model.set_regime(spike, steps=3)

    run_batches(model, 2)

    assert model.regime == spike


def test_regime_returns_to_calm_after_its_steps() -> None:
    model = MarketModel(equities_master(), daily_params(), seed=1)
    model.set_regime(Regime("spike", rate_multiplier=3.0, vol_multiplier=2.0), steps=3)

    run_batches(model, 3)

    assert model.regime == CALM


# --- tick counts: 8 instruments, 5 ms steps, 2 ticks per step expected when calm -------------

COUNT_STEPS = 4_000
COUNT_PARAMS = ModelParams(tick_rate_per_s=400.0, step_s=0.005)
CALM_TICKS_PER_STEP = 400.0 * 0.005


def test_calm_model_emits_tick_rate_times_step_ticks_per_step() -> None:
    # Poisson counts: the mean of n steps at rate 2 has SE sqrt(2 / 4000) = 0.022. 4 SE: 0.09.
    model = MarketModel(equities_master(), COUNT_PARAMS, seed=19)

    counts = [len(batch) for batch in run_batches(model, COUNT_STEPS)]

    assert float(np.mean(counts)) == pytest.approx(CALM_TICKS_PER_STEP, abs=0.09)


def test_spike_regime_multiplies_mean_ticks_per_step_by_rate_multiplier() -> None:
    # Ratio of Poisson means 8 / 2 over n = 4000 steps each: relative SE
    # sqrt(1 / (n * 8) + 1 / (n * 2)) = 0.0125. 4 SE: 5 % of 4, i.e. 0.2.
    calm_model = MarketModel(equities_master(), COUNT_PARAMS, seed=23)
    spike_model = MarketModel(equities_master(), COUNT_PARAMS, seed=29)
    spike_model.set_regime(Regime("spike", rate_multiplier=4.0), steps=COUNT_STEPS)

    calm_counts = [len(batch) for batch in run_batches(calm_model, COUNT_STEPS)]
    spike_counts = [len(batch) for batch in run_batches(spike_model, COUNT_STEPS)]

    ratio = float(np.mean(spike_counts) / np.mean(calm_counts))
    assert ratio == pytest.approx(4.0, abs=0.2)


# --- reproducibility -------------------------------------------------------------------------

TICKING_PARAMS = ModelParams(tick_rate_per_s=2_000.0, step_s=0.005)


def test_same_seed_gives_identical_tick_batches() -> None:
    first = MarketModel(mixed_master(), TICKING_PARAMS, seed=5)
    second = MarketModel(mixed_master(), TICKING_PARAMS, seed=5)

    batches = run_batches(first, 200), run_batches(second, 200)

    assert same_batches(*batches)


def test_different_seed_gives_different_tick_batches() -> None:
    first = MarketModel(mixed_master(), TICKING_PARAMS, seed=5)
    second = MarketModel(mixed_master(), TICKING_PARAMS, seed=6)

    batches = run_batches(first, 200), run_batches(second, 200)

    assert not same_batches(*batches)


# --- invariants of every emitted tick --------------------------------------------------------


@pytest.fixture(scope="module")
def emitted() -> Emitted:
    # A calm stretch, then a wide-spread spike; the rate asks for 10 ticks a step.
    master = mixed_master()
    model = MarketModel(master, TICKING_PARAMS, seed=31)
    calm = run_batches(model, 1_000)
    model.set_regime(Regime("spike", rate_multiplier=2.0, vol_multiplier=3.0), steps=500)
    spike = run_batches(model, 500)
    return master, TickBatch.concat(calm + spike)


def test_emitted_quotes_are_not_crossed_or_locked(emitted: Emitted) -> None:
    _, ticks = emitted

    is_ordered = ticks.bid < ticks.ask

    assert is_ordered.all()


def test_emitted_bids_are_not_negative(emitted: Emitted) -> None:
    _, ticks = emitted

    lowest = float(ticks.bid.min())

    assert lowest >= 0.0


@pytest.mark.parametrize("column", ["bid", "ask", "last"])
def test_emitted_prices_lie_on_the_tick_grid(emitted: Emitted, column: str) -> None:
    master, ticks = emitted

    in_ticks = getattr(ticks, column) / master.tick_size[ticks.instrument_ix]

    assert np.abs(in_ticks - np.rint(in_ticks)).max() <= 1e-6


def test_emitted_last_is_the_bid_or_the_ask(emitted: Emitted) -> None:
    _, ticks = emitted

    at_touch = (ticks.last == ticks.bid) | (ticks.last == ticks.ask)

    assert at_touch.all()


def test_emitted_size_is_a_positive_whole_number_of_lots(emitted: Emitted) -> None:
    master, ticks = emitted

    lots = ticks.size / master.lot_size[ticks.instrument_ix]

    assert (lots >= 1).all()
    assert np.array_equal(lots, np.rint(lots))


def test_options_never_tick(emitted: Emitted) -> None:
    master, ticks = emitted
    option_ix = master.ix("E0C100")

    ticked = set(ticks.instrument_ix.tolist())

    assert option_ix not in ticked


def test_every_non_option_ticks_in_a_long_run(emitted: Emitted) -> None:
    master, ticks = emitted
    non_options = set(range(len(master))) - {master.ix("E0C100")}

    ticked = set(ticks.instrument_ix.tolist())

    assert ticked == non_options


# --- advancing several steps at once -------------------------------------------------


def test_advancing_k_steps_at_once_has_k_steps_of_variance() -> None:
    # 2,000 two-day moves, each one advance(2) of daily steps, against the
    # variance of a two-day return: 2 x sigma^2 x day (drift is tiny).
    model = MarketModel(equities_master(), daily_params(equity_drift=0.0), seed=5)
    moves = []
    for n in range(2_000):
        before = np.log(model.mids())
        model.advance(n + 1, 2)
        moves.append(np.log(model.mids()) - before)
    variance = np.var(np.array(moves)[:, 0])

    expected = 2 * SIGMA**2 * DAY_S / TRADING_SECONDS_PER_YEAR
    # Sample variance of 2,000 normals: standard error sqrt(2 / 2000) = 3.2%.
    assert variance == pytest.approx(expected, rel=4 * math.sqrt(2 / 2_000))


def test_advancing_through_the_end_of_a_regime_returns_to_calm_on_the_right_step() -> None:
    params = ModelParams(tick_rate_per_s=1_000_000.0, step_s=0.005)
    model = MarketModel(equities_master(), params, seed=6)
    model.set_regime(Regime("spike", rate_multiplier=10.0), steps=3)

    batch = model.advance(1, 10)

    # 3 spike steps of 50,000 expected ticks and 7 calm ones of 5,000: 185,000.
    assert model.regime == CALM
    assert model.steps == 10
    assert len(batch) == pytest.approx(185_000, abs=4 * math.sqrt(185_000))


def test_one_step_advance_is_step() -> None:
    a = MarketModel(mixed_master(), ModelParams(tick_rate_per_s=50_000.0), seed=9)
    b = MarketModel(mixed_master(), ModelParams(tick_rate_per_s=50_000.0), seed=9)

    assert same_batches([a.step(1) for _ in range(20)], [b.advance(1, 1) for _ in range(20)])


# --- FX crosses follow their USD legs ----------------------------------------------------


def fx_master() -> InstrumentMaster:
    # Legs against USD (EURUSD, GBPUSD, the inverted USDJPY, AUDUSD), the three
    # crosses, and NZDJPY, whose NZD leg is missing: it cannot be derived.
    def pair(symbol: str, base: str, quote: str, price: str, vol: str) -> str:
        return csv_row(
            symbol,
            "fx",
            sector="fx",
            currency=quote,
            base_currency=base,
            tick_size="0.00001",
            lot_size="1000",
            ref_price=price,
            volatility=vol,
        )

    rows = [
        pair("EURUSD", "EUR", "USD", "1.165", "0.07"),
        pair("GBPUSD", "GBP", "USD", "1.315", "0.08"),
        pair("USDJPY", "USD", "JPY", "154.25", "0.10"),
        pair("EURGBP", "EUR", "GBP", "0.9", "0.06"),  # off the legs' 0.88593 on purpose
        pair("EURJPY", "EUR", "JPY", "179.701", "0.09"),
        pair("GBPJPY", "GBP", "JPY", "202.839", "0.10"),
        pair("AUDUSD", "AUD", "USD", "0.655", "0.10"),
        pair("NZDJPY", "NZD", "JPY", "88.2", "0.11"),
    ]
    return parse_instrument_csv("\n".join([",".join(CSV_COLUMNS), *rows]) + "\n")


def implied_crosses(master: InstrumentMaster, mids: np.ndarray) -> dict[str, tuple[float, float]]:
    """Each cross's mid and the rate its legs imply, by hand from the three legs."""
    eurusd, gbpusd, usdjpy = (mids[master.ix(s)] for s in ("EURUSD", "GBPUSD", "USDJPY"))
    return {
        "EURGBP": (mids[master.ix("EURGBP")], eurusd / gbpusd),
        "EURJPY": (mids[master.ix("EURJPY")], eurusd * usdjpy),
        "GBPJPY": (mids[master.ix("GBPJPY")], gbpusd * usdjpy),
    }


def test_cross_mids_are_the_rates_their_usd_legs_imply_at_every_step() -> None:
    master = fx_master()
    model = MarketModel(master, ModelParams(tick_rate_per_s=0.0, step_s=60.0), seed=17)

    worst = 0.0
    for n in range(2_000):
        model.advance(n + 1, 1 + n % 7)
        for cross, implied in implied_crosses(master, model.mids()).values():
            worst = max(worst, abs(cross / implied - 1))

    # One exp of a sum of logs against products of exps: a few ulps.
    assert worst < 1e-13


def test_cross_starts_at_the_rate_its_legs_imply_not_its_reference_price() -> None:
    master = fx_master()

    model = MarketModel(master, ModelParams(), seed=1)

    cross, implied = implied_crosses(master, model.mids())["EURGBP"]
    assert cross == pytest.approx(1.165 / 1.315, rel=1e-14)
    assert implied == pytest.approx(1.165 / 1.315, rel=1e-14)


def test_quoted_cross_brackets_the_rate_implied_by_the_legs_quoted_with_it() -> None:
    # Every instrument ticks each step at this rate; a cross's quote, on its
    # tick grid, must contain the rate its legs' mids imply (a quote is at
    # least a tick wide around the model mid, and the legs' mids are within
    # half their spread of theirs: 2 bps of slack covers both).
    master = fx_master()
    model = MarketModel(master, ModelParams(tick_rate_per_s=200_000.0), seed=23)

    for n in range(200):
        batch = model.step(n + 1)
        last: dict[str, tuple[float, float]] = {}
        for ix, bid, ask in zip(batch.instrument_ix, batch.bid, batch.ask, strict=True):
            last[master.symbols[int(ix)]] = (bid, ask)
        mid = {s: (b + a) / 2 for s, (b, a) in last.items()}
        implied = mid["EURUSD"] / mid["GBPUSD"]
        bid, ask = last["EURGBP"]
        assert bid * (1 - 2e-4) <= implied <= ask * (1 + 2e-4)


def test_a_cross_without_both_usd_legs_moves_on_its_own() -> None:
    master = fx_master()
    model = MarketModel(master, ModelParams(tick_rate_per_s=0.0, step_s=DAY_S), seed=3)
    nzdjpy = master.ix("NZDJPY")

    model.advance(1, 10)

    # Simulated from its own volatility, from its reference price.
    assert model.mids()[nzdjpy] != pytest.approx(88.2, rel=1e-6)


# --- a daily history drawn from the model ----------------------------------------------------


def history_returns(master: InstrumentMaster, days: int, seed: int = 5) -> np.ndarray:
    model = MarketModel(master, ModelParams(), seed=1)
    closes = model.daily_history(days, seed=seed)
    return np.diff(np.log(closes), axis=0)


def test_history_ends_at_the_current_mids_with_no_price_for_options() -> None:
    master = mixed_master()
    model = MarketModel(master, ModelParams(), seed=1)

    closes = model.daily_history(40, seed=2)

    assert closes.shape == (41, len(master))
    np.testing.assert_allclose(closes[-1], model.mids(), rtol=1e-14)
    assert np.isnan(closes[:, master.ix("E0C100")]).all()
    assert not np.isnan(np.delete(closes, master.ix("E0C100"), axis=1)).any()


def test_history_mean_square_daily_return_is_exactly_one_days_variance() -> None:
    returns = history_returns(equities_master(), 300)

    mean_square = np.mean(returns * returns, axis=0)

    # Moment-matched: sigma^2 / 252 for every instrument, up to rounding.
    np.testing.assert_allclose(mean_square, SIGMA**2 / 252, rtol=1e-12)


def test_history_correlations_are_the_models_within_sampling_error() -> None:
    returns = history_returns(equities_master(), 2_000)
    same = [(i, j) for i in SECTOR_ALPHA for j in SECTOR_ALPHA if i < j]
    cross = [(i, j) for i in SECTOR_ALPHA for j in SECTOR_BETA]

    second = returns.T @ returns / returns.shape[0]
    corr = second / (SIGMA**2 / 252)

    # The market and sector parts are exact; own shocks add a sample
    # correlation of s.e. 1 / sqrt(2000) per pair, times their share a_e^2 =
    # 0.5: 0.011, and a mean over 6 (16) pairs shrinks it to 0.0046 (0.0028).
    assert np.mean([corr[i, j] for i, j in same]) == pytest.approx(0.5, abs=4 * 0.0046)
    assert np.mean([corr[i, j] for i, j in cross]) == pytest.approx(0.25, abs=4 * 0.0028)


def test_history_crosses_are_the_rates_their_legs_imply_every_day() -> None:
    master = fx_master()
    closes = MarketModel(master, ModelParams(), seed=1).daily_history(60, seed=4)

    for row in closes:
        for cross, implied in implied_crosses(master, row).values():
            assert cross == pytest.approx(implied, rel=1e-13)


def test_history_is_the_same_for_a_seed_and_another_for_another() -> None:
    model = MarketModel(equities_master(), ModelParams(), seed=1)

    a, b, c = (model.daily_history(30, seed=s) for s in (8, 8, 9))

    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_history_shorter_than_its_common_shocks_is_refused() -> None:
    model = MarketModel(equities_master(), ModelParams(), seed=1)

    # Market + two sectors: three common shocks need more than three days.
    with pytest.raises(ValueError, match="days must exceed the 3"):
        model.daily_history(3, seed=1)
