"""Seed accounts (the demo's, or any ``AccountRecord``) as deposits and fills (pure).

``seed_inputs`` turns records into ``SeedAccount`` inputs: cash rounded to
the minor unit (half to even), each position as one fill at its average
cost rounded to the instrument's tick decimals. Their transfer ids are
derived from the account and what is posted (``seed_<account>_...``), so
posting the same seed twice changes nothing: an account that exists is
skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal

from ledger.money import to_minor
from ledger.saga import SeedAccount
from portfolio.store import AccountRecord
from pricing.instruments import InstrumentMaster

__all__ = ["seed_inputs"]


def seed_inputs(
    records: Iterable[AccountRecord], master: InstrumentMaster, *, ts_event: int
) -> list[SeedAccount]:
    """One ``SeedAccount`` per record; fills are stamped ``ts_event`` (before the day starts)."""
    seeds = []
    for record in records:
        if ":" in record.account:
            raise ValueError(f"account ids may not contain ':', was {record.account!r}")
        fills = []
        for symbol, state in sorted(record.positions.items()):
            if state.quantity == 0:
                continue
            instrument = master[master.ix(symbol)]
            quantum = Decimal(1).scaleb(-instrument.price_decimals)
            price = Decimal(repr(state.avg_cost)).quantize(quantum, rounding=ROUND_HALF_EVEN)
            fills.append((symbol, Decimal(repr(state.quantity)).normalize(), price))
        cash = {c: to_minor(Decimal(repr(a)), c) for c, a in record.cash.items()}
        seeds.append(SeedAccount(record.account, record.base_currency, cash, fills, ts_event))
    return seeds
