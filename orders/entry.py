"""``OrderEntry``: the order API as an application service, async but free of I/O.

``handle(ApiRequest) -> ApiResponse`` does everything between the HTTP
adapter and the ports: routing (``orders.routes``), the 401/403 of the
route's scope, then the operation. It awaits the ports (``EntryPorts``)
and never touches a socket, a clock or the environment; the adapter
verifies the token, passes the time and writes the answer back.

- Submits (POST /v1/orders, /v1/payments): ``orders.submit``.
- Reads go through ``OrderView``; an order or payment this process
  accepted that the view does not show yet answers ``accepted``.
- DELETE /v1/orders/{id} submits a ``CancelOrder`` whose transfer id
  derives from the order id (``cancel_transfer_id_for``), so cancelling is
  idempotent by nature and needs no key; cancels pass even when trading is
  halted or reducing.
- POST /admin/trading-state moves the kill switch (an audit event).

The gateway calls ``note_ledger_event(transfer_id)`` for each order or
payment event of the ledger, which releases the pending reservation and
the read-your-write entry of that transfer.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Final
from urllib.parse import parse_qs

from orders import problems
from orders.answers import JsonEncoder, encode_json, json_response, problem_response
from orders.api import ApiRequest, ApiResponse, Caller, Unauthenticated
from orders.commands import CancelOrder
from orders.errors import BusUnavailable, InvalidCursor, StateUnavailable
from orders.events import (
    CommandAccepted,
    EventSink,
    RequestAnswered,
    SubmitFailed,
    TradingStateChanged,
    ignore_events,
)
from orders.openapi import openapi_document
from orders.ports import EntryPorts
from orders.problems import Problem
from orders.recent import as_order_record, as_payment_record
from orders.requests import ACCOUNT_ID_PATTERN, validate_trading_state
from orders.responses import (
    cancel_body,
    order_body,
    order_page_body,
    payment_body,
    trading_status_body,
)
from orders.routes import API_ROUTES, ORDER_ROUTES, RouteMatch, match_route
from orders.settings import EntrySettings
from orders.submit import Submitter, parse_body, random_owner, trace_id_of
from orders.trading import TradingStatus
from orders.types import (
    AccountId,
    OrderId,
    PaymentId,
    PrincipalId,
    TransferId,
    cancel_transfer_id_for,
)
from orders.views import FINAL_ORDER_STATUSES, OrderRecord, OrderStatus
from pricing.instruments import InstrumentMaster

__all__ = ["OrderEntry"]

_UNAUTHENTICATED: Final = {
    "token_missing": problems.TOKEN_MISSING,
    "token_invalid": problems.TOKEN_INVALID,
    "token_expired": problems.TOKEN_EXPIRED,
}
_ACCOUNT_ID: Final = re.compile(ACCOUNT_ID_PATTERN)
_LIST_PARAMS: Final = frozenset({"account_id", "status", "cursor", "limit"})
_MAX_CURSOR_LENGTH: Final = 512
_ANONYMOUS: Final = PrincipalId("anonymous")

_Handler = Callable[["_Context"], Awaitable[ApiResponse]]


class _Context:
    # One routed, authorised request.
    __slots__ = ("caller", "params", "request")

    def __init__(self, request: ApiRequest, caller: Caller, params: Mapping[str, str]) -> None:
        self.request = request
        self.caller = caller
        self.params = params


class OrderEntry:
    """The order API's application service; see the module docstring."""

    def __init__(
        self,
        master: InstrumentMaster,
        ports: EntryPorts,
        settings: EntrySettings | None = None,
        *,
        on_event: EventSink = ignore_events,
        encode: JsonEncoder = encode_json,
        new_owner: Callable[[], str] = random_owner,
        openapi: Mapping[str, object] | None = None,
    ) -> None:
        self._ports = ports
        self._settings = settings or EntrySettings()
        self._on_event = on_event
        self._encode = encode
        self._submitter = Submitter(
            master, ports, self._settings, on_event=on_event, encode=encode, new_owner=new_owner
        )
        self._openapi = encode(dict(openapi or openapi_document(API_ROUTES)))
        self._handlers: dict[str, _Handler] = {
            "submit_order": self._submit_order,
            "submit_payment": self._submit_payment,
            "list_orders": self._list_orders,
            "get_order": self._get_order,
            "cancel_order": self._cancel_order,
            "get_payment": self._get_payment,
            "set_trading_state": self._set_trading_state,
            "get_trading_state": self._get_trading_state,
            "get_openapi": self._get_openapi,
        }
        missing = {r.operation for r in ORDER_ROUTES} - set(self._handlers)
        assert not missing, f"routes without a handler: {missing}"

    @property
    def trading_status(self) -> TradingStatus:
        return self._submitter.trading

    def note_ledger_event(self, transfer_id: TransferId) -> None:
        """The ledger reported on ``transfer_id`` (any order or payment event)."""
        self._submitter.note_ledger_event(transfer_id)

    async def handle(self, request: ApiRequest) -> ApiResponse:
        """Answer one request; every answer is a documented status and code."""
        matched = match_route(ORDER_ROUTES, request.method, request.path)
        principal = (
            None if isinstance(request.caller, Unauthenticated) else request.caller.principal
        )
        if isinstance(matched, Problem):
            response = self._problem(matched)
            operation = "unrouted"
        else:
            operation = matched.route.operation
            response = await self._routed(request, matched)
        self._on_event(RequestAnswered(principal, operation, response.status, response.code))
        return response

    async def _routed(self, request: ApiRequest, matched: RouteMatch) -> ApiResponse:
        route = matched.route
        caller = request.caller
        if route.scope is None:
            anonymous = Caller(principal=_ANONYMOUS, scopes=frozenset(), accounts=frozenset())
            return await self._handlers[route.operation](
                _Context(request, anonymous, matched.path_params)
            )
        if isinstance(caller, Unauthenticated):
            return self._problem(_UNAUTHENTICATED[caller.code](caller.detail))
        if not caller.has_scope(route.scope):
            return self._problem(
                problems.INSUFFICIENT_SCOPE(
                    f"{route.method} {route.path} needs scope {route.scope}"
                )
            )
        return await self._handlers[route.operation](_Context(request, caller, matched.path_params))

    # --- submits ------------------------------------------------------------------------

    async def _submit_order(self, ctx: _Context) -> ApiResponse:
        return await self._submitter.submit(ctx.request, ctx.caller, "submit_order")

    async def _submit_payment(self, ctx: _Context) -> ApiResponse:
        return await self._submitter.submit(ctx.request, ctx.caller, "submit_payment")

    # --- orders -------------------------------------------------------------------------

    async def _find_order(self, ctx: _Context) -> OrderRecord | ApiResponse:
        # The caller's order, from the view or the recent map; or the answer to send.
        order_id = OrderId(ctx.params["order_id"])
        recent = self._submitter.recent.order(order_id)
        try:
            record = await self._ports.orders.get_order(order_id)
        except StateUnavailable as e:
            if recent is None:
                return self._unavailable(e)
            record = None
        if record is None and recent is not None:
            record = as_order_record(recent)
        if record is None or not ctx.caller.may_act_for(record.account_id):
            # Another account's order answers as if it did not exist.
            return self._problem(problems.ORDER_NOT_FOUND(f"no order {order_id}"))
        return record

    async def _get_order(self, ctx: _Context) -> ApiResponse:
        found = await self._find_order(ctx)
        if isinstance(found, ApiResponse):
            return found
        return json_response(200, order_body(found), self._encode)

    async def _cancel_order(self, ctx: _Context) -> ApiResponse:
        found = await self._find_order(ctx)
        if isinstance(found, ApiResponse):
            return found
        if found.status is OrderStatus.CANCELLED:
            return json_response(200, order_body(found), self._encode)
        if found.status in FINAL_ORDER_STATUSES:
            return self._problem(
                problems.ORDER_NOT_CANCELLABLE(
                    f"order {found.order_id} is {found.status.value}; only a resting order "
                    "can be cancelled",
                    status_of_order=found.status.value,
                )
            )
        transfer_id = cancel_transfer_id_for(found.order_id)
        command = CancelOrder(
            transfer_id=transfer_id,
            trace_id=trace_id_of(ctx.request, transfer_id),
            principal=ctx.caller.principal,
            account_id=found.account_id,
            ts_accepted=ctx.request.now_ns,
            order_id=found.order_id,
        )
        try:
            await self._ports.bus.submit(command)
        except BusUnavailable as e:
            self._on_event(SubmitFailed(transfer_id, str(e)))
            return self._problem(
                problems.SUBMIT_UNAVAILABLE("the cancel could not be made durable; retry"),
                retry_after_s=self._settings.retry_after_s,
            )
        self._on_event(CommandAccepted(command))
        return json_response(202, cancel_body(command), self._encode)

    async def _list_orders(self, ctx: _Context) -> ApiResponse:
        query = _parse_query(ctx.request.query)
        if isinstance(query, Problem):
            return self._problem(query)
        parsed = self._list_params(query)
        if isinstance(parsed, Problem):
            return self._problem(parsed)
        account_id, status, cursor, limit = parsed
        if not ctx.caller.may_act_for(account_id):
            return self._problem(
                problems.ACCOUNT_FORBIDDEN(f"the token may not read account {account_id}")
            )
        try:
            page = await self._ports.orders.list_orders(
                account_id, status=status, cursor=cursor, limit=limit
            )
        except StateUnavailable as e:
            return self._unavailable(e)
        except (InvalidCursor, ValueError):
            return self._problem(
                problems.QUERY_PARAM_INVALID(
                    "cursor is not one this API handed out", field="cursor"
                )
            )
        orders = list(page.orders)
        if cursor is None and status in (None, OrderStatus.ACCEPTED):
            # Newest first: orders the ledger has not shown yet lead the first page.
            listed = {o.order_id for o in orders}
            fresh = [
                as_order_record(c)
                for c in self._submitter.recent.orders_of(account_id)
                if c.order_id not in listed
            ]
            orders = fresh + orders
        return json_response(200, order_page_body(orders, page.next_cursor), self._encode)

    def _list_params(
        self, query: Mapping[str, str]
    ) -> tuple[AccountId, OrderStatus | None, str | None, int] | Problem:
        unknown = sorted(set(query) - _LIST_PARAMS)
        if unknown:
            return problems.QUERY_PARAM_INVALID(
                f"unknown query parameter {unknown[0]!r:.40}", field=unknown[0]
            )
        account = query.get("account_id")
        if account is None:
            return problems.QUERY_PARAM_MISSING("account_id is required", field="account_id")
        if len(account) > 64 or _ACCOUNT_ID.search(account) is None:
            return problems.QUERY_PARAM_INVALID(
                f"account_id is not an account id, was {account!r:.40}", field="account_id"
            )
        status_text = query.get("status")
        status = None
        if status_text is not None:
            try:
                status = OrderStatus(status_text)
            except ValueError:
                return problems.QUERY_PARAM_INVALID(
                    f"status must be one of {', '.join(OrderStatus)}, was {status_text!r:.40}",
                    field="status",
                )
        cursor = query.get("cursor")
        if cursor is not None and not 1 <= len(cursor) <= _MAX_CURSOR_LENGTH:
            return problems.QUERY_PARAM_INVALID(
                "cursor is not one this API handed out", field="cursor"
            )
        s = self._settings
        limit_text = query.get("limit")
        limit = s.list_limit_default
        if limit_text is not None:
            if not (limit_text.isascii() and limit_text.isdigit()) or not (
                1 <= int(limit_text) <= s.list_limit_max
            ):
                return problems.QUERY_PARAM_INVALID(
                    f"limit must be an integer from 1 to {s.list_limit_max}, "
                    f"was {limit_text!r:.20}",
                    field="limit",
                )
            limit = int(limit_text)
        return AccountId(account), status, cursor, limit

    # --- payments -----------------------------------------------------------------------

    async def _get_payment(self, ctx: _Context) -> ApiResponse:
        payment_id = PaymentId(ctx.params["payment_id"])
        recent = self._submitter.recent.payment(payment_id)
        try:
            record = await self._ports.orders.get_payment(payment_id)
        except StateUnavailable as e:
            if recent is None:
                return self._unavailable(e)
            record = None
        if record is None and recent is not None:
            record = as_payment_record(recent)
        if record is None or not ctx.caller.may_act_for(record.account_id):
            return self._problem(problems.PAYMENT_NOT_FOUND(f"no payment {payment_id}"))
        return json_response(200, payment_body(record), self._encode)

    # --- admin and the document -----------------------------------------------------------

    async def _set_trading_state(self, ctx: _Context) -> ApiResponse:
        body = parse_body(ctx.request, self._settings.max_body_bytes)
        if isinstance(body, Problem):
            return self._problem(body)
        wanted = validate_trading_state(body)
        if isinstance(wanted, Problem):
            return self._problem(wanted)
        previous = self._submitter.trading
        current = TradingStatus(
            state=wanted.state,
            reason=wanted.reason,
            changed_by=ctx.caller.principal,
            ts_changed=ctx.request.now_ns,
        )
        self._submitter.trading = current
        self._on_event(TradingStateChanged(previous, current))
        return json_response(200, trading_status_body(current), self._encode)

    async def _get_trading_state(self, ctx: _Context) -> ApiResponse:
        return json_response(200, trading_status_body(self._submitter.trading), self._encode)

    async def _get_openapi(self, ctx: _Context) -> ApiResponse:
        return ApiResponse(200, (("content-type", "application/json"),), self._openapi)

    # --- answers --------------------------------------------------------------------------

    def _unavailable(self, error: StateUnavailable) -> ApiResponse:
        return self._problem(
            problems.STATE_UNAVAILABLE(f"order state cannot be read now: {error}"),
            retry_after_s=self._settings.retry_after_s,
        )

    def _problem(self, problem: Problem, *, retry_after_s: int | None = None) -> ApiResponse:
        return problem_response(problem, self._encode, retry_after_s=retry_after_s)


def _parse_query(query: str) -> dict[str, str] | Problem:
    try:
        values = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=16)
    except ValueError as e:
        return problems.QUERY_PARAM_INVALID(f"the query string is malformed: {e}")
    repeated = sorted(name for name, found in values.items() if len(found) > 1)
    if repeated:
        return problems.QUERY_PARAM_INVALID(
            f"query parameter {repeated[0]!r:.40} appears twice", field=repeated[0]
        )
    return {name: found[0] for name, found in values.items()}
