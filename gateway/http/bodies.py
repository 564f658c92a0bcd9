"""Bounded request bodies: an ASGI middleware any of tickgate's HTTP apps can wrap.

``BodyLimit`` refuses a body over ``max_body_bytes``: at once when its
``Content-Length`` says so (before a byte of it is read), or as soon as a
chunked body passes the limit. The refusal is the app's own: ``refuse``
builds the 413 response, so the gateway answers its JSON error and the order
API its problem document. A client that goes away in the middle of its body
is not an error: the request ends quietly, with no traceback in the log.

Add it inside Starlette's error middleware, so the exceptions it turns into
answers never reach it::

    Starlette(routes, middleware=[Middleware(BodyLimit, max_body_bytes=16_384,
                                             refuse=too_large)])
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit"]

logger = logging.getLogger(__name__)


class _BodyTooLarge(Exception):
    # Raised from the app's receive, so it unwinds the app up to BodyLimit.
    pass


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_body_bytes`` with ``refuse(max_body_bytes)``."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, refuse: Callable[[int], Response]
    ) -> None:
        if max_body_bytes <= 0:
            raise ValueError(f"max_body_bytes must be positive, was {max_body_bytes}")
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(limit)(scope, receive, send)
            return
        received = 0
        is_started = False

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal is_started
            is_started = is_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracked_send)
        except _BodyTooLarge:
            if is_started:
                raise
            await self._refuse(limit)(scope, receive, send)
        except ClientDisconnect:
            logger.debug(
                "client went away before the end of its request body",
                extra={"event": "http.body_incomplete"},
            )


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    return int(value) if value is not None and value.isdigit() else None
