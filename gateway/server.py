"""Running the service under uvicorn, with ``/ws`` on tickgate's own protocol.

HTTP runs on ``GuardedHttpProtocol`` (``gateway.uvicornseam``): uvicorn's own,
with the request-head limit and deadline and connection admission.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from gateway.admission import raise_open_file_limit
from gateway.app import create_app
from gateway.logs import configure_logging
from gateway.service import Gateway
from gateway.settings import Settings
from gateway.uvicornseam import GuardedHttpProtocol
from gateway.ws.connection import WebSocketConnection

__all__ = ["EXIT_SHUTDOWN_INCOMPLETE", "serve", "uvicorn_config"]

logger = logging.getLogger(__name__)


def uvicorn_config(settings: Settings, app: Starlette) -> uvicorn.Config:
    """uvicorn settings: our HTTP and WebSocket protocols, graceful shutdown, no access log."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=GuardedHttpProtocol,
        ws=WebSocketConnection,
        timeout_keep_alive=settings.server.keep_alive_timeout_s,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )


EXIT_SHUTDOWN_INCOMPLETE = 4
"""The exit code of a stop that left work undone (``Gateway.shutdown_problems``)."""


def serve(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM: then stop accepting, close clients with 1001, stop the feed.

    Returns the exit code: 0 after a complete graceful stop,
    ``EXIT_SHUTDOWN_INCOMPLETE`` when the stop left work undone.
    """
    configure_logging(settings.log_level)
    before, after = raise_open_file_limit()
    if after != before:
        logger.info("raised the open-file limit from %d to %d (the hard limit)", before, after)
    app = create_app(settings)
    server = uvicorn.Server(uvicorn_config(settings, app))
    # uvicorn restores the previous handlers after its graceful shutdown and
    # re-raises the signal it caught; these handlers take it, as the stop is done.
    previous = {signum: signal.signal(signum, _signal_after_shutdown) for signum in _SIGNALS}
    try:
        server.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    gateway: Gateway = app.state.gateway
    return EXIT_SHUTDOWN_INCOMPLETE if gateway.shutdown_problems else 0


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _signal_after_shutdown(signum: int, frame: FrameType | None) -> None:
    logger.debug("signal %d received after shutdown", signum)
