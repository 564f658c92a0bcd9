"""Market simulator model: correlated geometric Brownian motion with regimes.

Dimensions: M = instruments, K = simulated instruments (every non-option),
S = sectors, T = ticks emitted by one step.

Each simulated instrument's log mid follows

    d ln S_i = (mu_i - sigma_i^2 / 2) dt + sigma_i sqrt(dt) (a_m Z_m + a_s Z_s(i) + a_e e_i)

with one market factor ``Z_m``, one factor per sector ``Z_s`` and an
idiosyncratic shock ``e_i``, all independent standard normals, and
``a_m^2 = market_share``, ``a_s^2 = sector_share``, ``a_e^2 = 1 - a_m^2 - a_s^2``.
Two instruments in the same sector therefore have return correlation
``market_share + sector_share``, and in different sectors ``market_share``.

Time runs in fixed steps of ``step_s`` seconds, so a given seed and a given
sequence of regime changes (at given steps) always produce the same ticks.
Volatility and drift are annualised over a trading year of
``TRADING_SECONDS_PER_YEAR`` (252 days of ``TRADING_SECONDS_PER_DAY``, 6.5
hours). The model trades around the clock: a calendar day of steps carries
86,400 / 23,400 = 3.7 trading days of variance.

**History.** ``daily_history`` draws past daily closes from the same model
(one trading day of calm diffusion per day), ending at the current mids: a
history of daily returns to seed a risk model with. Its true covariance of
daily log returns is ``sigma_i sigma_j rho_ij / 252`` with the correlations
above (crosses' from their legs).

Options are not simulated: their prices derive from the underlying.

FX crosses (pairs without a USD leg, EURGBP) are not simulated on their own
either when the master lists both of their legs against USD: their log mid
is the difference of the legs' USD values (``ln EURGBP = ln EURUSD -
ln GBPUSD``, ``ln EURJPY = ln EURUSD + ln USDJPY``), so the rates the
simulator quotes are triangularly consistent by construction, and agree with
the conversions through USD that valuation uses. A cross's own ``volatility``
is then unused: its moves are its legs'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pricing.instruments import InstrumentMaster, InstrumentType
from pricing.pricebook import TickBatch
from pricing.types import F64Array1D, F64Array2D, I64Array1D

__all__ = [
    "CALM",
    "TRADING_SECONDS_PER_DAY",
    "TRADING_SECONDS_PER_YEAR",
    "MarketModel",
    "ModelParams",
    "Regime",
]

TRADING_SECONDS_PER_DAY = 6.5 * 3600
"""A trading day: 6.5 hours, the regular session of the US equity markets."""
TRADING_SECONDS_PER_YEAR = 252 * TRADING_SECONDS_PER_DAY


@dataclass(frozen=True, slots=True)
class Regime:
    """Market regime: multipliers on the calm tick rate and volatility."""

    name: str
    rate_multiplier: float = 1.0
    vol_multiplier: float = 1.0

    def __post_init__(self) -> None:
        if not self.rate_multiplier > 0:
            raise ValueError(f"rate_multiplier must be positive, was {self.rate_multiplier}")
        if not self.vol_multiplier > 0:
            raise ValueError(f"vol_multiplier must be positive, was {self.vol_multiplier}")


CALM = Regime("calm")


@dataclass(frozen=True, slots=True)
class ModelParams:
    """Parameters of the simulator model.

    ``tick_rate_per_s`` is the calm rate of ticks across the whole universe;
    ``step_s`` the fixed model time step. ``market_share`` and
    ``sector_share`` are the shares of each instrument's return variance
    explained by the market and sector factors. ``spread_bps`` is the quoted
    spread in basis points of the mid (at least one tick). ``equity_drift`` is
    the annualised drift of equities; futures and FX have none.
    """

    tick_rate_per_s: float = 4000.0
    step_s: float = 0.005
    market_share: float = 0.25
    sector_share: float = 0.25
    spread_bps: float = 2.0
    equity_drift: float = 0.05

    def __post_init__(self) -> None:
        if not self.tick_rate_per_s >= 0:
            raise ValueError(f"tick_rate_per_s must be >= 0, was {self.tick_rate_per_s}")
        if not self.step_s > 0:
            raise ValueError(f"step_s must be positive, was {self.step_s}")
        shares = (self.market_share, self.sector_share)
        if min(shares) < 0 or sum(shares) > 1:
            raise ValueError(f"factor shares must be >= 0 and sum to <= 1, were {shares}")
        if not self.spread_bps >= 0:
            raise ValueError(f"spread_bps must be >= 0, was {self.spread_bps}")


class MarketModel:
    """Seeded, stepwise market model that emits tick batches.

    Attributes
    ----------
    simulated_ix : ndarray, shape (K,), int64
        Instruments the model prices (all but options).
    sector_of : ndarray, shape (K,), int64
        Sector number of each simulated instrument, in ``[0, S)``.
    """

    def __init__(self, master: InstrumentMaster, params: ModelParams, *, seed: int) -> None:
        self.params = params
        self._rng = np.random.default_rng(seed)
        is_option = master.mask_of(InstrumentType.OPTION)
        self.size_m = len(master)
        self.simulated_ix: I64Array1D = np.flatnonzero(~is_option).astype(np.int64)
        k = self.simulated_ix
        sectors = sorted({master[int(i)].sector for i in k})
        sector_number = {name: n for n, name in enumerate(sectors)}
        self.sector_names = tuple(sectors)
        self.sector_of: I64Array1D = np.array(
            [sector_number[master[int(i)].sector] for i in k], dtype=np.int64
        )
        self.sigma = master.volatility[k].copy()
        is_equity = master.mask_of(InstrumentType.EQUITY)[k]
        self.mu = np.where(is_equity, params.equity_drift, 0.0)
        self._log_mid = np.log(master.ref_price[k])
        self._cross, self._legs, self._leg_signs = _fx_crosses(master, k)
        self._derive_crosses(self._log_mid)
        weight = master.weight[k]
        # Picking by weight: uniforms looked up in the cumulative weights (a
        # draw costs log M, where choice(p=...) rebuilds the table each call).
        self._pick_cdf = np.cumsum(weight / weight.sum())
        decimals = master.price_decimals[k]
        # Prices are built as integer tick counts times an integer tick unit over
        # a power of ten, so that the float is the nearest double to a decimal on
        # the tick grid (189.51, not 189.51000000000002).
        self._scale = 10.0 ** decimals.astype(np.float64)
        self._tick_units = np.rint(master.tick_size[k] * self._scale)
        self._lot = master.lot_size[k]
        self.regime = CALM
        self._regime_steps_left = 0
        self.steps = 0

    def set_regime(self, regime: Regime, *, steps: int) -> None:
        """Switch to ``regime`` for ``steps`` steps, then back to calm."""
        if steps <= 0:
            raise ValueError(f"steps must be positive, was {steps}")
        self.regime = regime
        self._regime_steps_left = steps

    def mids(self) -> F64Array1D:
        """Current model mid per instrument, shape (M,); NaN for options."""
        out = np.full(self.size_m, np.nan)
        out[self.simulated_ix] = np.exp(self._log_mid)
        return out

    def daily_history(self, days: int, *, seed: int) -> F64Array2D:
        """Daily closes of a history drawn from the model, ending at the current mids.

        Each day's log return is one trading day of the calm diffusion,
        without drift (RiskMetrics takes daily returns as zero-mean; the
        drift is a few basis points a day): ``sigma sqrt(1/252) (a_m z_m +
        a_s z_s + a_e e)``, crosses from their legs. The shocks are
        moment-matched over the history: the market and sector shocks' sample
        second moments are exactly the identity, and each instrument's own
        shock has mean square exactly 1 and no sample correlation with them.
        The history's equal-weighted covariance is then the model's, except
        between two instruments' own shocks (whose sample correlations are
        noise of about ``1 / sqrt(days)``). The matching is over equal
        weights, so no day is scaled more than another.

        Parameters
        ----------
        days : int
            Daily returns wanted; more than the market and sector shocks.
        seed : int
            Seed of the draws (independent of the model's own generator).

        Returns
        -------
        ndarray, shape (days + 1, M), float64
            Row ``t`` is the close ``days - t`` trading days ago; the last
            row is the current mids. NaN for options.
        """
        n_common = 1 + len(self.sector_names)
        if days <= n_common:
            raise ValueError(
                f"days must exceed the {n_common} market and sector shocks, was {days}"
            )
        p = self.params
        rng = np.random.default_rng(seed)
        common = rng.standard_normal((days, n_common))
        own = rng.standard_normal((days, self.simulated_ix.shape[0]))
        # Whiten the common shocks: their sample second moment becomes I.
        lower = np.linalg.cholesky(common.T @ common / days)
        common = np.linalg.solve(lower, common.T).T
        own -= common @ (common.T @ own) / days
        own /= np.sqrt(np.mean(own * own, axis=0))
        a_m, a_s = np.sqrt(p.market_share), np.sqrt(p.sector_share)
        a_e = np.sqrt(1.0 - p.market_share - p.sector_share)
        shock = a_m * common[:, :1] + a_s * common[:, 1:][:, self.sector_of] + a_e * own
        returns = self.sigma * np.sqrt(TRADING_SECONDS_PER_DAY / TRADING_SECONDS_PER_YEAR) * shock
        self._derive_crosses(returns)  # linear in logs: a cross's return is its legs'
        log_close = np.empty((days + 1, returns.shape[1]))
        log_close[-1] = self._log_mid
        log_close[:-1] = self._log_mid - np.cumsum(returns[::-1], axis=0)[::-1]
        out = np.full((days + 1, self.size_m), np.nan)
        out[:, self.simulated_ix] = np.exp(log_close)
        return out

    def step(self, ts_ns: int) -> TickBatch:
        """Advance one step and return the ticks it emits, stamped ``ts_ns``."""
        return self.advance(ts_ns, 1)

    def advance(self, ts_ns: int, steps: int) -> TickBatch:
        """Advance ``steps`` steps at once and return their ticks, stamped ``ts_ns``.

        Within one regime, the steps are one diffusion over their whole time
        (a sum of independent normal shocks is one normal shock of the summed
        variance, so prices have the same distribution) and one draw of their
        ticks: catching up after a stall costs one step, not ``steps``.
        """
        batches = []
        while steps > 0:
            k = steps if self._regime_steps_left == 0 else min(steps, self._regime_steps_left)
            self._diffuse(k)
            batches.append(self._emit(ts_ns, k))
            self.steps += k
            steps -= k
            if self._regime_steps_left > 0:
                self._regime_steps_left -= k
                if self._regime_steps_left == 0:
                    self.regime = CALM
        return batches[0] if len(batches) == 1 else TickBatch.concat(batches)

    def _diffuse(self, steps: int) -> None:
        p = self.params
        dt = steps * p.step_s / TRADING_SECONDS_PER_YEAR
        n_sectors = len(self.sector_names)
        z_market = self._rng.standard_normal()
        z_sector = self._rng.standard_normal(n_sectors)
        z_own = self._rng.standard_normal(self._log_mid.shape[0])
        a_m = np.sqrt(p.market_share)
        a_s = np.sqrt(p.sector_share)
        a_e = np.sqrt(1.0 - p.market_share - p.sector_share)
        shock = a_m * z_market + a_s * z_sector[self.sector_of] + a_e * z_own
        sigma = self.sigma * self.regime.vol_multiplier
        self._log_mid += (self.mu - 0.5 * sigma**2) * dt + sigma * np.sqrt(dt) * shock
        self._derive_crosses(self._log_mid)

    def _derive_crosses(self, log_values: F64Array1D) -> None:
        # In place, over the last axis (K): each cross from its two legs.
        if self._cross.size:
            legs = log_values[..., self._legs]  # (..., X, 2)
            log_values[..., self._cross] = (legs * self._leg_signs).sum(axis=-1)

    def _emit(self, ts_ns: int, steps: int) -> TickBatch:
        p = self.params
        expected = p.tick_rate_per_s * self.regime.rate_multiplier * p.step_s * steps
        count = int(self._rng.poisson(expected))
        if count == 0:
            return TickBatch.empty()
        # Every pick is a tick, so the emitted rate is the configured one; an
        # instrument picked twice ticks twice (the later tick wins in the book).
        picks = np.searchsorted(self._pick_cdf, self._rng.random(count), side="right")
        np.minimum(picks, self._pick_cdf.shape[0] - 1, out=picks)  # float rounding at 1
        mid = np.exp(self._log_mid[picks])
        units = self._tick_units[picks]
        scale = self._scale[picks]
        tick = units / scale
        # Spreads widen with volatility, as they do in a real spike.
        half = np.maximum(mid * p.spread_bps * 1e-4 * np.sqrt(self.regime.vol_multiplier), tick)
        half *= 0.5
        bid_ticks = np.maximum(np.floor((mid - half) / tick), 0.0)
        ask_ticks = np.maximum(np.ceil((mid + half) / tick), bid_ticks + 1.0)
        bid = bid_ticks * units / scale
        ask = ask_ticks * units / scale
        at_ask = self._rng.random(picks.shape[0]) < 0.5
        last = np.where(at_ask, ask, bid)
        size = self._lot[picks] * self._rng.geometric(0.35, size=picks.shape[0])
        n = picks.shape[0]
        ts = np.full(n, ts_ns, dtype=np.int64)
        return TickBatch.from_columns(
            instrument_ix=self.simulated_ix[picks],
            bid=bid,
            ask=ask,
            last=last,
            size=size,
            ts_event=ts,
            ts_recv=ts,
        )


def _fx_crosses(
    master: InstrumentMaster, simulated_ix: I64Array1D
) -> tuple[I64Array1D, I64Array1D, F64Array2D]:
    # The FX pairs without a USD leg whose two currencies both have a pair
    # against USD, as positions in ``simulated_ix``: (crosses (X,), legs
    # (X, 2), signs (X, 2)), with ln XXXYYY = sum(sign x ln leg).
    position = {int(ix): n for n, ix in enumerate(simulated_ix.tolist())}
    usd_leg: dict[str, tuple[int, float]] = {}  # ln(USD per c) = sign x ln(leg)
    pairs = [(ix, i) for ix, i in enumerate(master) if i.type is InstrumentType.FX]
    for ix, pair in pairs:
        if pair.currency == "USD" and pair.base_currency is not None:
            usd_leg[pair.base_currency] = (position[ix], 1.0)
        elif pair.base_currency == "USD":
            usd_leg[pair.currency] = (position[ix], -1.0)
    crosses, legs, signs = [], [], []
    for ix, pair in pairs:
        base, quote = pair.base_currency, pair.currency
        if "USD" in (base, quote) or base not in usd_leg or quote not in usd_leg:
            continue
        (base_leg, base_sign), (quote_leg, quote_sign) = usd_leg[base], usd_leg[quote]
        crosses.append(position[ix])
        legs.append((base_leg, quote_leg))
        signs.append((base_sign, -quote_sign))
    return (
        np.array(crosses, dtype=np.int64),
        np.array(legs, dtype=np.int64).reshape(-1, 2),
        np.array(signs, dtype=np.float64).reshape(-1, 2),
    )
