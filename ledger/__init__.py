"""The reference payment/ledger backend: an append-only double-entry ledger.

Core (pure): ``money`` (units and rounding), ``journal`` (postings, holds,
batches, the hash chain), ``positions`` (exact average cost), ``venue``
(the simulated execution model), ``saga`` (orders and payments), ``state``,
``accounts`` (the portfolio's records from ledger state), ``seed``.
Adapters: ``sqlite``, ``postgres`` (the store port in ``store``), ``inbox``
(the embedded command bus), ``kafka``, ``bank`` (the simulated payment
rail), ``relay`` (the outbox relay) and ``service`` (the asyncio service).
"""

__all__: list[str] = []
