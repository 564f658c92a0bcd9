"""``verify``: the checks over a stored ledger, and their report.

1. The hash chain: every batch's ``prev_hash`` is the previous batch's
   ``hash``, and its ``hash`` is recomputed from its stored transactions and
   entries (``journal.chain_hash``).
2. Every transaction balances per asset.
3. Every materialised balance equals the sum of its account's entries, every
   ``pending`` the sum of its holds, and every position's quantity the
   balance of its position account.

The adapters run the queries; this module only holds the report and the
chain walk, so both stores check the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger.journal import GENESIS_HASH, chain_hash

__all__ = ["GENESIS_HASH", "BatchLink", "VerifyReport", "check_link"]


@dataclass(frozen=True, slots=True)
class BatchLink:
    """A stored batch: its number, links and seq range."""

    batch_no: int
    prev_hash: bytes
    hash: bytes
    first_seq: int
    last_seq: int


@dataclass(slots=True)
class VerifyReport:
    """What ``verify`` found; ``problems`` name the bad rows, first one first."""

    batches: int = 0
    transactions: int = 0
    entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def is_clean(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: clean, or the first problem and how many there are."""
        counts = f"{self.batches} batches, {self.transactions} transactions, {self.entries} entries"
        if self.is_clean:
            return f"ledger verify: clean ({counts})"
        return (
            f"ledger verify: {len(self.problems)} problem(s), first: {self.problems[0]} ({counts})"
        )


def check_link(
    previous: bytes,
    link: BatchLink,
    transactions: Sequence[tuple[int, str, str, int]],
    entries: Sequence[tuple[int, int, str, str, int]],
    report: VerifyReport,
) -> bytes:
    """Check one link against the previous hash and its recomputed hash; return its hash.

    Start the walk with ``GENESIS_HASH``.
    """
    report.batches += 1
    report.transactions += len(transactions)
    report.entries += len(entries)
    if link.prev_hash != previous:
        report.problems.append(
            f"batch {link.batch_no}: prev_hash does not match the hash of the batch before it"
        )
    if chain_hash(link.prev_hash, transactions, entries) != link.hash:
        report.problems.append(
            f"batch {link.batch_no} (seq {link.first_seq}..{link.last_seq}): "
            "hash does not match its transactions and entries"
        )
    return link.hash
