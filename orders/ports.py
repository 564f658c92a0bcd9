"""The ports ``OrderEntry`` awaits, gathered so the composition root passes one value.

- ``IdempotencyStore`` (``orders.idempotency``): ``orders.memory``, ``orders.redis``.
- ``CommandBus`` and ``CommandLookup`` (``orders.bus``): ``orders.kafka`` and
  the ledger's embedded inbox for the bus; the ledger for the lookup.
- ``OrderView`` (``orders.views``): the ledger's store.
- ``AccountView`` (``orders.risk``): the gateway, over the PortfolioEngine
  and the PriceBook.
"""

from __future__ import annotations

from dataclasses import dataclass

from orders.bus import CommandBus, CommandLookup
from orders.idempotency import IdempotencyStore
from orders.risk import AccountView
from orders.views import OrderView

__all__ = ["EntryPorts"]


@dataclass(frozen=True, slots=True)
class EntryPorts:
    """The adapters one ``OrderEntry`` talks to."""

    idempotency: IdempotencyStore
    bus: CommandBus
    lookup: CommandLookup
    orders: OrderView
    accounts: AccountView
