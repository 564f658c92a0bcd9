"""Structured events of order entry, handed to a hook the gateway turns into logs and metrics.

The core does not log. ``OrderEntry`` calls its ``EventSink`` once per
fact, synchronously; the sink must not raise or block (count, log, return).
Suggested series: ``tickgate_orders_requests_total{route,status,code}``,
``tickgate_orders_idempotent_replays_total{route}``,
``tickgate_orders_idempotency_conflicts_total{code}``,
``tickgate_orders_reconciliations_total{outcome}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

from orders.commands import Command
from orders.trading import TradingStatus
from orders.types import PrincipalId, TransferId

__all__ = [
    "CommandAccepted",
    "EntryEvent",
    "EventSink",
    "IdempotencyConflict",
    "IdempotencyStoreFailed",
    "LeaseReconciled",
    "ReconcileOutcome",
    "RecordNotCompleted",
    "RequestAnswered",
    "RequestReplayed",
    "SubmitFailed",
    "TradingStateChanged",
    "ignore_events",
]


@dataclass(frozen=True, slots=True)
class RequestAnswered:
    """Every answer: ``code`` is the problem code, or None for a success."""

    principal: PrincipalId | None
    operation: str
    status: int
    code: str | None


@dataclass(frozen=True, slots=True)
class RequestReplayed:
    """A completed request was answered again from its idempotency record."""

    principal: PrincipalId
    operation: str
    transfer_id: TransferId
    status: int


@dataclass(frozen=True, slots=True)
class IdempotencyConflict:
    """A key was reused for another request, or sent while its first was in flight."""

    principal: PrincipalId
    operation: str
    transfer_id: TransferId
    code: str


class ReconcileOutcome(StrEnum):
    FOUND = "found"  # the ledger had the command: the record is completed from it
    RESUBMITTED = "resubmitted"  # a prepared command was not found: submitted again, unchanged
    RERUN = "rerun"  # nothing was prepared and nothing found: the request runs afresh


@dataclass(frozen=True, slots=True)
class LeaseReconciled:
    """An expired lease was taken over and reconciled with the ledger."""

    principal: PrincipalId
    transfer_id: TransferId
    outcome: ReconcileOutcome


@dataclass(frozen=True, slots=True)
class CommandAccepted:
    """A command is durable on the bus (the API answered 202)."""

    command: Command


@dataclass(frozen=True, slots=True)
class SubmitFailed:
    """The bus refused a command; the API answered 503 and released the key."""

    transfer_id: TransferId
    reason: str


@dataclass(frozen=True, slots=True)
class IdempotencyStoreFailed:
    """The idempotency store could not answer; the API answered 503 and ran nothing."""

    operation: str
    reason: str


@dataclass(frozen=True, slots=True)
class RecordNotCompleted:
    """A command is durable but its record could not be completed (the store failed).

    The next attempt with the key takes the lease over and completes the
    record from the ledger; no second command results.
    """

    transfer_id: TransferId
    reason: str


@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    """The kill switch moved (an audit event)."""

    previous: TradingStatus
    current: TradingStatus


EntryEvent: TypeAlias = (
    RequestAnswered
    | RequestReplayed
    | IdempotencyConflict
    | LeaseReconciled
    | CommandAccepted
    | SubmitFailed
    | IdempotencyStoreFailed
    | RecordNotCompleted
    | TradingStateChanged
)
EventSink: TypeAlias = Callable[[EntryEvent], None]


def ignore_events(event: EntryEvent) -> None:
    """An ``EventSink`` that drops every event."""
