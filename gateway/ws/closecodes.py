"""WebSocket close codes tickgate sends; docs/protocol.md fixes the numbers."""

from __future__ import annotations

from typing import Final

__all__ = [
    "GOING_AWAY",
    "INTERNAL_ERROR",
    "INVALID_DATA",
    "MESSAGE_TOO_BIG",
    "NORMAL",
    "POLICY_VIOLATION",
    "PROTOCOL_ERROR",
    "SLOW_CONSUMER",
    "TOO_MANY_CONNECTIONS",
    "TRY_AGAIN_LATER",
    "UNAUTHORIZED",
]

NORMAL: Final = 1000
"""The client asked to close."""

GOING_AWAY: Final = 1001
"""The server is shutting down; reconnect to another node or later."""

PROTOCOL_ERROR: Final = 1002
"""The client broke WebSocket framing (an unmasked frame, reserved bits, a bad opcode...).

Sent by the framing layer (``websockets``), not by tickgate's own rules.
"""

INVALID_DATA: Final = 1007
"""The client's close frame had a reason that is not UTF-8 (sent by the framing layer)."""

POLICY_VIOLATION: Final = 1008
"""Too many protocol errors in the error window (abuse threshold)."""

MESSAGE_TOO_BIG: Final = 1009
"""An inbound message exceeded ``ws.max_inbound_bytes``."""

INTERNAL_ERROR: Final = 1011
"""A server fault, or no pong within the ping timeout."""

TRY_AGAIN_LATER: Final = 1013
"""The server is at its connection capacity and closed this unauthenticated connection."""

UNAUTHORIZED: Final = 4001
"""Authentication failed: bad or expired token, or the auth deadline passed."""

SLOW_CONSUMER: Final = 4008
"""The client's outbound buffer stayed over its bound for the grace period."""

TOO_MANY_CONNECTIONS: Final = 4029
"""The token's subject already holds ``access.max_connections_per_principal`` connections."""
