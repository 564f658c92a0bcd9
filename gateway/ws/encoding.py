"""The JSON encoding of outbound messages: the shell's encoder, injected into the core.

A message travels as its *body*: its JSON object without the closing brace,
encoded once and shared by every client that receives it (``outbox``). The
sans-I/O core (``topic``) takes this function as an argument, as the
session takes its decoder, so that only the shell depends on orjson.
"""

from __future__ import annotations

import orjson

from gateway.ws.session import Message

__all__ = ["encode_body"]


def encode_body(message: Message) -> bytes:
    """Encode a message as a body: its JSON object without the closing brace."""
    return orjson.dumps(message)[:-1]
