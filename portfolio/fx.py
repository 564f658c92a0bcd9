"""FX conversion from live FX pair prices, pivoting through USD.

Dimensions: M = instruments, C = currencies.

For every currency the master lists an FX pair against USD (EURUSD, GBPUSD,
USDJPY); ``usd_per[c]`` is the USD value of one unit of ``c`` from that
pair's mid (inverted for USD-based pairs). The rate from ``a`` to ``b`` is
``usd_per[a] / usd_per[b]``, so cross rates are consistent with each other.
A rate is exactly 1 only from a currency to itself: no missing rate is ever
taken as 1. A rate whose pair has no price is NaN and ``UNPRICED``; one whose
pair is stale is ``STALE``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from portfolio.errors import PortfolioError
from portfolio.types import Status
from pricing.instruments import CURRENCIES, InstrumentMaster, InstrumentType
from pricing.types import BoolArray1D, F64Array1D, F64Array2D, I64Array1D, U8Array1D

__all__ = ["FxTable", "PIVOT"]

PIVOT = "USD"


class FxTable:
    """Which FX pair prices each currency, and the conversion matrix from mids.

    Attributes
    ----------
    currencies : tuple of str, length C
        Currency codes; a currency's position is its ``currency_ix``.
    pair_ix : ndarray, shape (C,), int64
        Instrument row of each currency's pair against USD; -1 for USD.
    is_inverted : ndarray, shape (C,), bool
        True where the pair is USD-based (USDJPY quotes JPY per USD).
    """

    def __init__(self, master: InstrumentMaster, currencies: Sequence[str] = CURRENCIES) -> None:
        self.currencies = tuple(currencies)
        self.currency_ix = {c: i for i, c in enumerate(self.currencies)}
        pair_ix = np.full(len(self.currencies), -1, dtype=np.int64)
        inverted = np.zeros(len(self.currencies), dtype=np.bool_)
        for ix, instrument in enumerate(master):
            if instrument.type is not InstrumentType.FX:
                continue
            base, quote = instrument.base_currency, instrument.currency
            if quote == PIVOT and base in self.currency_ix:
                pair_ix[self.currency_ix[base]] = ix
            elif base == PIVOT and quote in self.currency_ix:
                pair_ix[self.currency_ix[quote]] = ix
                inverted[self.currency_ix[quote]] = True
        missing = [
            c
            for c, ix in zip(self.currencies, pair_ix.tolist(), strict=True)
            if ix < 0 and c != PIVOT
        ]
        if missing:
            raise PortfolioError(f"no FX pair against {PIVOT} for {', '.join(missing)}")
        self.pair_ix: I64Array1D = pair_ix
        self.is_inverted: BoolArray1D = inverted
        # Instruments whose price moves some rate, and the currency each moves.
        self.rate_instruments: I64Array1D = pair_ix[pair_ix >= 0]

    def usd_per(self, mid: F64Array1D, is_stale: BoolArray1D) -> tuple[F64Array1D, U8Array1D]:
        """USD per unit of each currency, and its status.

        Parameters
        ----------
        mid : ndarray, shape (M,), float64
            Mid prices from the PriceBook (NaN: no price).
        is_stale : ndarray, shape (M,), bool
            PriceBook staleness flags.

        Returns
        -------
        usd_per : ndarray, shape (C,), float64
        status : ndarray, shape (C,), uint8
            ``Status`` per currency.
        """
        has_pair = self.pair_ix >= 0
        ix = np.where(has_pair, self.pair_ix, 0)
        pair_mid = mid[ix]
        with np.errstate(divide="ignore"):
            rate = np.where(self.is_inverted, 1.0 / pair_mid, pair_mid)
        usd_per = np.where(has_pair, rate, 1.0)
        missing = has_pair & ~(pair_mid > 0)
        usd_per[missing] = np.nan
        stale = has_pair & is_stale[ix]
        status = np.where(missing, Status.UNPRICED, np.where(stale, Status.STALE, Status.OK))
        return usd_per, status.astype(np.uint8)

    @staticmethod
    def matrix(usd_per: F64Array1D, status: U8Array1D) -> tuple[F64Array2D, np.ndarray]:
        """Conversion rates and statuses between every pair of currencies.

        Returns
        -------
        rate : ndarray, shape (C, C), float64
            ``rate[a, b]`` converts an amount in currency ``a`` into ``b``;
            exactly 1 on the diagonal.
        status : ndarray, shape (C, C), uint8
            The worse of the two currencies' statuses; OK on the diagonal.
        """
        rate = usd_per[:, None] / usd_per[None, :]
        np.fill_diagonal(rate, 1.0)
        pair_status = np.maximum(status[:, None], status[None, :])
        np.fill_diagonal(pair_status, Status.OK)
        return rate, pair_status
