"""Exceptions raised by the orders package.

::

    OrdersError
     +-- CommandDecodeError   a hand-off message that is not a valid command (``reason``)
     +-- BusUnavailable       the command bus cannot take a command now (retriable)
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["BusUnavailable", "CommandDecodeError", "OrdersError"]


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
