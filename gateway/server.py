"""Running the service under uvicorn: ``/ws`` on tickgate's own protocol, the order API beside it.

``tickgate run`` serves two listeners from one process and one event loop:
the gateway's (``/ws``, the HTTP routes; it owns the lifespan that starts
and stops the service) and, unless ``TICKGATE_API_ENABLED`` is false, the
order API's on ``TICKGATE_API_HOST:TICKGATE_API_PORT``, which has no
WebSocket endpoint. ``tickgate api`` serves the order API alone (the split
deployment), and its listener then owns the lifespan.

HTTP runs on ``GuardedHttpProtocol`` (``gateway.uvicornseam``) on both
listeners: uvicorn's own, with the request-head limit and deadline and
connection admission, one admission for the whole process.

Each listener is a ``uvicorn.Server``. On SIGINT/SIGTERM the one that
installed its handler last (the API's) stops accepting first, then hands
the signal on to the gateway's, which closes its clients and stops the
service: no order is accepted after the service began to stop.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from types import FrameType
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette

from gateway.admission import raise_open_file_limit
from gateway.app import create_apps
from gateway.audit import open_audit_file
from gateway.errors import SettingsError
from gateway.logs import configure_logging
from gateway.service import Gateway
from gateway.settings import Settings, TlsSettings
from gateway.uvicornseam import GuardedHttpProtocol
from gateway.ws.connection import WebSocketConnection

__all__ = [
    "EXIT_SHUTDOWN_INCOMPLETE",
    "api_uvicorn_config",
    "check_tls",
    "serve",
    "uvicorn_config",
]

logger = logging.getLogger(__name__)

Role = Literal["run", "api"]

EXIT_SHUTDOWN_INCOMPLETE = 4
"""The exit code of a stop that left work undone (``Gateway.shutdown_problems``)."""


def uvicorn_config(settings: Settings, app: Starlette) -> uvicorn.Config:
    """The gateway's listener: our HTTP and WebSocket protocols, graceful stop, no access log."""
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
        **_tls_options(settings.tls),
    )


def api_uvicorn_config(settings: Settings, app: Starlette) -> uvicorn.Config:
    """The order API's listener: our HTTP protocol, no WebSocket endpoint."""
    return uvicorn.Config(
        app,
        host=settings.api.host,
        port=settings.api.port,
        http=GuardedHttpProtocol,
        ws="none",
        timeout_keep_alive=settings.server.keep_alive_timeout_s,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        **_tls_options(settings.tls),
    )


def check_tls(tls: TlsSettings) -> None:
    """Load the certificate and key once, so a bad file stops the start naming its setting."""
    if tls.cert_file is None:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    password = tls.key_password.reveal() if tls.key_password is not None else None
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password)
    except OSError as e:
        key = "TICKGATE_TLS_KEY_FILE" if tls.key_file is not None else "TICKGATE_TLS_CERT_FILE"
        # ssl.SSLError (a wrong key or password) is an OSError too.
        raise SettingsError(key, f"cannot load the certificate and key: {e}") from None


def _tls_options(tls: TlsSettings) -> dict[str, Any]:
    # uvicorn's TLS options; none without a certificate.
    if tls.cert_file is None:
        return {}
    return {
        "ssl_certfile": tls.cert_file,
        "ssl_keyfile": tls.key_file,
        "ssl_keyfile_password": (
            tls.key_password.reveal() if tls.key_password is not None else None
        ),
    }


def servers(settings: Settings, role: Role) -> tuple[list[uvicorn.Server], Gateway]:
    """The listeners of ``role``, the one owning the service's lifespan first."""
    check_tls(settings.tls)
    apps = create_apps(settings, api_owns_lifespan=role == "api")
    if role == "api":
        return [uvicorn.Server(api_uvicorn_config(settings, apps.api))], apps.gateway
    listeners = [uvicorn.Server(uvicorn_config(settings, apps.main))]
    if settings.api.enabled:
        listeners.append(uvicorn.Server(api_uvicorn_config(settings, apps.api)))
    return listeners, apps.gateway


def serve(settings: Settings, role: Role = "run") -> int:
    """Run until SIGINT/SIGTERM: then stop accepting, close clients with 1001, stop the service.

    Returns the exit code: 0 after a complete graceful stop,
    ``EXIT_SHUTDOWN_INCOMPLETE`` when the stop left work undone.
    """
    configure_logging(settings.log_level, settings.log_format)
    if settings.audit.file is not None:
        open_audit_file(settings.audit.file)
    before, after = raise_open_file_limit()
    if after != before:
        logger.info(
            "raised the open-file limit from %d to %d (the hard limit)",
            before,
            after,
            extra={"event": "server.fd_limit_raised"},
        )
    listeners, gateway = servers(settings, role)
    # uvicorn restores the previous handlers after its graceful shutdown and
    # re-raises the signal it caught; these handlers take it, as the stop is done.
    previous = {signum: signal.signal(signum, _signal_after_shutdown) for signum in _SIGNALS}
    try:
        runner = asyncio.Runner(loop_factory=listeners[0].config.get_loop_factory())
        with runner:
            runner.run(_serve_all(listeners))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return EXIT_SHUTDOWN_INCOMPLETE if gateway.shutdown_problems else 0


async def _serve_all(listeners: list[uvicorn.Server]) -> None:
    # The first listener installs its signal handler first; the later ones
    # chain to it (see the module docstring).
    await asyncio.gather(*(server.serve() for server in listeners))


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _signal_after_shutdown(signum: int, frame: FrameType | None) -> None:
    logger.debug(
        "signal %d received after shutdown", signum, extra={"event": "server.signal_after_shutdown"}
    )
