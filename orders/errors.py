"""Exceptions raised by the orders package.

::

    OrdersError
     +-- CommandDecodeError   a hand-off message that is not a valid command (``reason``)
     +-- BusUnavailable       the command bus cannot take a command now (retriable)
     +-- IdempotencyUnavailable  the idempotency store cannot answer (retriable)
     +-- StateUnavailable     an account or order view cannot answer (retriable)
     +-- InvalidCursor        a list cursor that no page handed out
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BusUnavailable",
    "CommandDecodeError",
    "IdempotencyUnavailable",
    "InvalidCursor",
    "OrdersError",
    "StateUnavailable",
]


class OrdersError(Exception):
    """Root of every error raised by ``orders``."""

    retriable: ClassVar[bool] = False


class CommandDecodeError(OrdersError, ValueError):
    """A command on the bus could not be decoded; ``reason`` is a stable short code.

    Reasons: ``bad_json``, ``not_an_object``, ``unsupported_version``,
    ``unknown_type``, ``missing_field``, ``bad_field``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class BusUnavailable(OrdersError):
    """The command bus could not make a command durable; nothing was promised."""

    retriable: ClassVar[bool] = True


class IdempotencyUnavailable(OrdersError):
    """The idempotency store could not answer; nothing was executed."""

    retriable: ClassVar[bool] = True


class StateUnavailable(OrdersError):
    """An ``AccountView`` or ``OrderView`` could not answer now."""

    retriable: ClassVar[bool] = True


class InvalidCursor(OrdersError, ValueError):
    """``OrderView.list_orders`` got a cursor it never handed out (answered 400)."""
