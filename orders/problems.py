"""Problem codes of the order API and the RFC 9457 problem values built from them.

Every error the API answers is an ``application/problem+json`` object::

    {"type": "urn:tickgate:problem:price_off_tick", "title": "...", "status": 422,
     "code": "price_off_tick", "detail": "limit_price must be a multiple of 0.01, was 187.255",
     "field": "/limit_price"}

``code`` is stable and documented in docs/api.md; ``type`` is the code as a
URN (not dereferenceable, which RFC 9457 allows); extension members
(``field``, ``retry_after_s``) depend on the code. Each code below is a
``ProblemType`` constant; ``PROBLEM_TYPES`` lists them all, so the OpenAPI
document and the docs test can prove that none is left out.

``stage`` says what happens to the idempotency record of a request answered
with the problem: ``pre_execution`` problems are never stored (a retry with
the same key may succeed), ``business`` problems are stored and replayed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "PROBLEM_TYPES",
    "Problem",
    "ProblemType",
    "Stage",
    "problem_type",
]

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
_TYPE_PREFIX: Final = "urn:tickgate:problem:"


class Stage(StrEnum):
    PRE_EXECUTION = "pre_execution"
    BUSINESS = "business"


@dataclass(frozen=True, slots=True)
class ProblemType:
    """A documented problem code with its HTTP status and title."""

    code: str
    status: int
    title: str
    stage: Stage = Stage.PRE_EXECUTION

    @property
    def type_uri(self) -> str:
        return _TYPE_PREFIX + self.code

    def __call__(self, detail: str, **extensions: object) -> Problem:
        """Return a problem of this type with ``detail`` and extension members."""
        return Problem(self, detail, extensions)


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem answer: its type, a human ``detail`` and extension members."""

    type: ProblemType
    detail: str
    extensions: Mapping[str, object] = field(default_factory=dict)

    @property
    def code(self) -> str:
        return self.type.code

    @property
    def status(self) -> int:
        return self.type.status

    def to_json(self) -> dict[str, object]:
        """Return the RFC 9457 object (members in a fixed order, extensions last)."""
        body: dict[str, object] = {
            "type": self.type.type_uri,
            "title": self.type.title,
            "status": self.type.status,
            "code": self.type.code,
            "detail": self.detail,
        }
        body.update(self.extensions)
        return body


def _pre(code: str, status: int, title: str) -> ProblemType:
    return ProblemType(code, status, title, Stage.PRE_EXECUTION)


def _business(code: str, title: str) -> ProblemType:
    return ProblemType(code, 422, title, Stage.BUSINESS)


# --- authentication and authorisation (answered before anything else) ----------
TOKEN_MISSING: Final = _pre("token_missing", 401, "A bearer token is required")
TOKEN_INVALID: Final = _pre("token_invalid", 401, "The token was refused")
TOKEN_EXPIRED: Final = _pre("token_expired", 401, "The token has expired")
INSUFFICIENT_SCOPE: Final = _pre("insufficient_scope", 403, "The token lacks the scope")
ACCOUNT_FORBIDDEN: Final = _pre("account_forbidden", 403, "The token may not act for the account")

# --- routing ------------------------------------------------------------------------
ROUTE_NOT_FOUND: Final = _pre("route_not_found", 404, "No such route")
METHOD_NOT_ALLOWED: Final = _pre("method_not_allowed", 405, "Method not allowed on this route")

# --- idempotency ----------------------------------------------------------------------
IDEMPOTENCY_KEY_MISSING: Final = _pre(
    "idempotency_key_missing", 400, "The Idempotency-Key header is required"
)
IDEMPOTENCY_KEY_INVALID: Final = _pre(
    "idempotency_key_invalid", 400, "The Idempotency-Key header is malformed"
)
IDEMPOTENCY_KEY_REUSED: Final = _pre(
    "idempotency_key_reused", 422, "The Idempotency-Key was used for a different request"
)
IDEMPOTENCY_REQUEST_IN_PROGRESS: Final = _pre(
    "idempotency_request_in_progress", 409, "A request with this Idempotency-Key is in progress"
)
IDEMPOTENCY_UNAVAILABLE: Final = _pre(
    "idempotency_unavailable", 503, "The idempotency store is unavailable"
)

# --- the request body: form (400) -----------------------------------------------------
UNSUPPORTED_MEDIA_TYPE: Final = _pre(
    "unsupported_media_type", 415, "The body must be application/json"
)
BODY_TOO_LARGE: Final = _pre("body_too_large", 413, "The body is too large")
MALFORMED_JSON: Final = _pre("malformed_json", 400, "The body is not valid JSON")
BODY_NOT_OBJECT: Final = _pre("body_not_object", 400, "The body must be a JSON object")
DUPLICATE_FIELD: Final = _pre("duplicate_field", 400, "A field appears twice")
UNKNOWN_FIELD: Final = _pre("unknown_field", 400, "The body has a field the schema lacks")
MISSING_FIELD: Final = _pre("missing_field", 400, "A required field is missing")
WRONG_TYPE: Final = _pre("wrong_type", 400, "A field has the wrong JSON type")
DECIMAL_NOT_STRING: Final = _pre(
    "decimal_not_string", 400, "Decimals are strings, never JSON numbers"
)
INVALID_DECIMAL: Final = _pre("invalid_decimal", 400, "A decimal string is malformed")
DECIMAL_OUT_OF_RANGE: Final = _pre("decimal_out_of_range", 400, "A decimal has too many digits")
INVALID_VALUE: Final = _pre("invalid_value", 400, "A field has a value the schema refuses")

# --- the request body: meaning (422, not stored) --------------------------------------
NOT_POSITIVE: Final = _pre("not_positive", 422, "A quantity or amount must be positive")
UNKNOWN_SYMBOL: Final = _pre("unknown_symbol", 422, "The instrument is not in the master")
QUANTITY_NOT_LOT_MULTIPLE: Final = _pre(
    "quantity_not_lot_multiple", 422, "The quantity is not a whole number of lots"
)
PRICE_OFF_TICK: Final = _pre("price_off_tick", 422, "The price is not on the tick grid")
LIMIT_PRICE_REQUIRED: Final = _pre("limit_price_required", 422, "A limit order needs a limit_price")
LIMIT_PRICE_FORBIDDEN: Final = _pre(
    "limit_price_forbidden", 422, "A market order takes no limit_price"
)
UNKNOWN_CURRENCY: Final = _pre("unknown_currency", 422, "The currency is not an ISO 4217 code")
TOO_MANY_DECIMALS: Final = _pre(
    "too_many_decimals", 422, "The amount has more decimals than the currency's minor unit"
)

# --- pre-trade risk and business rules (422, stored and replayed) ---------------------
UNKNOWN_ACCOUNT: Final = _business("unknown_account", "The account is unknown")
INSTRUMENT_NOT_TRADABLE: Final = _business(
    "instrument_not_tradable", "The instrument cannot be traded now"
)
NO_REFERENCE_PRICE: Final = _business("no_reference_price", "The instrument has no price yet")
REFERENCE_PRICE_STALE: Final = _business("reference_price_stale", "The instrument's price is stale")
PRICE_OUTSIDE_BAND: Final = _business(
    "price_outside_band", "The limit price is too far from the last price"
)
NOTIONAL_LIMIT_EXCEEDED: Final = _business(
    "notional_limit_exceeded", "The order's notional exceeds the limit"
)
CURRENCY_NOT_HELD: Final = _business(
    "currency_not_held", "The account holds no cash in the instrument's currency"
)
INSUFFICIENT_BUYING_POWER: Final = _business(
    "insufficient_buying_power", "The account's buying power is too low"
)
POSITION_LIMIT_EXCEEDED: Final = _business(
    "position_limit_exceeded", "The order would exceed the position limit"
)
TRADING_HALTED: Final = _business("trading_halted", "Trading is halted")
TRADING_REDUCING_ONLY: Final = _business(
    "trading_reducing_only", "Only orders that reduce a position are accepted"
)
INSUFFICIENT_FUNDS: Final = _business(
    "insufficient_funds", "The withdrawal exceeds the available cash"
)
ORDER_NOT_CANCELLABLE: Final = _pre(
    "order_not_cancellable", 422, "The order is final and cannot be cancelled"
)

# --- throttling and availability --------------------------------------------------------
RATE_LIMITED: Final = _pre("rate_limited", 429, "Too many submits for this account")
SUBMIT_UNAVAILABLE: Final = _pre(
    "submit_unavailable", 503, "The command bus cannot take the request now"
)
STATE_UNAVAILABLE: Final = _pre(
    "state_unavailable", 503, "Order or account state cannot be read now"
)

# --- reads ---------------------------------------------------------------------------------
ORDER_NOT_FOUND: Final = _pre("order_not_found", 404, "No such order")
PAYMENT_NOT_FOUND: Final = _pre("payment_not_found", 404, "No such payment")
ACCOUNT_NOT_FOUND: Final = _pre("account_not_found", 404, "No such account in the ledger")
QUERY_PARAM_MISSING: Final = _pre("query_param_missing", 400, "A query parameter is required")
QUERY_PARAM_INVALID: Final = _pre("query_param_invalid", 400, "A query parameter is malformed")

PROBLEM_TYPES: Final[tuple[ProblemType, ...]] = tuple(
    value for value in list(globals().values()) if isinstance(value, ProblemType)
)
"""Every problem type of the API, in the order defined above."""

_BY_CODE: Final = {p.code: p for p in PROBLEM_TYPES}
assert len(_BY_CODE) == len(PROBLEM_TYPES), "problem codes must be unique"


def problem_type(code: str) -> ProblemType:
    """Return the problem type of ``code``; raise ``KeyError`` for an unknown code."""
    return _BY_CODE[code]
