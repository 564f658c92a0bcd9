"""Operator functions the ``tickgate ledger`` CLI calls: verify, and the dead-letter queue.

Redrive is audit-logged twice: a ``dlq_audit`` row per letter (append-only)
and an INFO line naming the actor.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from ledger.store import DeadLetter, LedgerStore
from ledger.verify import VerifyReport

__all__ = ["RawCommandSink", "dlq_list", "dlq_redrive", "verify"]

logger = logging.getLogger(__name__)


class RawCommandSink(Protocol):
    """Where redriven commands are re-submitted: ``InboxBus`` or ``KafkaCommandProducer``."""

    async def submit_raw(self, wires: Sequence[str]) -> None: ...


async def verify(store: LedgerStore) -> VerifyReport:
    """Check the store (see ``ledger.verify``); ``report.is_clean`` decides the exit code."""
    return await store.verify()


async def dlq_list(
    store: LedgerStore, *, include_redriven: bool = False, limit: int = 1000
) -> list[DeadLetter]:
    """Dead letters, oldest first."""
    return await store.dead_letters(include_redriven=include_redriven, limit=limit)


async def dlq_redrive(
    store: LedgerStore, sink: RawCommandSink, dlq_ids: Sequence[int], *, actor: str, now_ns: int
) -> list[DeadLetter]:
    """Mark letters redriven and re-submit their raw commands; returns those redriven.

    A letter is redriven once. Marking comes first, so a crash in between
    loses the re-submission rather than doubling it; the letter stays
    listed with ``include_redriven`` and can be submitted again by hand.
    """
    letters = await store.mark_redriven(dlq_ids, actor, now_ns)
    for letter in letters:
        logger.info(
            "dead letter %d (%s, transfer %s) redriven by %s",
            letter.dlq_id,
            letter.reason,
            letter.transfer_id,
            actor,
            extra={"event": "ledger.dead_letter_redriven"},
        )
    if letters:
        await sink.submit_raw([letter.raw for letter in letters])
    return letters
