"""The in-memory idempotency store: the embedded default for one process.

Records live in an insertion-ordered dict. Every write moves the record to
the end and sets its expiry to ``now + retention`` (or keeps a claim's), so
the dict stays ordered by expiry and expired records are dropped from the
front in amortised O(1) on each claim. Past ``memory_max_records``, the
oldest record goes first even inside the retention (the ledger's dedupe on
transfer id still holds; only the byte-identical replay is lost). Every
method runs without awaiting, which makes it atomic on the event loop.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

from orders.commands import Command
from orders.idempotency import (
    Claimed,
    ClaimOutcome,
    IdempotencyRecord,
    RecordState,
    StoredResponse,
    decide,
)
from orders.settings import IdempotencySettings
from orders.types import TransferId

__all__ = ["MemoryIdempotencyStore"]


class MemoryIdempotencyStore:
    """Idempotency records in process memory; see the module docstring."""

    def __init__(self, settings: IdempotencySettings | None = None) -> None:
        self._settings = settings or IdempotencySettings()
        self._records: OrderedDict[TransferId, IdempotencyRecord] = OrderedDict()

    async def start(self) -> None:
        """Nothing to connect."""

    async def stop(self) -> None:
        """Nothing to release (records survive a stop and start, not the process)."""

    def __len__(self) -> int:
        return len(self._records)

    async def claim(
        self, transfer_id: TransferId, fingerprint: str, owner: str, now_ns: int
    ) -> ClaimOutcome:
        self._drop_expired(now_ns)
        record = self._records.get(transfer_id)
        outcome = decide(record, fingerprint, owner, now_ns)
        if isinstance(outcome, Claimed):
            lease_until_ns = now_ns + self._settings.lease_ns
            if record is not None and record.owner == owner and record.expires_at_ns > now_ns:
                pass  # a repeated claim of our own: nothing changes
            elif outcome.is_takeover:
                assert record is not None  # a takeover needs a record to take over
                self._records[transfer_id] = dataclasses.replace(
                    record, owner=owner, lease_until_ns=lease_until_ns
                )
            else:
                self._records.pop(transfer_id, None)
                self._records[transfer_id] = IdempotencyRecord(
                    transfer_id=transfer_id,
                    fingerprint=fingerprint,
                    state=RecordState.IN_PROGRESS,
                    owner=owner,
                    lease_until_ns=lease_until_ns,
                    expires_at_ns=now_ns + self._settings.retention_ns,
                )
                self._evict_over_bound()
        return outcome

    async def prepare(
        self, transfer_id: TransferId, owner: str, command: Command, now_ns: int
    ) -> bool:
        record = self._owned(transfer_id, owner)
        if record is None:
            return False
        self._records[transfer_id] = dataclasses.replace(
            record, command=command, lease_until_ns=now_ns + self._settings.lease_ns
        )
        return True

    async def complete(
        self, transfer_id: TransferId, owner: str, response: StoredResponse, now_ns: int
    ) -> bool:
        current = self._records.get(transfer_id)
        if current is not None and current.owner == owner and current.response is not None:
            return True  # completed by this owner already
        record = self._owned(transfer_id, owner)
        if record is None:
            return False
        del self._records[transfer_id]
        self._records[transfer_id] = dataclasses.replace(
            record,
            state=RecordState.COMPLETED,
            response=response,
            expires_at_ns=now_ns + self._settings.retention_ns,
        )
        return True

    async def release(self, transfer_id: TransferId, owner: str) -> bool:
        record = self._owned(transfer_id, owner)
        if record is None:
            return False
        if record.command is None:
            del self._records[transfer_id]
        else:
            self._records[transfer_id] = dataclasses.replace(record, lease_until_ns=0)
        return True

    async def get(self, transfer_id: TransferId, now_ns: int) -> IdempotencyRecord | None:
        record = self._records.get(transfer_id)
        if record is None or record.expires_at_ns <= now_ns:
            return None
        return record

    def _owned(self, transfer_id: TransferId, owner: str) -> IdempotencyRecord | None:
        record = self._records.get(transfer_id)
        if record is None or record.owner != owner or record.state is not RecordState.IN_PROGRESS:
            return None
        return record

    def _drop_expired(self, now_ns: int) -> None:
        records = self._records
        while records:
            first = next(iter(records.values()))
            if first.expires_at_ns > now_ns:
                return
            records.popitem(last=False)

    def _evict_over_bound(self) -> None:
        while len(self._records) > self._settings.memory_max_records:
            self._records.popitem(last=False)
