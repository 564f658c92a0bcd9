"""The position cache: keeping the position store (Redis or memory) in step with the engine.

At startup ``warm_start`` loads the store and keeps each cached account whose
version is not behind the truth's (the ledger; until it exists, the positions
file or the demo seed); accounts behind or missing are rebuilt from the truth
and written back. Afterwards, accounts changed by fills are marked dirty and
written every ``flush_interval_ms``, in pipelined batches of at most
``FLUSH_BATCH`` accounts with a yield to the event loop between them, so
even a full resync of every account never stalls the loop for long.

When the store is unreachable the engine keeps serving from memory: the
cache is marked degraded (health endpoint, metric, one warning), writes are
retried with backoff, dirty accounts are kept, and when the store answers
again every account is written (a restarted Redis may have lost everything).
Nothing is lost.

A store can also lose its data while it answers: a Redis restarted without
persistence between two checks, or emptied. Once every account is written
the cache sets the store's *sync mark* (or adopts the one another node
set), and every ``check_interval_ms`` reads it back. A missing or changed
mark means the data may be gone: the cache is degraded until every account
has been written again, at once, without waiting for a change.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from gateway.backoff import Backoff
from gateway.metrics import Metrics
from gateway.settings import PositionCacheSettings
from portfolio.errors import StoreUnavailable
from portfolio.store import AccountRecord, PositionStore
from portfolio.types import AccountId

__all__ = ["FLUSH_BATCH", "PositionCache"]

FLUSH_BATCH: Final = 250
"""Accounts per store write."""

logger = logging.getLogger(__name__)


class PositionCache:
    """Writes dirty accounts to the store; degrades and resyncs around outages."""

    def __init__(
        self,
        store: PositionStore,
        *,
        name: str,
        settings: PositionCacheSettings,
        records_of: Callable[[Sequence[AccountId]], list[AccountRecord]],
        problem: Callable[[AccountRecord], str | None] = lambda record: None,
        all_accounts: Callable[[], list[AccountId]],
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.name = name
        self._settings = settings
        self._records_of = records_of
        self._problem = problem
        self._all_accounts = all_accounts
        self._dirty: set[AccountId] = set()
        self._wake = asyncio.Event()
        self.is_degraded = False
        self._needs_full_resync = False
        # The store's sync mark as last seen; None until every account was written.
        self._sync_mark: str | None = None
        metrics.gauge(
            "positions_cache_degraded",
            "1 while the position cache cannot be written.",
            lambda: float(self.is_degraded),
        )
        metrics.gauge(
            "positions_cache_dirty", "Accounts waiting to be written.", lambda: len(self._dirty)
        )

    async def warm_start(
        self, truth: Mapping[AccountId, AccountRecord]
    ) -> dict[AccountId, AccountRecord]:
        """The records to start from: cached where current, rebuilt where behind."""
        try:
            cached = await self.store.load()
        except StoreUnavailable as e:
            self._degrade(e)
            self._needs_full_resync = True
            return dict(truth)
        records: dict[AccountId, AccountRecord] = {}
        unusable = differing = 0
        for account, record in truth.items():
            hit = cached.get(account)
            if hit is not None and (problem := self._problem(hit)) is not None:
                # E.g. an instrument since removed from the master: a miss.
                logger.warning(
                    "ignoring cached %s",
                    problem,
                    extra={"event": "positions.cached_account_ignored"},
                )
                unusable += 1
                hit = None
            if hit is not None and hit.version >= record.version:
                differing += hit.version == record.version and hit != record
                records[account] = hit
            else:
                records[account] = record
                self._dirty.add(account)
        if differing:
            logger.warning(
                "positions: %d cached accounts differ from the truth at the same version; "
                "the cache is kept (raise the version to replace it)",
                differing,
                extra={"event": "positions.cache_differs"},
            )
        logger.info(
            "positions: %d accounts warm from the %s cache, %d rebuilt (%d unusable in the cache)",
            len(records) - len(self._dirty),
            self.name,
            len(self._dirty),
            unusable,
            extra={"event": "positions.warm_started"},
        )
        # The first flush sets the sync mark, even with nothing to write.
        self._wake.set()
        return records

    @property
    def dirty_count(self) -> int:
        """Accounts waiting to be written."""
        return len(self._dirty)

    def mark_dirty(self, accounts: list[AccountId]) -> None:
        """Schedule these accounts to be written."""
        self._dirty.update(accounts)
        self._wake.set()

    async def run(self) -> None:
        """Write dirty accounts and check the sync mark until cancelled; back off while down."""
        s = self._settings
        backoff = Backoff(s.retry_backoff_initial_ms / 1000, s.retry_backoff_max_ms / 1000)
        interval_s = s.flush_interval_ms / 1000
        check_s = s.check_interval_ms / 1000
        while True:
            if not self.is_degraded:
                try:
                    async with asyncio.timeout(check_s):
                        await self._wake.wait()
                    await asyncio.sleep(interval_s)  # gather a batch of changes
                except TimeoutError:
                    pass  # time to check the mark
            self._wake.clear()
            try:
                await self.check_store()
                await self.flush()
            except StoreUnavailable as e:
                self._degrade(e)
                await asyncio.sleep(backoff.next_delay_s())
                continue
            await asyncio.sleep(0)

    async def check_store(self) -> None:
        """Degrade and plan a full resync when the store lost its sync mark.

        Raises ``StoreUnavailable``.
        """
        if self._sync_mark is None:
            return  # not synced yet: the next flush writes every pending account
        mark = await self.store.read_sync_mark()
        if mark == self._sync_mark:
            return
        if not self.is_degraded:
            logger.warning(
                "position cache (%s) lost its data (restarted or emptied); "
                "writing every account again",
                self.name,
                extra={"event": "positions.cache_lost"},
            )
        self.is_degraded = True
        self._needs_full_resync = True
        self._sync_mark = None

    async def flush(self) -> None:
        """Write the dirty accounts (all of them after an outage), ``FLUSH_BATCH`` at a time."""
        if self._needs_full_resync:
            self._dirty.update(self._all_accounts())
        if self._dirty:
            accounts = sorted(self._dirty)
            # Taken out before the writes: an account changed meanwhile is marked again.
            self._dirty.clear()
            for start in range(0, len(accounts), FLUSH_BATCH):
                batch = accounts[start : start + FLUSH_BATCH]
                try:
                    await self.store.save(self._records_of(batch))
                except StoreUnavailable:
                    self._dirty.update(accounts[start:])
                    raise
                await asyncio.sleep(0)  # let ticks through between batches
        if self._sync_mark is None:
            # Every account is in the store now: set the mark, or adopt another node's.
            self._sync_mark = await self.store.ensure_sync_mark(secrets.token_hex(8))
        self._needs_full_resync = False
        self._recover()

    def _degrade(self, error: StoreUnavailable) -> None:
        if not self.is_degraded:
            logger.warning(
                "position cache (%s) degraded: %s; serving from memory and retrying",
                self.name,
                error,
                extra={"event": "positions.cache_degraded"},
            )
        self.is_degraded = True
        self._needs_full_resync = True

    def _recover(self) -> None:
        if self.is_degraded:
            logger.info(
                "position cache (%s) resynced; no longer degraded",
                self.name,
                extra={"event": "positions.cache_resynced"},
            )
        self.is_degraded = False
