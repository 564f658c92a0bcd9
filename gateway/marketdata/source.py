"""The market-data source port: what every adapter (simulator, Kafka, upstream) provides.

A source decodes and batches ticks in the way its transport allows, and the
pipeline acknowledges each batch once it is applied, with the rows the
PriceBook refused, so that the source can dead-letter them and record its
resume point.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from pricing.pricebook import RejectReason, TickBatch

__all__ = ["MarketDataSource", "Rejection", "SourceBatch"]


@dataclass(frozen=True, slots=True)
class SourceBatch:
    """A decoded batch, with what the source needs to acknowledge it.

    ``origins`` holds, per row, the source's own record (for dead-lettering),
    when it has one; ``position`` is the source's resume point after this
    batch (Kafka offsets), or None. Both are opaque to the pipeline.
    """

    ticks: TickBatch
    origins: Sequence[object] | None = None
    position: object = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row of a batch that the PriceBook refused, with the reason."""

    row: int
    reason: RejectReason


class MarketDataSource(Protocol):
    """A market-data source (port). Adapters live beside it in ``gateway.marketdata``."""

    @property
    def name(self) -> str:
        """Short name for logs and health (``simulator``, ``kafka``, ``upstream``)."""
        ...

    @property
    def is_up(self) -> bool:
        """Whether the source is currently connected and delivering."""
        ...

    async def start(self) -> None:
        """Prepare the source; must not fail because its server is down."""
        ...

    async def stop(self) -> None:
        """Release the source, committing what was acknowledged."""
        ...

    def batches(self) -> AsyncIterator[SourceBatch]:
        """Yield decoded batches until stopped; reconnects on its own."""
        ...

    async def acknowledge(self, batch: SourceBatch, rejected: Sequence[Rejection]) -> None:
        """The batch is applied: dead-letter ``rejected`` and record the position."""
        ...
