"""The idempotency core: keys, records, the claim state machine and the store port.

A request with an ``Idempotency-Key`` runs at most once per (principal,
key). Its record lives under the request's deterministic transfer id
(``transfer_id_for(principal, key)``), which scopes keys by principal::

    (none) --claim--> IN_PROGRESS(owner, lease) --complete--> COMPLETED(response)
                        |   ^  prepare(command)
                        |   +--- claim after the lease expired (takeover: reconcile)
                        +--release--> (none), or lease expired now if a command is prepared

``decide`` is the whole decision of a claim, as a pure function of the
stored record, the request's fingerprint and the time:

- no record (or one past its retention): claim it, with a lease;
- a record with another fingerprint: ``Mismatch`` (checked on every path,
  including the replay path);
- completed: ``Replay`` the stored response;
- in progress with a live lease: ``Busy`` until the lease ends;
- in progress with an expired lease: take it over (``Claimed`` with
  ``is_takeover``), handing back the prepared command, if any, so the new
  owner reconciles with the ledger instead of running the request again.

``prepare``, ``complete`` and ``release`` are fenced by the owner token:
an owner whose lease was taken over can no longer change the record.
Adapters (``orders.memory``, ``orders.redis``) apply the same decision
atomically; one contract suite runs against both.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol, TypeAlias

from orders import problems
from orders.commands import Command
from orders.problems import Problem
from orders.types import IdempotencyKey, TransferId

__all__ = [
    "IDEMPOTENCY_KEY_HEADER",
    "MAX_KEY_LENGTH",
    "REPLAYED_HEADER",
    "Busy",
    "ClaimOutcome",
    "Claimed",
    "IdempotencyRecord",
    "IdempotencyStore",
    "Mismatch",
    "RecordState",
    "Replay",
    "StoredResponse",
    "check_key",
    "decide",
]

IDEMPOTENCY_KEY_HEADER: Final = "idempotency-key"
REPLAYED_HEADER: Final = "idempotent-replayed"
MAX_KEY_LENGTH: Final = 255


def check_key(raw: str | None) -> IdempotencyKey | Problem:
    """Return the key of an ``Idempotency-Key`` header value, or its problem.

    ``None`` (no header): ``idempotency_key_missing``. Empty, longer than 255
    characters, or with a character outside printable ASCII (0x20-0x7e):
    ``idempotency_key_invalid``.
    """
    if raw is None:
        return problems.IDEMPOTENCY_KEY_MISSING(
            "this request needs an Idempotency-Key header (a unique string per request)"
        )
    if not raw:
        return problems.IDEMPOTENCY_KEY_INVALID("the Idempotency-Key must not be empty")
    if len(raw) > MAX_KEY_LENGTH:
        return problems.IDEMPOTENCY_KEY_INVALID(
            f"the Idempotency-Key must have at most {MAX_KEY_LENGTH} characters, had {len(raw)}"
        )
    if not all(" " <= char <= "~" for char in raw):
        return problems.IDEMPOTENCY_KEY_INVALID(
            "the Idempotency-Key must be printable ASCII (0x20-0x7e)"
        )
    return IdempotencyKey(raw)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response as sent: status, the headers that matter, and the body bytes."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class RecordState(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """What the store keeps per (principal, key); times are UNIX ns.

    ``command`` is the command prepared for the bus (set before it is
    submitted); ``response`` is set exactly when ``state`` is COMPLETED.
    The record is gone (as if never written) from ``expires_at_ns`` on.
    """

    transfer_id: TransferId
    fingerprint: str
    state: RecordState
    owner: str
    lease_until_ns: int
    expires_at_ns: int
    command: Command | None = None
    response: StoredResponse | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """The caller owns the request now; ``command`` is set on a takeover that found one."""

    is_takeover: bool
    command: Command | None = None


@dataclass(frozen=True, slots=True)
class Busy:
    """Another attempt holds a live lease until ``lease_until_ns``."""

    lease_until_ns: int


@dataclass(frozen=True, slots=True)
class Replay:
    """The request completed; answer with ``response``."""

    response: StoredResponse


@dataclass(frozen=True, slots=True)
class Mismatch:
    """The key was used for a request with another fingerprint."""


ClaimOutcome: TypeAlias = Claimed | Busy | Replay | Mismatch


def decide(
    record: IdempotencyRecord | None, fingerprint: str, owner: str, now_ns: int
) -> ClaimOutcome:
    """Return the outcome of a claim by ``owner`` of ``record`` (None: no record) at ``now_ns``.

    A claim repeated by the owner that holds the lease (its first reply was
    lost, and the client library sent it again) is ``Claimed`` again.
    """
    if record is None or record.expires_at_ns <= now_ns:
        return Claimed(is_takeover=False)
    if record.fingerprint != fingerprint:
        return Mismatch()
    if record.state is RecordState.COMPLETED:
        assert record.response is not None  # a completed record always has its response
        return Replay(record.response)
    if record.owner == owner:
        return Claimed(is_takeover=False)
    if record.lease_until_ns > now_ns:
        return Busy(record.lease_until_ns)
    return Claimed(is_takeover=True, command=record.command)


class IdempotencyStore(Protocol):
    """Where idempotency records live (port); every method is atomic.

    Lease and retention come from the adapter's ``IdempotencySettings``.
    Every method raises ``IdempotencyUnavailable`` when the store cannot
    answer; the caller then executes nothing.
    """

    async def start(self) -> None:
        """Connect; must not fail because the server is down (calls will raise)."""
        ...

    async def stop(self) -> None:
        """Release connections."""
        ...

    async def claim(
        self, transfer_id: TransferId, fingerprint: str, owner: str, now_ns: int
    ) -> ClaimOutcome:
        """Apply ``decide``; on ``Claimed``, ``owner`` holds the lease from ``now_ns``."""
        ...

    async def prepare(
        self, transfer_id: TransferId, owner: str, command: Command, now_ns: int
    ) -> bool:
        """Store the command about to be submitted and renew the lease.

        Returns False (and changes nothing) unless ``owner`` holds the
        in-progress record.
        """
        ...

    async def complete(
        self, transfer_id: TransferId, owner: str, response: StoredResponse, now_ns: int
    ) -> bool:
        """Store the response; the record is kept for the retention from ``now_ns``.

        Returns False (and changes nothing) unless ``owner`` holds the
        in-progress record; True without a change when ``owner`` already
        completed it (a repeated call).
        """
        ...

    async def release(self, transfer_id: TransferId, owner: str) -> bool:
        """Give the claim up without a response.

        A record without a prepared command is deleted (a retry starts
        afresh); one with a prepared command keeps it and its lease ends now,
        so the next attempt takes over and reconciles. Returns False (and
        changes nothing) unless ``owner`` holds the in-progress record.
        """
        ...

    async def get(self, transfer_id: TransferId, now_ns: int) -> IdempotencyRecord | None:
        """Return the live record of ``transfer_id`` (for tests and diagnostics)."""
        ...
