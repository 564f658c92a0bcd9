"""Market risk: an online EWMA factor covariance, parametric and historical VaR.

Dimensions: U = risk series (one per priced instrument, plus one per
currency), K = factors, S = historical scenarios, A = accounts, E = summed
(account, series) exposures.

**Returns.** Every ``sample_interval_s`` the caller hands ``observe`` the
level of every series (instrument marks, and the USD value of each currency).
Log returns against the previous sample update the estimates; a series
without a price in either sample contributes a zero return. A sample taken
late (``intervals`` > 1) has its returns scaled to one interval by the
square root of time, so the moments stay per interval.

**EWMA factor model (RiskMetrics, lambda = 0.94).** A full U x U covariance is
too big for thousands of instruments, so returns are modelled as
``r = B f + e``: ``f`` holds one factor per group of series (the instrument's
sector, or ``fx`` for currencies), each the equal-weighted mean return of its
group. All second moments are EWMA estimates with the same lambda:

- the factor covariance ``F`` (K x K);
- the cross moments of series and factors ``C`` (U x K), giving the loadings
  ``B = C F^-1``;
- each series' variance ``v`` (U,), giving the specific variance
  ``d = max(v - diag(B F B^T), 0)``.

The covariance of series is then ``B F B^T + diag(d)``; its accuracy against
the full EWMA covariance is tested on a small universe.

**Horizon.** Moments are per sample interval; a horizon of ``h`` seconds
scales variances by ``h / sample_interval_s`` and returns by its square root
(the square-root-of-time rule). One day is ``TRADING_SECONDS_PER_DAY``.

**Parametric VaR** at confidence ``c``: ``z_c x sqrt(e_f^T F e_f + sum w^2 d)``
with ``e_f = B^T w`` for the account's exposures ``w`` (base currency).

**Historical VaR** over the last ``window`` samples: the account's P&L in
each scenario (exposure x return, plus half the dollar gamma times the
squared return for options), and the loss at the ``1 - c`` quantile
(linear interpolation).

NaN policy: exposures must be finite (callers leave unpriced positions
out); a model with fewer than ``min_samples`` samples is not ready and its
VaR is NaN.

Every kernel leaves its inputs unchanged; the arrays of ``Exposures`` are
read-only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtri

from pricing.errors import ShapeError
from pricing.types import F64Array1D, F64Array2D, I64Array1D

__all__ = [
    "TRADING_SECONDS_PER_DAY",
    "Exposures",
    "FactorModel",
    "historical_var",
    "parametric_var",
    "z_score",
]

TRADING_SECONDS_PER_DAY: Final = 6.5 * 3600
_RIDGE: Final = 1e-12


def z_score(confidence: float) -> float:
    """The standard normal quantile of ``confidence`` (1.6449 at 0.95)."""
    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must be within (0.5, 1), was {confidence}")
    return float(ndtri(confidence))


class FactorModel:
    """Online EWMA estimates of factor covariance, loadings and specific variance.

    Parameters
    ----------
    group_of : ndarray, shape (U,), int64
        Factor group of each series, in ``[0, K)``.
    lam : float
        EWMA decay (RiskMetrics: 0.94).
    window : int
        Scenarios kept for historical simulation.
    min_samples : int
        Samples needed before the model is ready.
    """

    def __init__(self, group_of: I64Array1D, *, lam: float, window: int, min_samples: int) -> None:
        if not 0 < lam < 1:
            raise ValueError(f"lam must be within (0, 1), was {lam}")
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
        self.factor_cov = np.zeros((k, k))
        self.cross = np.zeros((u, k))
        self.variance = np.zeros(u)
        self.full_cov: F64Array2D | None = None
        self._scenarios = np.zeros((window, u))
        self.samples = 0
        self._last: F64Array1D | None = None

    @property
    def is_ready(self) -> bool:
        """Whether enough samples were seen to report VaR."""
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
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.log(levels / last)
        r[~np.isfinite(r)] = 0.0
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
        if self.full_cov is not None:
            self.full_cov *= lam
            self.full_cov += w * np.outer(r, r)
        self._scenarios[self.samples % self.window] = r
        self.samples += 1

    def loadings(self) -> F64Array2D:
        """``B = C F^-1``, shape (U, K) (a tiny ridge keeps F invertible)."""
        ridged = self.factor_cov + _RIDGE * np.eye(self.size_k)
        loadings = np.linalg.solve(ridged, self.cross.T).T
        return np.asarray(loadings, dtype=np.float64)

    def specific_variance(self, loadings: F64Array2D) -> F64Array1D:
        """``max(v - diag(B F B^T), 0)``, shape (U,)."""
        systematic = np.einsum("uk,kl,ul->u", loadings, self.factor_cov, loadings)
        specific: F64Array1D = np.maximum(self.variance - systematic, 0.0)
        return specific

    def covariance(self) -> F64Array2D:
        """The model's series covariance ``B F B^T + diag(d)``, shape (U, U); for small U."""
        b = self.loadings()
        covariance: F64Array2D = b @ self.factor_cov @ b.T + np.diag(self.specific_variance(b))
        return covariance

    def scenarios(self) -> F64Array2D:
        """The last ``min(samples, window)`` return vectors, oldest first, shape (S, U)."""
        s = min(self.samples, self.window)
        start = self.samples % self.window if self.samples >= self.window else 0
        order = (np.arange(s) + start) % self.window
        return self._scenarios[order]


@dataclass(frozen=True, slots=True)
class Exposures:
    """Accounts' exposures to risk series, summed per (account, series).

    Attributes
    ----------
    account : ndarray, shape (E,), int64
        Local account index in ``[0, A)``.
    series : ndarray, shape (E,), int64
        Risk series in ``[0, U)``.
    value : ndarray, shape (E,), float64
        Exposure in base currency (delta-adjusted).
    gamma : ndarray, shape (E,), float64
        Dollar gamma per 1% move, base currency (0 except options).
    size_a : int
        Number of accounts.
    """

    account: I64Array1D
    series: I64Array1D
    value: F64Array1D
    gamma: F64Array1D
    size_a: int

    @classmethod
    def aggregate(
        cls,
        account: Sequence[int] | I64Array1D,
        series: Sequence[int] | I64Array1D,
        value: Sequence[float] | F64Array1D,
        gamma: Sequence[float] | F64Array1D,
        *,
        size_a: int,
        size_u: int,
    ) -> Exposures:
        """Sum raw (account, series) contributions into one entry per pair, sorted by pair.

        One sparse COO -> CSR conversion sums both: the value and the gamma
        ride as the real and imaginary parts of one complex number. (It is
        linear time and releases the GIL, unlike a sort-based unique.)
        """
        data = np.asarray(value, dtype=np.float64) + 1j * np.asarray(gamma, dtype=np.float64)
        pairs = (np.asarray(account, dtype=np.int64), np.asarray(series, dtype=np.int64))
        summed = sp.coo_matrix((data, pairs), shape=(size_a, size_u)).tocsr()
        summed.sum_duplicates()  # canonical: one entry per pair, columns sorted
        rows = np.repeat(np.arange(size_a, dtype=np.int64), np.diff(summed.indptr))
        return cls(
            _frozen(rows),
            _frozen(summed.indices.astype(np.int64)),
            _frozen(np.ascontiguousarray(summed.data.real)),
            _frozen(np.ascontiguousarray(summed.data.imag)),
            size_a,
        )


def _frozen(array: np.ndarray[tuple[int], np.dtype[np.generic]]) -> np.ndarray:
    # Snapshots are shared by the kernels of a run: a kernel that writes into
    # one (a sparse matrix built over it and compacted in place) fails
    # loudly instead of changing what the next kernel sees.
    array.flags.writeable = False
    return array


def parametric_var(
    exposures: Exposures, model: FactorModel, *, confidences: Sequence[float], horizon_scale: float
) -> F64Array2D:
    """Parametric (delta-normal) VaR of every account under the factor model.

    ``horizon_scale`` multiplies variances (horizon / sample interval).

    Returns
    -------
    ndarray, shape (A, len(confidences)), float64
        Positive numbers are losses; NaN while the model is not ready.
    """
    a = exposures.size_a
    if not model.is_ready:
        return np.full((a, len(confidences)), np.nan)
    b = model.loadings()
    d = model.specific_variance(b)
    factor_exposure = np.empty((a, model.size_k))
    for k in range(model.size_k):  # K bincounts, each O(E)
        factor_exposure[:, k] = np.bincount(
            exposures.account, exposures.value * b[exposures.series, k], a
        )
    systematic = np.einsum("ak,kl,al->a", factor_exposure, model.factor_cov, factor_exposure)
    specific = np.bincount(exposures.account, exposures.value**2 * d[exposures.series], a)
    sigma = np.sqrt(np.maximum(systematic + specific, 0.0) * horizon_scale)
    return np.stack([z_score(c) * sigma for c in confidences], axis=1)


def historical_var(
    exposures: Exposures,
    scenarios: F64Array2D,
    *,
    confidences: Sequence[float],
    return_scale: float,
    chunk: int = 8192,
) -> F64Array2D:
    """Historical-simulation VaR of every account.

    The P&L of every account in every scenario is two sparse x dense products
    (exposures times returns, dollar gammas times squared returns), done for
    ``chunk`` accounts at a time so memory stays at ``chunk x S``.

    Parameters
    ----------
    scenarios : ndarray, shape (S, U), float64
        Past per-sample return vectors.
    return_scale : float
        Multiplies returns to the horizon (square root of the variance scale).

    Returns
    -------
    ndarray, shape (A, len(confidences)), float64
        Loss at each confidence (positive is a loss); NaN without scenarios.
    """
    a = exposures.size_a
    s, u = scenarios.shape
    if s == 0:
        return np.full((a, len(confidences)), np.nan)
    returns = np.ascontiguousarray(scenarios.T) * return_scale  # (U, S)
    squared = 0.5 * 100.0 * returns * returns
    # Entries are sorted by account (``aggregate``), so rows are contiguous runs.
    # The matrices get their own arrays (copy=True): scipy shares the ones it
    # is given, and the gamma matrix drops its explicit zeros in place.
    indptr = np.concatenate(([0], np.cumsum(np.bincount(exposures.account, minlength=a))))
    value = sp.csr_matrix((exposures.value, exposures.series, indptr), shape=(a, u), copy=True)
    gamma = sp.csr_matrix((exposures.gamma, exposures.series, indptr), shape=(a, u), copy=True)
    gamma.eliminate_zeros()
    levels = [1.0 - c for c in confidences]
    out = np.empty((a, len(confidences)))
    for begin in range(0, a, chunk):
        rows = slice(begin, min(begin + chunk, a))
        pnl = value[rows] @ returns + gamma[rows] @ squared  # (chunk, S)
        out[rows] = -np.quantile(pnl, levels, axis=1).T
    return out
