"""An account statement: a client's entries newest first, each with its running balance.

The adapters read one page of entries in ``(seq, n)`` order, newest first,
from the client's ledger accounts (every asset, or one), plus each of those
accounts' balance just after the newest entry on the page (the materialised
balance minus whatever was posted after it, read in the same snapshot).
``statement_page`` walks the page down from there: the balance after an
entry is the balance after the newer entry of the same account minus that
newer entry's amount. So a page costs its own rows plus the entries posted
after it, never the account's whole history.

A cursor is ``<seq>:<n>`` of the last entry of a page (the oldest on it);
the next page starts strictly before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from ledger.money import Asset
from ledger.store import EntryPage, StoredEntry

__all__ = ["EntryRow", "entry_cursor", "parse_entry_cursor", "statement_page"]

EntryRow = tuple[int, int, int, str, int, str, str, int]
"""(seq, n, ledger account id, asset, amount, transfer id, kind, ts_posted), as read."""

_MAX_CURSOR_PART: Final = 19  # digits of a signed 64-bit integer


def entry_cursor(entry: StoredEntry) -> str:
    """The cursor of the page that follows ``entry``."""
    return f"{entry.seq}:{entry.leg}"


def parse_entry_cursor(cursor: str) -> tuple[int, int]:
    """``(seq, n)`` of a cursor; raises ``ValueError`` if no page handed it out."""
    seq, sep, leg = cursor.partition(":")
    if not (
        sep
        and seq.isascii()
        and seq.isdigit()
        and leg.isascii()
        and leg.isdigit()
        and len(seq) <= _MAX_CURSOR_PART
        and len(leg) <= _MAX_CURSOR_PART
    ):
        raise ValueError(f"cursor must come from a previous page, was {cursor!r:.40}")
    return int(seq), int(leg)


def statement_page(
    rows: Sequence[EntryRow], balances_after_first: Mapping[int, int], limit: int
) -> EntryPage:
    """One page from up to ``limit + 1`` rows, newest first.

    ``balances_after_first`` holds, per ledger account id on the page, the
    account's balance just after the page's first (newest) row.
    """
    running = dict(balances_after_first)
    entries: list[StoredEntry] = []
    for seq, n, account, asset, amount, transfer_id, kind, ts_posted in rows[:limit]:
        balance = running[account]
        entries.append(
            StoredEntry(seq, n, transfer_id, kind, Asset(asset), amount, balance, ts_posted)
        )
        running[account] = balance - amount
    more = len(rows) > limit
    return EntryPage(entries, entry_cursor(entries[-1]) if more and entries else None)
