"""Accounts as the portfolio engine needs them, exact, from the ledger's stored state.

``load_accounts`` reads one consistent snapshot and returns, per client
account, its cash per currency (minor units) and, per position, the exact
quantity, average cost, realised P&L and commission, plus the day-open
quantity and the day's traded value for a given day start (from the
fills since then). ``LedgerAccount.to_record`` turns it into the
portfolio's ``AccountRecord`` (floats), versioned by the account's last
ledger sequence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from ledger.money import from_minor, from_units, is_cash_asset
from ledger.positions import ExactPosition
from ledger.state import ClientState
from ledger.store import LedgerStore, StoredClient
from orders.types import AccountId
from portfolio.store import AccountRecord
from portfolio.types import PositionState
from pricing.instruments import InstrumentMaster

__all__ = [
    "LedgerAccount",
    "LedgerPosition",
    "LedgerSnapshot",
    "client_state",
    "load_accounts",
]


@dataclass(frozen=True, slots=True)
class LedgerPosition:
    """A position, exact: quantities in the instrument's quantity, money in its currency."""

    quantity: Decimal
    avg_cost: Decimal
    realised_pnl: Decimal
    commission: Decimal
    day_open_quantity: Decimal
    day_trade_value: Decimal


@dataclass(frozen=True, slots=True)
class LedgerAccount:
    """A client account, exact; ``version`` is the last ledger seq that touched it."""

    account_id: AccountId
    base_currency: str
    version: int
    cash_minor: Mapping[str, int] = field(default_factory=dict)
    positions: Mapping[str, LedgerPosition] = field(default_factory=dict)

    def to_record(self) -> AccountRecord:
        """The portfolio engine's record of this account (floats, as it computes in)."""
        return AccountRecord(
            account=self.account_id,
            base_currency=self.base_currency,
            version=self.version,
            cash={c: float(from_minor(a, c)) for c, a in self.cash_minor.items()},
            positions={
                s: PositionState(
                    quantity=float(p.quantity),
                    avg_cost=float(p.avg_cost),
                    realised_pnl=float(p.realised_pnl),
                    commission=float(p.commission),
                    day_open_quantity=float(p.day_open_quantity),
                    day_trade_value=float(p.day_trade_value),
                )
                for s, p in self.positions.items()
            },
        )


@dataclass(frozen=True, slots=True)
class LedgerSnapshot:
    """Every client account, and the ledger's last seq when they were read."""

    accounts: Mapping[AccountId, LedgerAccount]
    ledger_seq: int


def client_state(stored: StoredClient, master: InstrumentMaster) -> ClientState:
    """The saga's view of a stored client (positions in instrument quantity)."""
    positions = {}
    for symbol, p in stored.positions.items():
        instrument = master[master.ix(symbol)]
        positions[symbol] = ExactPosition(
            from_units(p.quantity_units, instrument), p.avg_cost, p.realised_pnl, p.commission
        )
    return ClientState(stored.account_id, stored.base_currency, dict(stored.balances), positions)


async def load_accounts(
    store: LedgerStore, master: InstrumentMaster, *, day_start_ns: int
) -> LedgerSnapshot:
    """Read every client account from ``store``, with day values since ``day_start_ns``."""
    rows = await store.snapshot(day_start_ns)
    traded: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
    for account, symbol, units, price in rows.day_fills:
        instrument = master[master.ix(symbol)]
        quantity = from_units(units, instrument)
        moved, value = traded.get((account, symbol), (Decimal(0), Decimal(0)))
        traded[(account, symbol)] = (moved + quantity, value + quantity * price)
    accounts = {}
    for stored in rows.clients:
        cash = {
            asset.split(":", 1)[1]: b.balance
            for asset, b in stored.balances.items()
            if is_cash_asset(asset)
        }
        positions = {}
        for symbol, p in stored.positions.items():
            instrument = master[master.ix(symbol)]
            quantity = from_units(p.quantity_units, instrument)
            moved, value = traded.get((stored.account_id, symbol), (Decimal(0), Decimal(0)))
            positions[symbol] = LedgerPosition(
                quantity, p.avg_cost, p.realised_pnl, p.commission, quantity - moved, value
            )
        accounts[stored.account_id] = LedgerAccount(
            stored.account_id, stored.base_currency, stored.last_seq, cash, positions
        )
    return LedgerSnapshot(accounts, rows.ledger_seq)
