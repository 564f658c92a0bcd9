"""Exceptions raised by the gateway.

::

    GatewayError
     +-- SettingsError        a TICKGATE_* setting that is unknown or invalid
     +-- AuthError            a token that is missing, invalid or expired (``code``)
     +-- ProtocolError        a client message the protocol refuses (``code``)
     +-- HttpError            an HTTP request the API refuses (``status``, ``code``)
     +-- FeedError            a market-data source that cannot be used
     |    +-- FeedUnavailable a source whose server cannot be reached (retriable)
     +-- ShutdownIncomplete   a component stopped but left work undone (the message says what)
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuthError",
    "FeedError",
    "FeedUnavailable",
    "GatewayError",
    "HttpError",
    "ProtocolError",
    "SettingsError",
    "ShutdownIncomplete",
]


class GatewayError(Exception):
    """Root of every error raised by ``gateway``."""

    retriable: ClassVar[bool] = False


class SettingsError(GatewayError, ValueError):
    """A setting is unknown or has an invalid value; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class AuthError(GatewayError):
    """A token was refused. ``code`` is the documented protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ProtocolError(GatewayError):
    """A client message was refused with a documented error ``code``.

    ``is_retriable`` tells the client whether the same request may succeed
    later (``rate_limited``); ``close_code`` is set when the error also closes
    the connection.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        is_retriable: bool = False,
        close_code: int | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.is_retriable = is_retriable
        self.close_code = close_code
        self.extra = extra or {}


class HttpError(GatewayError):
    """An HTTP request was refused: ``status``, and the documented error ``code``.

    ``retry_after_s``, when set, is sent as the ``Retry-After`` header.
    """

    def __init__(
        self, status: int, code: str, message: str, *, retry_after_s: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


class FeedError(GatewayError):
    """A market-data source failed."""


class FeedUnavailable(FeedError):
    """A market-data source's server cannot be reached; the source retries."""

    retriable: ClassVar[bool] = True


class ShutdownIncomplete(GatewayError):
    """A component stopped, but left work undone; the message says what and what follows."""
