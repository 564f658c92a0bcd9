"""The audit log: one structured event per admin action and per request that moves money.

Each event is one JSON object, logged at INFO by the logger ``tickgate.audit``
(never throttled) and, with ``TICKGATE_AUDIT_FILE`` set, appended to that
file as one line (created with mode 0600). docs/operations.md lists the
events and their fields. An event carries who (``actor``: a token's
``sub``, or the operator's name), what (``event``), the ``outcome`` and
identifiers (account, transfer, order or payment id); never a token, and
no order or payment payload beyond its identifiers: the ledger holds the
amounts, by ``transfer_id``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final

import orjson

from gateway.clock import Clock
from orders import events as entry_events
from orders.commands import CancelOrder, SubmitOrder, SubmitPayment

__all__ = ["AUDIT_LOGGER", "EntryAudit", "audit", "both", "open_audit_file"]

AUDIT_LOGGER: Final = "tickgate.audit"
logger = logging.getLogger(AUDIT_LOGGER)

# Order entry's operations that change state, and their audit events.
_WRITE_EVENTS: Final = {
    "submit_order": "order.submit",
    "cancel_order": "order.cancel",
    "submit_payment": "payment.submit",
    "set_trading_state": "trading_state.set",
}


def audit(event: str, *, ts_ns: int, actor: str | None, outcome: str, **fields: object) -> None:
    """Record one audit event."""
    record = {"ts_ns": ts_ns, "event": event, "actor": actor, "outcome": outcome, **fields}
    logger.info("%s", orjson.dumps(record, default=str).decode(), extra={"event": "audit.record"})


def open_audit_file(path: Path) -> logging.Handler:
    """Append every audit event to ``path`` (mode 0600), one JSON object a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)  # created with its mode; the handler opens it to append
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


class EntryAudit:
    """Order entry's events as audit events: accepted, refused and replayed writes."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def __call__(self, event: entry_events.EntryEvent) -> None:
        now_ns = self._clock.now_ns()
        if isinstance(event, entry_events.CommandAccepted):
            command = event.command
            ids: dict[str, object] = {}
            if isinstance(command, SubmitOrder | CancelOrder):
                ids["order_id"] = command.order_id
            elif isinstance(command, SubmitPayment):
                ids["payment_id"] = command.payment_id
            accepted = {SubmitOrder: "order.submit", CancelOrder: "order.cancel"}.get(
                type(command), "payment.submit"
            )
            audit(
                accepted,
                ts_ns=now_ns,
                actor=command.principal,
                outcome="accepted",
                account_id=command.account_id,
                transfer_id=command.transfer_id,
                trace_id=command.trace_id,
                **ids,
            )
        elif isinstance(event, entry_events.RequestAnswered):
            name = _WRITE_EVENTS.get(event.operation)
            if name is not None and event.status >= 400:
                audit(
                    name,
                    ts_ns=now_ns,
                    actor=event.principal,
                    outcome="refused",
                    status=event.status,
                    code=event.code,
                )
        elif isinstance(event, entry_events.RequestReplayed):
            name = _WRITE_EVENTS.get(event.operation)
            if name is not None:
                audit(
                    name,
                    ts_ns=now_ns,
                    actor=event.principal,
                    outcome="replayed",
                    transfer_id=event.transfer_id,
                    status=event.status,
                )
        elif isinstance(event, entry_events.TradingStateChanged):
            audit(
                "trading_state.set",
                ts_ns=now_ns,
                actor=event.current.changed_by,
                outcome="changed",
                previous=event.previous.state.value,
                state=event.current.state.value,
                reason=event.current.reason,
            )


def both(
    first: Callable[[entry_events.EntryEvent], None],
    second: Callable[[entry_events.EntryEvent], None],
) -> Callable[[entry_events.EntryEvent], None]:
    """One event listener calling two."""

    def call(event: entry_events.EntryEvent) -> None:
        first(event)
        second(event)

    return call
