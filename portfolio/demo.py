"""Seeded demo accounts: realistic books across equities, futures, FX and options.

Accounts are named ``DEMO-0001``, ``DEMO-0002``, ... Each has a base currency
(about 55% USD, 20% EUR, 15% GBP, 10% JPY), a size drawn around one million
USD, long-biased equities mostly from its home market, and, for some, index
and commodity futures, an FX pair position, foreign cash and listed options.
Positions were opened before today at costs near the previous close, so day
P&L starts at zero and total P&L does not. The same seed gives the same
accounts.
"""

from __future__ import annotations

import numpy as np

from portfolio.store import AccountRecord
from portfolio.types import AccountId, PositionState
from pricing.instruments import InstrumentMaster, InstrumentType

__all__ = ["demo_account_id", "demo_records"]

_BASES = ("USD", "EUR", "GBP", "JPY")
_BASE_WEIGHTS = (0.55, 0.20, 0.15, 0.10)


def demo_account_id(n: int) -> AccountId:
    """The id of the ``n``-th demo account, counting from 1: ``DEMO-0001``."""
    return AccountId(f"DEMO-{n:04d}")


def demo_records(master: InstrumentMaster, *, count: int, seed: int) -> list[AccountRecord]:
    """Generate ``count`` demo accounts, version 0 (no ledger fills yet)."""
    rng = np.random.default_rng(seed)
    usd_per = _usd_per(master)
    kinds = np.array([i.type.value for i in master])
    currency = np.array([i.currency for i in master])
    weight = master.weight
    # A custom master may lack some currencies' FX pairs: accounts then hold
    # only what can be valued in USD, and keep their books in USD.
    convertible = np.isin(currency, list(usd_per))
    equities = {c: np.flatnonzero((kinds == "equity") & (currency == c)) for c in _BASES}
    futures = np.flatnonzero((kinds == "future") & convertible)
    fx_pairs = np.flatnonzero(kinds == "fx")
    options = np.flatnonzero((kinds == "option") & convertible)
    records = []
    for n in range(1, count + 1):
        base = str(rng.choice(_BASES, p=_BASE_WEIGHTS))
        base = base if base in usd_per else "USD"
        equity_usd = float(np.exp(rng.normal(np.log(1_000_000), 0.8)))
        positions: dict[str, PositionState] = {}
        invested_usd = 0.0

        home = rng.random() < 0.7
        pool = np.concatenate(
            [equities[base]] if home and equities[base].size else [equities[c] for c in _BASES]
        )
        pool = pool[convertible[pool]]
        names = rng.choice(
            pool, size=min(pool.size, int(rng.integers(8, 21))), replace=False, p=_p(weight[pool])
        )
        for ix in names:
            is_long = rng.random() < 0.85
            notional_usd = equity_usd * rng.uniform(0.02, 0.10)
            quantity = _lots(master, ix, notional_usd / usd_per[currency[ix]])
            quantity = quantity if is_long else -quantity
            positions[master.symbols[ix]] = _opened(master, ix, quantity, rng)
            invested_usd += quantity * float(master.ref_price[ix]) * usd_per[currency[ix]]
        # A master without futures, FX or options (a custom --instruments file)
        # gets accounts without them; the draws still happen, so the default
        # master's accounts stay the same for a given seed.
        if rng.random() < 0.4 and futures.size:
            for ix in rng.choice(futures, size=int(rng.integers(1, 3)), replace=False):
                quantity = float(rng.integers(1, 6)) * (1 if rng.random() < 0.7 else -1)
                positions[master.symbols[ix]] = _opened(master, ix, quantity, rng)
        if rng.random() < 0.3 and fx_pairs.size:
            ix = int(rng.choice(fx_pairs))
            base_units = float(rng.integers(1, 50)) * 10_000 * (1 if rng.random() < 0.5 else -1)
            positions[master.symbols[ix]] = _opened(master, ix, base_units, rng)
        if rng.random() < 0.35 and options.size:
            for ix in rng.choice(options, size=int(rng.integers(1, 5)), replace=False):
                quantity = float(rng.integers(1, 21)) * (1 if rng.random() < 0.6 else -1)
                positions[master.symbols[ix]] = _opened(master, ix, quantity, rng)
                invested_usd += quantity * 100 * float(master.ref_price[ix]) * usd_per[currency[ix]]
        cash = {base: (equity_usd - invested_usd) / usd_per[base]}
        if rng.random() < 0.2:
            foreign = str(rng.choice([c for c in _BASES if c != base]))
            share = rng.uniform(0.01, 0.1)
            if foreign in usd_per:
                cash[foreign] = equity_usd * share / usd_per[foreign]
        records.append(
            AccountRecord(
                account=demo_account_id(n),
                base_currency=base,
                version=0,
                cash={c: round(a, 2) for c, a in cash.items()},
                positions=positions,
            )
        )
    return records


def _p(weights: np.ndarray) -> np.ndarray:
    normalised: np.ndarray = weights / weights.sum()
    return normalised


def _usd_per(master: InstrumentMaster) -> dict[str, float]:
    # Reference FX rates from the master's previous closes (USD per unit).
    rates = {"USD": 1.0}
    for instrument in master:
        if instrument.type is not InstrumentType.FX:
            continue
        if instrument.currency == "USD":
            rates[str(instrument.base_currency)] = float(instrument.ref_price)
        elif instrument.base_currency == "USD":
            rates[instrument.currency] = 1.0 / float(instrument.ref_price)
    return rates


def _lots(master: InstrumentMaster, ix: int, notional: float) -> float:
    # Whole lots worth about ``notional`` (instrument currency), at least one lot.
    lot = float(master.lot_size[ix])
    price = float(master.ref_price[ix])
    return max(lot, round(notional / price / lot) * lot)


def _opened(
    master: InstrumentMaster, ix: int, quantity: float, rng: np.random.Generator
) -> PositionState:
    # Held since before today, bought near the previous close.
    tick = float(master.tick_size[ix])
    cost = float(master.ref_price[ix]) * float(np.exp(rng.normal(0.0, 0.08)))
    decimals = int(master.price_decimals[ix])
    cost = round(max(tick, round(cost / tick) * tick), decimals)
    return PositionState(quantity=quantity, avg_cost=cost, day_open_quantity=quantity)
