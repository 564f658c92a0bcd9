"""Market risk kernels: an EWMA factor covariance, parametric and historical VaR.

Dimensions: U = risk series (one per priced instrument, plus one per
currency), K = factors, S = historical scenarios, A = accounts, E = summed
(account, series) exposures, O = option instruments held, H = summed
(account, option) holdings, L = confidence levels.

**EWMA factor model.** A full U x U covariance is too big for thousands of
instruments, so returns are modelled as ``r = B f + e``: ``f`` holds one
factor per group of series (the instrument's sector, or ``fx`` for
currencies), each the equal-weighted mean return of its group. All second
moments are EWMA estimates with one decay ``lambda``, zero-mean as in
RiskMetrics:

- the factor covariance ``F`` (K x K);
- the cross moments of series and factors ``C`` (U x K), giving the loadings
  ``B = C F^-1``;
- each series' variance ``v`` (U,), giving the specific variance
  ``d = max(v - diag(B F B^T), 0)``.

The covariance of series is ``B F B^T + diag(d)``; its accuracy against the
full EWMA covariance is tested on a small universe.

**Bias correction and seeding.** An EWMA started from zero underestimates:
after ``n`` returns its weights sum to ``1 - lambda^n``. The model keeps that
sum (``weight``) and divides the moments by it (``moments``), so every
estimate is unbiased from the first return. A model may instead be seeded
with the equal-weighted moments of a history (``seed``): weight 1, and each
return folded in afterwards enters with ``1 - lambda``. A model is ready
once it holds ``min_samples`` returns.

The model itself is horizon-free: its moments are per return (per day for
daily returns). The kernels scale them to a horizon.

**Parametric VaR** at confidence ``c``: ``z_c x sqrt(h x (e_f^T F e_f + sum
w^2 d))``, with ``e_f = B^T w`` for the account's exposures ``w`` (base
currency) and ``h`` the horizon in model periods (delta-normal).

**Historical VaR** over the model's last ``window`` returns as scenarios,
revalued at the current positions: each scenario's P&L is each exposure
times the simple return of its series (``exp(r sqrt(h)) - 1``), plus for
options the change of their Black-Scholes-Merton value when the
underlying moves by that return (full revaluation, at the run's time). VaR
is the loss at the ``1 - c`` quantile of the scenario P&Ls, interpolated
linearly between order statistics (numpy's ``linear``, definition 7 of
Hyndman and Fan).

NaN policy: exposures must be finite (callers leave unpriced positions
out); a model that is not ready gives NaN VaR.

Every kernel leaves its inputs unchanged; the arrays of ``Exposures`` and
``OptionHoldings`` are read-only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtri

from portfolio.options import black_scholes
from pricing.errors import ShapeError
from pricing.types import BoolArray1D, F64Array1D, F64Array2D, I64Array1D

__all__ = [
    "QUANTILE_METHOD",
    "Exposures",
    "FactorModel",
    "FactorMoments",
    "OptionHoldings",
    "historical_var",
    "log_returns",
    "option_scenario_pnl",
    "parametric_var",
    "pnl_variance",
    "z_score",
]

QUANTILE_METHOD: Final = "linear"
"""How historical VaR reads a quantile between order statistics: linear
interpolation (numpy's ``linear``, Hyndman and Fan's definition 7)."""
_RIDGE: Final = 1e-12


def z_score(confidence: float) -> float:
    """The standard normal quantile of ``confidence`` (1.6449 at 0.95)."""
    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must be within (0.5, 1), was {confidence}")
    return float(ndtri(confidence))


@dataclass(frozen=True, slots=True)
class FactorMoments:
    """A factor model's bias-corrected estimates, per model period.

    Attributes
    ----------
    factor_cov : ndarray, shape (K, K), float64
    loadings : ndarray, shape (U, K), float64
    specific : ndarray, shape (U,), float64
        Specific variance of each series.
    """

    factor_cov: F64Array2D
    loadings: F64Array2D
    specific: F64Array1D

    def covariance(self) -> F64Array2D:
        """``B F B^T + diag(d)``, shape (U, U); for small U."""
        b = self.loadings
        covariance: F64Array2D = b @ self.factor_cov @ b.T + np.diag(self.specific)
        return covariance


class FactorModel:
    """Online EWMA estimates of factor covariance, loadings and specific variance.

    Parameters
    ----------
    group_of : ndarray, shape (U,), int64
        Factor group of each series, in ``[0, K)``.
    lam : float
        EWMA decay per return (RiskMetrics: 0.94 for daily returns).
    window : int
        Returns kept as historical scenarios (0: none).
    min_samples : int
        Returns needed before the model is ready.
    """

    def __init__(self, group_of: I64Array1D, *, lam: float, window: int, min_samples: int) -> None:
        if not 0 < lam < 1:
            raise ValueError(f"lam must be within (0, 1), was {lam}")
        if window < 0:
            raise ValueError(f"window must be >= 0, was {window}")
        self.group_of = np.asarray(group_of, dtype=np.int64)
        u = self.group_of.shape[0]
        k = int(self.group_of.max()) + 1 if u else 0
        self.size_u, self.size_k = u, k
        self.lam = lam
        self.window = window
        self.min_samples = min_samples
        counts = np.bincount(self.group_of, minlength=k).astype(np.float64)
        # Averaging matrix: f = G r, with G[k, u] = 1 / |group k| for u in group k.
        self._average = np.zeros((k, u))
        self._average[self.group_of, np.arange(u)] = 1.0 / counts[self.group_of]
        # Raw EWMA sums; the estimates are these over ``weight``.
        self.factor_cov = np.zeros((k, k))
        self.cross = np.zeros((u, k))
        self.variance = np.zeros(u)
        self.weight = 0.0
        self.full_cov: F64Array2D | None = None
        self._scenarios = np.zeros((window, u))
        self._kept = 0  # scenarios written, for the ring's order
        self.samples = 0
        self._last: F64Array1D | None = None

    @property
    def is_ready(self) -> bool:
        """Whether enough returns were seen to report VaR."""
        return self.samples >= self.min_samples

    def copy(self) -> FactorModel:
        """An independent copy (for a run in another thread while this one keeps learning)."""
        twin = FactorModel.__new__(FactorModel)
        twin.__dict__.update(self.__dict__)
        for name in ("factor_cov", "cross", "variance", "_scenarios"):
            setattr(twin, name, getattr(self, name).copy())
        twin.full_cov = None if self.full_cov is None else self.full_cov.copy()
        twin._last = None if self._last is None else self._last.copy()
        return twin

    def track_full_covariance(self) -> None:
        """Also keep the full U x U EWMA covariance (for accuracy tests on small U)."""
        self.full_cov = np.zeros((self.size_u, self.size_u))

    def seed(self, returns: F64Array2D) -> None:
        """Start from a history's equal-weighted moments, shape (T, U), oldest first.

        The model then holds ``T`` returns with weight 1, and its last
        ``window`` returns are the history's last rows. NaN returns count as 0.
        """
        r = np.nan_to_num(np.asarray(returns, dtype=np.float64), nan=0.0)
        if r.ndim != 2 or r.shape[1] != self.size_u:
            raise ShapeError("returns", (-1, self.size_u), r.shape)
        t = r.shape[0]
        if t == 0:
            raise ValueError("a seed needs at least one return")
        f = r @ self._average.T  # (T, K)
        self.factor_cov = f.T @ f / t
        self.cross = r.T @ f / t
        self.variance = np.mean(r * r, axis=0)
        if self.full_cov is not None:
            self.full_cov = r.T @ r / t
        self.weight = 1.0
        kept = min(t, self.window)
        self._scenarios[:kept] = r[t - kept :]
        self._kept = kept
        self.samples = t

    def observe(self, levels: F64Array1D, *, intervals: float = 1.0) -> None:
        """Take one sample of series levels, shape (U,); NaN where a series has no price.

        ``intervals`` is the time since the previous sample in sample
        intervals; a late sample's returns are scaled by ``1 / sqrt(intervals)``
        (square-root-of-time), so every return estimates one interval's.
        """
        levels = np.asarray(levels, dtype=np.float64)
        if levels.shape != (self.size_u,):
            raise ShapeError("levels", (self.size_u,), levels.shape)
        if not (math.isfinite(intervals) and intervals > 0):
            raise ValueError(f"intervals must be a positive number, was {intervals}")
        last, self._last = self._last, levels.copy()
        if last is None:
            return
        r = log_returns(levels, last)
        if intervals != 1.0:
            r /= math.sqrt(intervals)
        self.update(r)

    def update(self, r: F64Array1D) -> None:
        """Fold one vector of returns, shape (U,), into the EWMA estimates."""
        lam, w = self.lam, 1.0 - self.lam
        f = self._average @ r
        self.factor_cov *= lam
        self.factor_cov += w * np.outer(f, f)
        self.cross *= lam
        self.cross += w * np.outer(r, f)
        self.variance *= lam
        self.variance += w * r * r
        self.weight = lam * self.weight + w
        if self.full_cov is not None:
            self.full_cov *= lam
            self.full_cov += w * np.outer(r, r)
        if self.window:
            self._scenarios[self._kept % self.window] = r
            self._kept += 1
        self.samples += 1

    def moments(self) -> FactorMoments:
        """The bias-corrected estimates (the raw sums over ``weight``); zeros before any return."""
        scale = 1.0 / self.weight if self.weight > 0 else 0.0
        factor_cov = self.factor_cov * scale
        # B = C F^-1 (a tiny ridge keeps F invertible); the scale cancels in B.
        ridged = factor_cov + _RIDGE * np.eye(self.size_k)
        loadings = np.asarray(np.linalg.solve(ridged, self.cross.T * scale).T, dtype=np.float64)
        systematic = np.einsum("uk,kl,ul->u", loadings, factor_cov, loadings)
        specific: F64Array1D = np.maximum(self.variance * scale - systematic, 0.0)
        return FactorMoments(factor_cov, loadings, specific)

    def covariance(self) -> F64Array2D:
        """The model's bias-corrected series covariance, shape (U, U); for small U."""
        return self.moments().covariance()

    def scenarios(self) -> F64Array2D:
        """The last ``min(samples, window)`` returns, oldest first, shape (S, U)."""
        s = min(self._kept, self.window)
        start = self._kept % self.window if self._kept > self.window else 0
        order = (np.arange(s) + start) % max(self.window, 1)
        return self._scenarios[order]


def log_returns(levels: F64Array1D, previous: F64Array1D) -> F64Array1D:
    """``log(levels / previous)``, elementwise; 0 where either is missing or not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(levels / previous)
    r[~np.isfinite(r)] = 0.0
    return r


def _sum_pairs(
    account: Sequence[int] | I64Array1D,
    series: Sequence[int] | I64Array1D,
    data: Sequence[float] | np.ndarray,
    size_a: int,
    size_u: int,
) -> tuple[I64Array1D, I64Array1D, np.ndarray]:
    # (account, series) of each summed pair, sorted, and the sums.
    pairs = (np.asarray(account, dtype=np.int64), np.asarray(series, dtype=np.int64))
    summed = sp.coo_matrix((np.asarray(data), pairs), shape=(size_a, size_u)).tocsr()
    summed.sum_duplicates()  # canonical: one entry per pair, columns sorted
    rows = np.repeat(np.arange(size_a, dtype=np.int64), np.diff(summed.indptr))
    return _frozen(rows), _frozen(summed.indices.astype(np.int64)), summed.data


def _frozen(array: np.ndarray[tuple[int], np.dtype[np.generic]]) -> np.ndarray:
    # Snapshots are shared by the kernels of a run: a kernel that writes into
    # one (a sparse matrix built over it and compacted in place) fails
    # loudly instead of changing what the next kernel sees.
    array.flags.writeable = False
    return array


@dataclass(frozen=True, slots=True)
class Exposures:
    """Accounts' exposures to risk series, summed per (account, series), sorted by pair.

    Attributes
    ----------
    account : ndarray, shape (E,), int64
        Local account index in ``[0, A)``.
    series : ndarray, shape (E,), int64
        Risk series in ``[0, U)``.
    value : ndarray, shape (E,), float64
        Exposure in base currency: the value that moves one for one with the
        series (delta-adjusted for options).
    size_a : int
        Number of accounts.
    """

    account: I64Array1D
    series: I64Array1D
    value: F64Array1D
    size_a: int

    @classmethod
    def aggregate(
        cls,
        account: Sequence[int] | I64Array1D,
        series: Sequence[int] | I64Array1D,
        value: Sequence[float] | F64Array1D,
        *,
        size_a: int,
        size_u: int,
    ) -> Exposures:
        """Sum raw (account, series) contributions into one entry per pair, sorted by pair.

        One sparse COO -> CSR conversion does the sum (linear time, and it
        releases the GIL, unlike a sort-based unique).
        """
        rows, columns, summed = _sum_pairs(account, series, value, size_a, size_u)
        return cls(rows, columns, _frozen(np.ascontiguousarray(summed.real)), size_a)

    @classmethod
    def aggregate_two(
        cls,
        account: I64Array1D,
        series: I64Array1D,
        value: F64Array1D,
        other: F64Array1D,
        *,
        size_a: int,
        size_u: int,
    ) -> tuple[Exposures, Exposures]:
        """Two sets of exposures over the same contributions, summed in one pass.

        ``value`` and ``other`` ride as the real and imaginary parts of one
        complex number; both results share the pairs (an entry may be 0 in one).
        """
        data = np.asarray(value, dtype=np.float64) + 1j * np.asarray(other, dtype=np.float64)
        rows, columns, summed = _sum_pairs(account, series, data, size_a, size_u)
        return (
            cls(rows, columns, _frozen(np.ascontiguousarray(summed.real)), size_a),
            cls(rows, columns, _frozen(np.ascontiguousarray(summed.imag)), size_a),
        )

    def matrix(self, size_u: int) -> sp.csr_matrix:
        """The exposures as an (A, U) CSR matrix with its own arrays."""
        indptr = np.concatenate(([0], np.cumsum(np.bincount(self.account, minlength=self.size_a))))
        return sp.csr_matrix(
            (self.value, self.series, indptr), shape=(self.size_a, size_u), copy=True
        )


@dataclass(frozen=True, slots=True)
class OptionHoldings:
    """Accounts' option holdings for full revaluation, summed per (account, option).

    Attributes
    ----------
    account : ndarray, shape (H,), int64
        Local account index in ``[0, A)``.
    option : ndarray, shape (H,), int64
        Row of the held option in ``instrument`` (the distinct options), in ``[0, O)``.
    units : ndarray, shape (H,), float64
        Quantity x multiplier x FX rate to the base: the base-currency P&L of
        a unit change of the option's price.
    instrument : ndarray, shape (O,), int64
        The distinct options held, as instrument rows, sorted.
    size_a : int
    """

    account: I64Array1D
    option: I64Array1D
    units: F64Array1D
    instrument: I64Array1D
    size_a: int

    @classmethod
    def aggregate(
        cls,
        account: I64Array1D,
        instrument: I64Array1D,
        units: F64Array1D,
        *,
        size_a: int,
    ) -> OptionHoldings:
        """Sum raw (account, option instrument) contributions into one entry per pair."""
        held, column = np.unique(np.asarray(instrument, dtype=np.int64), return_inverse=True)
        pairs = (np.asarray(account, dtype=np.int64), column.astype(np.int64))
        summed = sp.coo_matrix(
            (np.asarray(units, dtype=np.float64), pairs), shape=(size_a, held.size)
        ).tocsr()
        summed.sum_duplicates()
        rows = np.repeat(np.arange(size_a, dtype=np.int64), np.diff(summed.indptr))
        return cls(
            _frozen(rows),
            _frozen(summed.indices.astype(np.int64)),
            _frozen(np.ascontiguousarray(summed.data, dtype=np.float64)),
            _frozen(held.astype(np.int64)),
            size_a,
        )

    @classmethod
    def empty(cls, size_a: int) -> OptionHoldings:
        """No options held."""
        none = np.empty(0, dtype=np.int64)
        return cls.aggregate(none, none, np.empty(0), size_a=size_a)


def pnl_variance(exposures: Exposures, moments: FactorMoments) -> F64Array1D:
    """Variance of each account's P&L over one model period, ``w^T (B F B^T + D) w``.

    Returns
    -------
    ndarray, shape (A,), float64
        In base currency squared.
    """
    a = exposures.size_a
    b, k = moments.loadings, moments.factor_cov.shape[0]
    factor_exposure = np.empty((a, k))
    for j in range(k):  # K bincounts, each O(E)
        factor_exposure[:, j] = np.bincount(
            exposures.account, exposures.value * b[exposures.series, j], a
        )
    systematic = np.einsum("ak,kl,al->a", factor_exposure, moments.factor_cov, factor_exposure)
    specific = np.bincount(
        exposures.account, exposures.value**2 * moments.specific[exposures.series], a
    )
    variance: F64Array1D = np.maximum(systematic + specific, 0.0)
    return variance


def parametric_var(
    exposures: Exposures,
    moments: FactorMoments,
    *,
    confidences: Sequence[float],
    horizon_scale: float,
) -> F64Array2D:
    """Parametric (delta-normal) VaR of every account under a factor model's moments.

    ``horizon_scale`` is the horizon in model periods (it multiplies variances).

    Returns
    -------
    ndarray, shape (A, L), float64
        Positive numbers are losses.
    """
    sigma = np.sqrt(pnl_variance(exposures, moments) * horizon_scale)
    return np.stack([z_score(c) * sigma for c in confidences], axis=1).reshape(
        exposures.size_a, len(confidences)
    )


def option_scenario_pnl(
    spot: F64Array1D,
    strike: F64Array1D,
    t_years: F64Array1D,
    vol: F64Array1D,
    rate: F64Array1D,
    dividend_yield: F64Array1D,
    is_call: BoolArray1D,
    returns: F64Array2D,
) -> F64Array2D:
    """Change of each option's value when its underlying moves by each scenario's return.

    Full Black-Scholes-Merton revaluation at the same time to expiry, rate,
    yield and volatility: ``V(S exp(r)) - V(S)``.

    Parameters
    ----------
    spot, strike, t_years, vol, rate, dividend_yield : ndarray, shape (O,), float64
    is_call : ndarray, shape (O,), bool
    returns : ndarray, shape (S, O), float64
        Each scenario's log return of each option's underlying.

    Returns
    -------
    ndarray, shape (O, S), float64
        Per unit of the option.
    """
    s, o = returns.shape
    if spot.shape != (o,):
        raise ShapeError("spot", (o,), spot.shape)

    def tiled(x: np.ndarray) -> np.ndarray:
        return np.repeat(x, s + 1)  # option-major: (O, 1 + S) flattened

    shocked = np.concatenate([np.zeros((o, 1)), np.asarray(returns, dtype=np.float64).T], axis=1)
    values = black_scholes(
        (spot[:, None] * np.exp(shocked)).ravel(),
        tiled(strike),
        tiled(t_years),
        tiled(vol),
        tiled(rate),
        tiled(is_call),
        dividend_yield=tiled(dividend_yield),
    ).price.reshape(o, s + 1)
    pnl: F64Array2D = values[:, 1:] - values[:, :1]
    return pnl


def historical_var(
    exposures: Exposures,
    scenarios: F64Array2D,
    *,
    confidences: Sequence[float],
    return_scale: float,
    options: OptionHoldings | None = None,
    option_pnl: F64Array2D | None = None,
    chunk: int = 8192,
) -> F64Array2D:
    """Historical-simulation VaR of every account, its positions revalued in each scenario.

    The P&L of every account in every scenario is a sparse x dense product
    (exposures times the series' simple returns ``exp(r x return_scale) - 1``)
    plus, for options revalued in full, another (holdings times each option's
    change of value, ``option_pnl``), done ``chunk`` accounts at a time so
    memory stays at ``chunk x S``.

    Parameters
    ----------
    exposures : Exposures
        The exposures the returns act on linearly (for options revalued in
        full, only their currency translation).
    scenarios : ndarray, shape (S, U), float64
        Past log returns, one row per scenario.
    return_scale : float
        Multiplies log returns to the horizon (the square root of its length
        in scenario periods).
    options, option_pnl : OptionHoldings and ndarray, shape (O, S), float64
        The options revalued in full and their change of value per unit in
        each scenario (``option_scenario_pnl`` at the scaled returns).

    Returns
    -------
    ndarray, shape (A, L), float64
        Loss at each confidence (positive is a loss), the ``1 - c`` quantile
        by ``QUANTILE_METHOD``; NaN without scenarios.
    """
    a = exposures.size_a
    s, u = scenarios.shape
    if s == 0:
        return np.full((a, len(confidences)), np.nan)
    moves = np.expm1(np.ascontiguousarray(scenarios.T) * return_scale)  # (U, S)
    value = exposures.matrix(u)
    held = None
    if options is not None and options.instrument.size:
        expected = (options.instrument.size, s)
        if option_pnl is None or option_pnl.shape != expected:
            raise ShapeError("option_pnl", expected, () if option_pnl is None else option_pnl.shape)
        indptr = np.concatenate(([0], np.cumsum(np.bincount(options.account, minlength=a))))
        held = sp.csr_matrix(
            (options.units, options.option, indptr),
            shape=(a, options.instrument.size),
            copy=True,
        )
    levels = [1.0 - c for c in confidences]
    out = np.empty((a, len(confidences)))
    for begin in range(0, a, chunk):
        rows = slice(begin, min(begin + chunk, a))
        pnl = value[rows] @ moves  # (chunk, S)
        if held is not None:
            pnl += held[rows] @ option_pnl
        out[rows] = -np.quantile(pnl, levels, axis=1, method=QUANTILE_METHOD).T
    return out
