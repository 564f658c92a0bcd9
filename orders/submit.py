"""The idempotent submit of an order or a payment, from the key to the 202.

One request, in order (each step's answer is not stored unless it says so):

1. ``Idempotency-Key``: ``idempotency_key_missing`` / ``idempotency_key_invalid``.
2. Media type, size, JSON, schema and reference data: 415, 413, 400, 422.
3. The token's accounts claim covers the account: ``account_forbidden``.
4. Claim (one store round trip): ``idempotency_key_reused`` (another
   fingerprint), 409 ``idempotency_request_in_progress`` (a live lease),
   the stored answer with ``Idempotent-Replayed: true`` (completed), a
   takeover (an expired lease: reconcile, below), or a fresh claim;
   ``idempotency_unavailable`` when the store cannot answer.
5. The account's submit rate limit: 429 ``rate_limited``, claim released.
6. Pre-trade risk on live state: a denial is a business rejection, stored
   and replayed; ``state_unavailable`` (claim released) if the view fails.
7. The command (transfer id from principal and key, trace id) is reserved
   in the pending book and stored in the record (``prepare``) before it
   goes to the bus, so a later attempt can find or re-send the very same
   command.
8. ``CommandBus.submit``: on success the 202 (a function of the command) is
   stored and sent; on ``BusUnavailable`` 503 ``submit_unavailable``, the
   reservation dropped and the key released (the prepared command stays, so
   the retry re-sends it unchanged rather than building a new one).

Reconciling a takeover: look the transfer id up (``CommandLookup``). Found:
complete the record from the ledger's command and answer its 202 (marked
replayed). Not found but a command was prepared: submit that command again
(the ledger dedupes on the transfer id). Neither: nothing was ever handed
off, so the request runs from step 5. The lookup failing answers 503 and
leaves the record to a later attempt. Never a blind re-run.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Final

from orders import problems
from orders.answers import (
    JsonEncoder,
    accepted_response,
    problem_response,
    replayed,
    stored,
)
from orders.api import ApiRequest, ApiResponse, Caller
from orders.commands import Command, SubmitOrder, SubmitPayment
from orders.errors import BusUnavailable, IdempotencyUnavailable, StateUnavailable
from orders.events import (
    CommandAccepted,
    EventSink,
    IdempotencyConflict,
    IdempotencyStoreFailed,
    LeaseReconciled,
    ReconcileOutcome,
    RecordNotCompleted,
    RequestReplayed,
    SubmitFailed,
)
from orders.idempotency import (
    IDEMPOTENCY_KEY_HEADER,
    Busy,
    Claimed,
    Mismatch,
    Replay,
    check_key,
)
from orders.jsonbody import JsonBodyError, parse_json_body, request_fingerprint
from orders.pending import PendingBook, Reservation
from orders.ports import EntryPorts
from orders.problems import Problem
from orders.ratelimit import SubmitRateLimiter
from orders.recent import RecentCommands
from orders.requests import OrderRequest, PaymentRequest, validate_order, validate_payment
from orders.risk import check_order, check_payment
from orders.settings import NS_PER_S, EntrySettings
from orders.trading import TradingStatus
from orders.types import (
    TraceId,
    TransferId,
    order_id_for,
    payment_id_for,
    transfer_id_for,
)
from pricing.instruments import InstrumentMaster

__all__ = ["Submitter", "parse_body", "random_owner", "trace_id_of"]

_TRACEPARENT: Final = re.compile(r"00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_NULL_TRACE: Final = "0" * 32

SubmitRequest = OrderRequest | PaymentRequest
Submit = SubmitOrder | SubmitPayment


def random_owner() -> str:
    """Return a fresh owner token for a claim (unique per attempt)."""
    return secrets.token_hex(12)


def trace_id_of(request: ApiRequest, fallback: TransferId) -> TraceId:
    """Return the W3C ``traceparent`` trace id of the request, else the transfer id's hex."""
    match = _TRACEPARENT.fullmatch(request.headers.get("traceparent", "").strip())
    if match is not None and match.group(1) != _NULL_TRACE:
        return TraceId(match.group(1))
    return TraceId(fallback.replace("-", ""))


def parse_body(request: ApiRequest, max_body_bytes: int) -> object | Problem:
    """Return the parsed JSON body of a request, or the problem of its form."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return problems.UNSUPPORTED_MEDIA_TYPE(
            f"the body must be application/json, was {media_type or 'not declared'}"
        )
    if len(request.body) > max_body_bytes:
        return problems.BODY_TOO_LARGE(
            f"the body must be at most {max_body_bytes} bytes, was {len(request.body)}"
        )
    try:
        return parse_json_body(request.body)
    except JsonBodyError as e:
        kind = problems.DUPLICATE_FIELD if e.is_duplicate else problems.MALFORMED_JSON
        return kind(str(e))


class Submitter:
    """Runs POST /v1/orders and POST /v1/payments; see the module docstring."""

    def __init__(
        self,
        master: InstrumentMaster,
        ports: EntryPorts,
        settings: EntrySettings,
        *,
        on_event: EventSink,
        encode: JsonEncoder,
        new_owner: Callable[[], str] = random_owner,
    ) -> None:
        self._master = master
        self._ports = ports
        self._settings = settings
        self._on_event = on_event
        self._encode = encode
        self._new_owner = new_owner
        risk = settings.risk
        self.pending = PendingBook(risk.reservation_ttl_s * NS_PER_S)
        self.recent = RecentCommands(settings.recent_commands_max)
        self.trading = TradingStatus()
        self._limiter = SubmitRateLimiter(
            risk.submit_rate_per_s, risk.submit_burst, max_accounts=risk.max_rate_tracked_accounts
        )

    async def submit(self, request: ApiRequest, caller: Caller, operation: str) -> ApiResponse:
        """Answer a submit request of ``caller`` (``operation``: submit_order|submit_payment)."""
        key = check_key(request.headers.get(IDEMPOTENCY_KEY_HEADER))
        if isinstance(key, Problem):
            return self._problem(key)
        body = parse_body(request, self._settings.max_body_bytes)
        if isinstance(body, Problem):
            return self._problem(body)
        parsed: SubmitRequest | Problem = (
            validate_order(body, self._master)
            if operation == "submit_order"
            else validate_payment(body)
        )
        if isinstance(parsed, Problem):
            return self._problem(parsed)
        if not caller.may_act_for(parsed.account_id):
            return self._problem(
                problems.ACCOUNT_FORBIDDEN(
                    f"the token may not act for account {parsed.account_id}", field="/account_id"
                )
            )
        transfer_id = transfer_id_for(caller.principal, key)
        fingerprint = request_fingerprint(request.method, request.path, body)
        owner = self._new_owner()
        try:
            outcome = await self._ports.idempotency.claim(
                transfer_id, fingerprint, owner, request.now_ns
            )
        except IdempotencyUnavailable as e:
            return self._store_failed("claim", e)
        if isinstance(outcome, Mismatch):
            self._on_event(
                IdempotencyConflict(
                    caller.principal, operation, transfer_id, problems.IDEMPOTENCY_KEY_REUSED.code
                )
            )
            return self._problem(
                problems.IDEMPOTENCY_KEY_REUSED(
                    "this Idempotency-Key was used for a different request (method, path or "
                    "body); use a new key for a new request"
                )
            )
        if isinstance(outcome, Busy):
            self._on_event(
                IdempotencyConflict(
                    caller.principal,
                    operation,
                    transfer_id,
                    problems.IDEMPOTENCY_REQUEST_IN_PROGRESS.code,
                )
            )
            return self._in_progress(outcome.lease_until_ns - request.now_ns)
        if isinstance(outcome, Replay):
            self._on_event(
                RequestReplayed(caller.principal, operation, transfer_id, outcome.response.status)
            )
            return replayed(outcome.response)
        assert isinstance(outcome, Claimed)
        attempt = _Attempt(request, caller, parsed, transfer_id, owner)
        if outcome.is_takeover:
            return await self._reconcile(attempt, outcome.command)
        return await self._execute(attempt)

    def note_ledger_event(self, transfer_id: TransferId) -> None:
        """The ledger reported on ``transfer_id``: its state now shows the command."""
        self.pending.release(transfer_id)
        self.recent.forget(transfer_id)

    # --- the steps -------------------------------------------------------------------

    async def _execute(self, attempt: _Attempt) -> ApiResponse:
        now_ns = attempt.request.now_ns
        wait_ns = self._limiter.try_acquire(attempt.parsed.account_id, now_ns)
        if wait_ns:
            await self._release(attempt)
            return self._problem(
                problems.RATE_LIMITED(
                    f"account {attempt.parsed.account_id} exceeds "
                    f"{self._settings.risk.submit_rate_per_s} submits/s; denied, not queued"
                ),
                retry_after_s=int(max(1, -(-wait_ns // NS_PER_S))),
            )
        try:
            decision = await self._assess(attempt)
        except StateUnavailable as e:
            await self._release(attempt)
            return self._problem(
                problems.STATE_UNAVAILABLE(f"account state cannot be read now: {e}"),
                retry_after_s=self._settings.retry_after_s,
            )
        if isinstance(decision, Problem):
            response = self._problem(decision)
            await self._complete(attempt, response)
            return response
        # No await between the check and the reservation: no other submit interleaves.
        command = self._build(attempt)
        self.pending.reserve(decision, now_ns)
        try:
            is_prepared = await self._ports.idempotency.prepare(
                attempt.transfer_id, attempt.owner, command, now_ns
            )
        except IdempotencyUnavailable as e:
            self.pending.release(attempt.transfer_id)
            return self._store_failed("prepare", e)
        if not is_prepared:
            # The lease ran out and another attempt took over: it reconciles, not us.
            self.pending.release(attempt.transfer_id)
            return self._in_progress(self._settings.idempotency.lease_ns)
        return await self._hand_off(attempt, command)

    async def _assess(self, attempt: _Attempt) -> Reservation | Problem:
        parsed, now_ns = attempt.parsed, attempt.request.now_ns
        accounts = self._ports.accounts
        account = await accounts.account(parsed.account_id)
        if isinstance(parsed, PaymentRequest):
            return check_payment(
                parsed, attempt.transfer_id, account, pending=self.pending, now_ns=now_ns
            )
        quote = await accounts.quote(parsed.symbol)
        return check_order(
            parsed,
            attempt.transfer_id,
            account,
            quote,
            state=self.trading.state,
            limits=self._settings.risk,
            pending=self.pending,
            now_ns=now_ns,
        )

    def _build(self, attempt: _Attempt) -> Submit:
        parsed, transfer_id = attempt.parsed, attempt.transfer_id
        head = (
            transfer_id,
            trace_id_of(attempt.request, transfer_id),
            attempt.caller.principal,
            parsed.account_id,
            attempt.request.now_ns,
        )
        if isinstance(parsed, PaymentRequest):
            return SubmitPayment(
                *head,
                payment_id=payment_id_for(transfer_id),
                kind=parsed.kind,
                amount=parsed.amount,
                currency=parsed.currency,
                reference=parsed.reference,
            )
        return SubmitOrder(
            *head,
            order_id=order_id_for(transfer_id),
            symbol=parsed.symbol,
            side=parsed.side,
            quantity=parsed.quantity,
            order_type=parsed.order_type,
            limit_price=parsed.limit_price,
            time_in_force=parsed.time_in_force,
            client_order_id=parsed.client_order_id,
        )

    async def _hand_off(self, attempt: _Attempt, command: Submit) -> ApiResponse:
        try:
            await self._ports.bus.submit(command)
        except BusUnavailable as e:
            self.pending.release(attempt.transfer_id)
            await self._release(attempt)
            self._on_event(SubmitFailed(attempt.transfer_id, str(e)))
            return self._problem(
                problems.SUBMIT_UNAVAILABLE(
                    "the request could not be made durable; retry with the same Idempotency-Key"
                ),
                retry_after_s=self._settings.retry_after_s,
            )
        self.recent.remember(command)
        self._on_event(CommandAccepted(command))
        response = accepted_response(command, self._encode)
        await self._complete(attempt, response)
        return response

    async def _reconcile(self, attempt: _Attempt, prepared: Command | None) -> ApiResponse:
        try:
            found = await self._ports.lookup.find_command(attempt.transfer_id)
        except BusUnavailable as e:
            self._on_event(SubmitFailed(attempt.transfer_id, f"lookup failed: {e}"))
            return self._problem(
                problems.SUBMIT_UNAVAILABLE(
                    "the earlier attempt with this key cannot be checked now; retry later"
                ),
                retry_after_s=self._settings.retry_after_s,
            )
        principal = attempt.caller.principal
        if isinstance(found, SubmitOrder | SubmitPayment):
            self._on_event(LeaseReconciled(principal, attempt.transfer_id, ReconcileOutcome.FOUND))
            self.recent.remember(found)
            response = accepted_response(found, self._encode)
            await self._complete(attempt, response)
            return replayed(stored(response))
        if isinstance(prepared, SubmitOrder | SubmitPayment):
            self._on_event(
                LeaseReconciled(principal, attempt.transfer_id, ReconcileOutcome.RESUBMITTED)
            )
            return await self._hand_off(attempt, prepared)
        self._on_event(LeaseReconciled(principal, attempt.transfer_id, ReconcileOutcome.RERUN))
        return await self._execute(attempt)

    # --- record keeping --------------------------------------------------------------

    async def _complete(self, attempt: _Attempt, response: ApiResponse) -> None:
        try:
            is_done = await self._ports.idempotency.complete(
                attempt.transfer_id, attempt.owner, stored(response), attempt.request.now_ns
            )
        except IdempotencyUnavailable as e:
            self._on_event(RecordNotCompleted(attempt.transfer_id, str(e)))
            return
        if not is_done:
            self._on_event(RecordNotCompleted(attempt.transfer_id, "the lease was taken over"))

    async def _release(self, attempt: _Attempt) -> None:
        try:
            await self._ports.idempotency.release(attempt.transfer_id, attempt.owner)
        except IdempotencyUnavailable as e:
            # The lease still ends by itself; the next attempt then reconciles.
            self._on_event(IdempotencyStoreFailed("release", str(e)))

    def _store_failed(self, operation: str, error: IdempotencyUnavailable) -> ApiResponse:
        self._on_event(IdempotencyStoreFailed(operation, str(error)))
        return self._problem(
            problems.IDEMPOTENCY_UNAVAILABLE(
                "the request was not executed: its Idempotency-Key cannot be checked now"
            ),
            retry_after_s=self._settings.retry_after_s,
        )

    def _in_progress(self, remaining_ns: int) -> ApiResponse:
        cap_s = self._settings.idempotency.in_progress_retry_after_s
        return self._problem(
            problems.IDEMPOTENCY_REQUEST_IN_PROGRESS(
                "a request with this Idempotency-Key is still running; retry after it ends"
            ),
            retry_after_s=max(1, min(cap_s, -(-remaining_ns // NS_PER_S))),
        )

    def _problem(self, problem: Problem, *, retry_after_s: int | None = None) -> ApiResponse:
        return problem_response(problem, self._encode, retry_after_s=retry_after_s)


class _Attempt:
    # One claimed attempt at a request: what every step needs.
    __slots__ = ("caller", "owner", "parsed", "request", "transfer_id")

    def __init__(
        self,
        request: ApiRequest,
        caller: Caller,
        parsed: SubmitRequest,
        transfer_id: TransferId,
        owner: str,
    ) -> None:
        self.request = request
        self.caller = caller
        self.parsed = parsed
        self.transfer_id = transfer_id
        self.owner = owner
