"""Who may open ``/ws``: the Origin allowlist, and connection limits per IP and per principal.

The upgrade request is checked before the WebSocket handshake
(``gateway.uvicornseam.GuardedHttpProtocol``), so a refused client costs one
short HTTP answer and no WebSocket state:

- an ``Origin`` outside the allowlist (or none, when one is required):
  ``403 origin_forbidden``;
- more upgrade attempts from one IP than its token bucket allows:
  ``429 connect_rate_limited`` with ``Retry-After``;
- more open WebSockets from one IP than allowed: ``429 too_many_connections``.

A principal (a token's ``sub``) is known only once the connection
authenticates, so its limit is kept by ``PrincipalSlots``, which the client
session asks when a token first authenticates (docs/protocol.md: close
``4029``). No I/O and no clock here: callers pass the time.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from gateway.errors import HttpError
from gateway.settings import AccessSettings

__all__ = [
    "ACCESS_STATE_KEY",
    "OriginPolicy",
    "PrincipalSlots",
    "UpgradeGuard",
    "own_origins",
]

ACCESS_STATE_KEY: Final = "tickgate.access"
"""Key of the ``UpgradeGuard`` in the ASGI lifespan state, where the protocols find it."""

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_LOOPBACK_NAMES: Final = ("127.0.0.1", "localhost", "[::1]")
_WILDCARD_HOSTS: Final = frozenset({"", "0.0.0.0", "::"})  # noqa: S104  # names, not a bind


def normalise_origin(origin: str) -> str:
    """``origin`` lower-cased, without a trailing slash or its scheme's default port."""
    text = origin.strip().lower().rstrip("/")
    scheme, sep, authority = text.partition("://")
    default = _DEFAULT_PORTS.get(scheme)
    if sep and default is not None and authority.endswith(f":{default}"):
        text = f"{scheme}://{authority.removesuffix(f':{default}')}"
    return text


def own_origins(host: str, port: int, scheme: str) -> frozenset[str] | None:
    """The origins of a listener bound to ``host:port``; ``None`` for a wildcard bind.

    A loopback bind answers to ``127.0.0.1``, ``localhost`` and ``[::1]``
    alike. A wildcard bind (``0.0.0.0``, ``::``) or port 0 has no fixed name,
    so its own origin is the one the request names in its ``Host`` header.
    """
    if host in _WILDCARD_HOSTS or port == 0:
        return None
    try:
        is_loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = host.lower() == "localhost"
    if is_loopback:
        names: Iterable[str] = _LOOPBACK_NAMES
    else:
        names = (f"[{host}]" if ":" in host else host,)
    return frozenset(normalise_origin(f"{scheme}://{name}:{port}") for name in names)


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """Which ``Origin`` headers may open ``/ws``.

    ``allowed`` holds normalised origins; ``None`` means the request's own
    origin (its scheme and ``Host`` header), for a listener with no fixed name.
    """

    allowed: frozenset[str] | None
    is_any: bool = False
    require_origin: bool = False

    @classmethod
    def from_settings(
        cls, settings: AccessSettings, *, host: str, port: int, scheme: str
    ) -> OriginPolicy:
        """The configured allowlist, or the listener's own origins when none is set."""
        configured = settings.allowed_origins
        if configured:
            allowed = frozenset(normalise_origin(o) for o in configured if o != "*")
            return cls(allowed, is_any="*" in configured, require_origin=settings.require_origin)
        own = own_origins(host, port, scheme)
        return cls(own, require_origin=settings.require_origin)

    def allows(self, origin: str | None, *, host: str | None, scheme: str) -> bool:
        """Whether an upgrade with this ``Origin`` (``None``: no header) may proceed."""
        if origin is None:
            return not self.require_origin
        if self.is_any:
            return True
        normalised = normalise_origin(origin)
        if self.allowed is not None:
            return normalised in self.allowed
        return host is not None and normalised == normalise_origin(f"{scheme}://{host}")


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at_s: float


class UpgradeGuard:
    """The checks of an upgrade request before its handshake, and the open WebSockets per IP."""

    def __init__(self, settings: AccessSettings, origins: OriginPolicy) -> None:
        self._settings = settings
        self.origins = origins
        self._exempt = tuple(
            ipaddress.ip_network(n, strict=False) for n in settings.limit_exempt_networks
        )
        # Least recently seen first, so the state stays within max_tracked_ips.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._open: Counter[str] = Counter()

    def refusal(
        self, ip: str | None, *, origin: str | None, host: str | None, scheme: str, now_s: float
    ) -> HttpError | None:
        """The answer refusing this upgrade request, or ``None`` to let it through.

        An attempt that passes the Origin check takes a token from its IP's
        bucket, whatever follows.
        """
        if not self.origins.allows(origin, host=host, scheme=scheme):
            shown = "no Origin header" if origin is None else f"Origin {_shorten(origin)}"
            return HttpError(403, "origin_forbidden", f"{shown} may not open a WebSocket here")
        if ip is None or self._is_exempt(ip):
            return None
        wait_s = self._take_token(ip, now_s)
        if wait_s > 0:
            rate = self._settings.connect_rate_per_ip_per_s
            return HttpError(
                429,
                "connect_rate_limited",
                f"at most {rate:g} connection attempts per second from one address",
                retry_after_s=max(1, math.ceil(wait_s)),
            )
        limit = self._settings.max_connections_per_ip
        if self._open[ip] >= limit:
            return HttpError(
                429,
                "too_many_connections",
                f"at most {limit} WebSocket connections from one address",
            )
        return None

    def opened(self, ip: str | None) -> None:
        """A WebSocket from ``ip`` took over its connection."""
        if ip is not None and not self._is_exempt(ip):
            self._open[ip] += 1

    def closed(self, ip: str | None) -> None:
        """A WebSocket from ``ip`` is gone (once per ``opened``)."""
        if ip is None or ip not in self._open:
            return
        self._open[ip] -= 1
        if self._open[ip] <= 0:
            del self._open[ip]

    def open_from(self, ip: str) -> int:
        """WebSockets open from ``ip`` that count towards its limit."""
        return self._open[ip]

    def _is_exempt(self, ip: str) -> bool:
        return _in_networks(ip, self._exempt)

    def _take_token(self, ip: str, now_s: float) -> float:
        # Returns 0 when a token was taken, else the seconds until one is due.
        settings = self._settings
        rate, burst = settings.connect_rate_per_ip_per_s, float(settings.connect_burst_per_ip)
        bucket = self._buckets.pop(ip, None)
        if bucket is None:
            bucket = _Bucket(burst, now_s)
            while len(self._buckets) >= settings.max_tracked_ips:
                self._buckets.popitem(last=False)
        self._buckets[ip] = bucket
        elapsed_s = max(0.0, now_s - bucket.at_s)
        bucket.tokens = min(burst, bucket.tokens + elapsed_s * rate)
        bucket.at_s = now_s
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate


class PrincipalSlots:
    """Authenticated connections per principal (a token's ``sub``), up to a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: Counter[str] = Counter()

    def acquire(self, subject: str) -> bool:
        """Take a slot for ``subject``; ``False`` when it holds ``limit`` already."""
        if self._held[subject] >= self.limit:
            return False
        self._held[subject] += 1
        return True

    def release(self, subject: str) -> None:
        """Give back a slot taken by ``acquire``."""
        if self._held[subject] <= 1:
            self._held.pop(subject, None)
        else:
            self._held[subject] -= 1

    def held(self, subject: str) -> int:
        """Slots ``subject`` holds now."""
        return self._held[subject]


@functools.lru_cache(maxsize=65_536)
def _in_networks(
    ip: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    # Cached: parsing an address costs more than the rest of an upgrade's checks.
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


def _shorten(text: str) -> str:
    return text if len(text) <= 64 else text[:64] + "..."
