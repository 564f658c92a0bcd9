"""Turning bodies and problems into ``ApiResponse`` values: headers, encoding, replays.

Bytes come from one ``JsonEncoder`` per process (``encode_json`` by
default; the gateway may pass orjson's). A stored answer is replayed with
the bytes it was first sent with, whatever the encoder is now.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final, TypeAlias

from orders.api import ApiResponse
from orders.commands import SubmitOrder, SubmitPayment
from orders.idempotency import REPLAYED_HEADER, StoredResponse
from orders.problems import PROBLEM_CONTENT_TYPE, Problem
from orders.responses import order_accepted_body, payment_accepted_body

__all__ = [
    "JSON_CONTENT_TYPE",
    "JsonEncoder",
    "accepted_response",
    "encode_json",
    "json_response",
    "problem_response",
    "replayed",
    "stored",
]

JSON_CONTENT_TYPE: Final = "application/json"
JsonEncoder: TypeAlias = Callable[[object], bytes]


def encode_json(value: object) -> bytes:
    """Encode ``value`` compactly as UTF-8 JSON (the default encoder)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_response(
    status: int,
    body: object,
    encode: JsonEncoder,
    headers: tuple[tuple[str, str], ...] = (),
) -> ApiResponse:
    """Return a JSON answer."""
    return ApiResponse(status, (("content-type", JSON_CONTENT_TYPE), *headers), encode(body))


def problem_response(
    problem: Problem, encode: JsonEncoder, *, retry_after_s: int | None = None
) -> ApiResponse:
    """Return the problem+json answer of ``problem``, with ``Retry-After`` if given."""
    headers: tuple[tuple[str, str], ...] = (("content-type", PROBLEM_CONTENT_TYPE),)
    body = problem.to_json()
    if retry_after_s is not None:
        headers += (("retry-after", str(retry_after_s)),)
        body["retry_after_s"] = retry_after_s
    allow = problem.extensions.get("allow")
    if isinstance(allow, str):
        headers += (("allow", allow),)
    return ApiResponse(problem.status, headers, encode(body), code=problem.code)


def accepted_response(command: SubmitOrder | SubmitPayment, encode: JsonEncoder) -> ApiResponse:
    """Return the 202 of a durable submit: a function of the command alone."""
    if isinstance(command, SubmitOrder):
        location = f"/v1/orders/{command.order_id}"
        body = order_accepted_body(command)
    else:
        location = f"/v1/payments/{command.payment_id}"
        body = payment_accepted_body(command)
    return json_response(202, body, encode, (("location", location),))


def stored(response: ApiResponse) -> StoredResponse:
    """Return what the idempotency record keeps of ``response``."""
    return StoredResponse(response.status, response.headers, response.body)


def replayed(response: StoredResponse) -> ApiResponse:
    """Return a stored answer as sent the first time, marked ``Idempotent-Replayed: true``."""
    return ApiResponse(
        response.status, (*response.headers, (REPLAYED_HEADER, "true")), response.body
    )
