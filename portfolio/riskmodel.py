"""The risk models a gateway keeps: a daily covariance and an intraday volatility.

Dimensions: U = risk series, T = days of a history.

- **Daily** (``daily``): an EWMA factor model of daily log returns (lambda
  0.94, RiskMetrics' daily decay), the base of VaR over a horizon of trading
  days. It is seeded from a history of daily closes (``seed``) and, at each
  day roll, takes the day's close-to-close return (``roll``). A return that
  spans more than one trading day (the simulator trades around the clock,
  so its calendar day holds 3.7 trading days of variance) is scaled to one
  by the square root of the days it spans. A day on which no series moved
  (a weekend or holiday of a real feed) is not a trading day and is left
  out. The model is replaced at a roll, never changed in place: a run in
  another thread may still hold the previous one.
- **Intraday** (``intraday``): the same factor model over returns sampled
  every risk interval, with a decay of a short half-life, bias-corrected
  from its first sample. It reacts to a volatility spike within seconds,
  where the daily model moves only at the next roll. Being per-interval
  returns of marks, it also carries the market's microstructure (quotes on
  a tick grid, instruments that tick rarely).

Series levels come from ``RiskUniverse.levels``: instrument marks and each
currency's USD value.
"""

from __future__ import annotations

import math

import numpy as np

from portfolio.risk import FactorModel, log_returns
from pricing.types import F64Array1D, F64Array2D, I64Array1D

__all__ = ["RiskModel"]


class RiskModel:
    """The daily and intraday factor models, and the closes since the last roll.

    Parameters
    ----------
    group_of : ndarray, shape (U,), int64
        Factor group of each series.
    lam : float
        Daily EWMA decay.
    window : int
        Daily returns kept as historical scenarios.
    min_days : int
        Daily returns the daily model needs before it reports VaR.
    intraday_half_life : float
        Half-life of the intraday model, in samples.
    """

    def __init__(
        self,
        group_of: I64Array1D,
        *,
        lam: float,
        window: int,
        min_days: int,
        intraday_half_life: float,
    ) -> None:
        if not intraday_half_life > 0:
            raise ValueError(f"intraday_half_life must be positive, was {intraday_half_life}")
        self.daily = FactorModel(group_of, lam=lam, window=window, min_samples=min_days)
        # Ready after one half-life of samples: bias-corrected, its effective
        # sample size is then about the half-life itself.
        self.intraday = FactorModel(
            group_of,
            lam=0.5 ** (1.0 / intraday_half_life),
            window=0,
            min_samples=math.ceil(intraday_half_life),
        )
        self.closes: F64Array1D | None = None

    def seed(self, closes: F64Array2D) -> None:
        """Seed the daily model from series levels of daily closes, shape (T + 1, U).

        The model starts from the equal-weighted moments of the T returns
        (``FactorModel.seed``) and keeps the last ones as scenarios; the last
        row becomes the close the next roll measures from.
        """
        closes = np.asarray(closes, dtype=np.float64)
        if closes.ndim != 2 or closes.shape[0] < 2:
            raise ValueError(f"a history needs two closes or more, had shape {closes.shape}")
        returns = log_returns(closes[1:], closes[:-1])
        self.daily.seed(returns)
        self.closes = closes[-1].copy()

    def start(self, closes: F64Array1D) -> None:
        """Set the close the next roll measures from (the previous close), shape (U,)."""
        self.closes = np.asarray(closes, dtype=np.float64).copy()

    def roll(self, closes: F64Array1D, *, days: float) -> bool:
        """Fold today's close-to-close return into the daily model.

        Parameters
        ----------
        closes : ndarray, shape (U,), float64
            Today's closing levels; they become the base of the next roll.
        days : float
            Trading days the return spans (1 for a feed that trades one
            session a day); the return is divided by ``sqrt(days)``.

        Returns
        -------
        bool
            Whether a return entered: False when no series moved (not a
            trading day) or no close was set yet.
        """
        closes = np.asarray(closes, dtype=np.float64)
        previous, self.closes = self.closes, closes.copy()
        if previous is None:
            return False
        r = log_returns(closes, previous)
        if not r.any():
            return False
        if not (math.isfinite(days) and days > 0):
            raise ValueError(f"days must be a positive number, was {days}")
        daily = self.daily.copy()
        daily.update(r / math.sqrt(days))
        self.daily = daily  # replaced, not changed: a run may hold the previous one
        return True

    def sample(self, levels: F64Array1D, *, intervals: float = 1.0) -> None:
        """Feed the intraday model one sample of series levels, shape (U,)."""
        self.intraday.observe(levels, intervals=intervals)
