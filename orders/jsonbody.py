"""Request bodies: strict JSON parsing and the canonical form that fingerprints use.

Parsing refuses what JSON parsers disagree on, so that the body the
fingerprint covers is the body the handler validated: invalid UTF-8, the
non-standard ``NaN``/``Infinity`` literals, duplicate keys (parsers keep the
first or the last) and nesting deeper than ``MAX_DEPTH``. Numbers are
parsed as ``Decimal`` (never float), so no number is silently rounded.

The canonical form re-serialises the parsed value with sorted keys and no
whitespace, so two bodies that differ only in key order or spacing have the
same fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Final

__all__ = [
    "MAX_DEPTH",
    "JsonBodyError",
    "canonical_json",
    "parse_json_body",
    "request_fingerprint",
]

MAX_DEPTH: Final = 32
"""Deepest nesting of arrays and objects accepted (request bodies are flat)."""


class JsonBodyError(ValueError):
    """The body is not acceptable JSON; ``is_duplicate`` marks a repeated key."""

    def __init__(self, message: str, *, is_duplicate: bool = False) -> None:
        super().__init__(message)
        self.is_duplicate = is_duplicate


def _refuse_constant(name: str) -> object:
    raise JsonBodyError(f"{name} is not JSON")


def _unique_object(pairs: Sequence[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise JsonBodyError(f"field {key!r:.60} appears twice", is_duplicate=True)
        result[key] = value
    return result


def parse_json_body(body: bytes) -> object:
    """Return the parsed body; raise ``JsonBodyError`` for anything not strict JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JsonBodyError(f"body must be UTF-8: {e.reason} at byte {e.start}") from e
    if _depth(text) > MAX_DEPTH:
        raise JsonBodyError(f"body must nest at most {MAX_DEPTH} levels")
    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_refuse_constant,
            object_pairs_hook=_unique_object,
        )
    except JsonBodyError:
        raise
    except (ValueError, RecursionError) as e:
        # json.JSONDecodeError is a ValueError; so are integers past the digit limit.
        raise JsonBodyError(f"body is not JSON: {e}") from e


def _depth(text: str) -> int:
    # An upper bound of the nesting (brackets inside strings count too): cheap, and
    # it keeps a hostile body from reaching the recursive decoder.
    deepest = depth = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def canonical_json(value: object) -> bytes:
    """Return ``value`` serialised with sorted keys, no spaces, UTF-8 (no escapes)."""
    return _canonical_text(value).encode("utf-8")


def _canonical_text(value: object) -> str:
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(f"{_string(k)}:{_canonical_text(v)}" for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canonical_text(v) for v in value) + "]"
    if isinstance(value, str):
        return _string(value)
    if value is None or isinstance(value, bool | int):
        return json.dumps(value)
    if isinstance(value, Decimal):
        # The decimal as written, normalised: "1.50" and "1.5" are the same number.
        return format(value.normalize(), "f") if value.is_finite() else _string(str(value))
    raise TypeError(f"value must be parsed JSON, was {type(value).__name__}")


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def request_fingerprint(method: str, path: str, body: object) -> str:
    """Return the SHA-256 hex of method, path and the canonical body.

    The three parts are joined by a newline, which neither a method nor a
    path contains, so no two distinct requests share the joined bytes.
    """
    digest = hashlib.sha256()
    digest.update(method.upper().encode("ascii"))
    digest.update(b"\n")
    digest.update(path.encode("utf-8"))
    digest.update(b"\n")
    digest.update(canonical_json(body))
    return digest.hexdigest()
