"""Running the service under uvicorn, with ``/ws`` on tickgate's own protocol."""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.logs import configure_logging
from gateway.settings import Settings
from gateway.wsserver import WebSocketConnection

__all__ = ["serve", "uvicorn_config"]


def uvicorn_config(settings: Settings, app: Starlette) -> uvicorn.Config:
    """uvicorn settings: our WebSocket protocol class, graceful shutdown, no access log."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws=WebSocketConnection,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
    )


def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM: then stop accepting, close clients with 1001, stop the feed."""
    configure_logging(settings.log_level)
    server = uvicorn.Server(uvicorn_config(settings, create_app(settings)))
    server.run()
