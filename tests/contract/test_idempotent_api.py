"""The idempotency contract of the order API (docs/api.md, one test per row), over every store.

Each row of the contract table is one test, driven through ``OrderEntry``
with the memory store and with the Redis store on a real redis-server.
Replays are compared byte for byte with the first answer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from orders.answers import accepted_response, encode_json
from orders.api import Unauthenticated
from orders.commands import SubmitOrder
from orders.events import LeaseReconciled, ReconcileOutcome, RequestReplayed
from orders.idempotency import Claimed, IdempotencyStore, RecordState
from orders.jsonbody import request_fingerprint
from orders.memory import MemoryIdempotencyStore
from orders.redis import RedisIdempotencyStore
from orders.settings import EntrySettings, IdempotencySettings, RiskLimits
from orders.types import IdempotencyKey, PrincipalId, transfer_id_for
from tests.orderdoubles import (
    NS,
    PRINCIPAL,
    T0,
    Harness,
    body_of,
    caller,
    make_harness,
    order_json,
    payment_json,
    post,
    problem_code,
    wait_for_record,
)

SETTINGS = EntrySettings(idempotency=IdempotencySettings(lease_ms=10_000, retention_s=86_400))
LEASE_NS = 10 * NS
RETENTION_NS = 86_400 * NS


def transfer(key: str = "key-1", principal: str = PRINCIPAL):
    return transfer_id_for(PrincipalId(principal), IdempotencyKey(key))


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[IdempotencyStore]:
    if request.param == "memory":
        yield MemoryIdempotencyStore(SETTINGS.idempotency)
        return
    server = request.getfixturevalue("shared_redis")
    redis_store = RedisIdempotencyStore(
        server.url, SETTINGS.idempotency, key_prefix=f"api-{uuid.uuid4().hex}", timeout_s=5.0
    )
    await redis_store.start()
    yield redis_store
    await redis_store.stop()


@pytest.fixture
def h(store) -> Harness:
    return make_harness(store=store, settings=SETTINGS)


# --- key required but missing; key malformed --------------------------------------------------


async def test_missing_key_is_400_idempotency_key_missing_and_runs_nothing(h) -> None:
    response = await h.entry.handle(post("/v1/orders", order_json(), key=None))

    assert response.status == 400
    assert problem_code(response) == "idempotency_key_missing"
    assert h.bus.submitted == []


@pytest.mark.parametrize(
    "key", ["", "k" * 256, "bad\x01key", "ключ"], ids=["empty", "256", "ctl", "utf8"]
)
async def test_malformed_key_is_400_idempotency_key_invalid_and_nothing_is_stored(h, key) -> None:
    response = await h.entry.handle(post("/v1/orders", order_json(), key=key))

    assert response.status == 400
    assert problem_code(response) == "idempotency_key_invalid"
    assert h.bus.submitted == []
    assert await h.store.get(transfer(key), T0) is None


# --- first request: claim before any side effect ----------------------------------------------


async def test_first_request_claims_and_prepares_before_the_bus_sees_anything(h) -> None:
    h.bus.gate = asyncio.Event()
    first = asyncio.create_task(h.entry.handle(post("/v1/orders", order_json())))
    record = await wait_for_record(h.store, transfer(), is_prepared=True)
    seen_by_bus_while_held = list(h.bus.submitted)

    h.bus.gate.set()
    response = await first

    assert record.state is RecordState.IN_PROGRESS
    assert isinstance(record.command, SubmitOrder)
    assert seen_by_bus_while_held == []
    assert response.status == 202
    assert h.bus.submitted == [record.command]


# --- same key, same request, completed: replay byte for byte ----------------------------------


async def test_completed_request_replays_status_headers_and_body_byte_for_byte(h) -> None:
    first = await h.entry.handle(post("/v1/orders", order_json()))

    again = await h.entry.handle(post("/v1/orders", order_json(), now_ns=T0 + 5 * NS))

    assert first.status == 202
    assert (again.status, again.body) == (first.status, first.body)
    assert again.headers == (*first.headers, ("idempotent-replayed", "true"))
    assert first.header("idempotent-replayed") is None
    assert len(h.bus.submitted) == 1
    assert any(isinstance(e, RequestReplayed) for e in h.events)


async def test_a_replay_does_not_depend_on_the_state_now(h) -> None:
    first = await h.entry.handle(post("/v1/payments", payment_json(kind="withdrawal")))
    h.accounts.set_account(cash={"USD": "0"})

    again = await h.entry.handle(post("/v1/payments", payment_json(kind="withdrawal")))

    assert first.status == 202
    assert again.body == first.body


async def test_same_body_with_reordered_keys_and_spacing_is_the_same_request(h) -> None:
    first = await h.entry.handle(
        post("/v1/orders", b'{"account_id":"ACC-1","symbol":"AAPL","side":"buy","quantity":"10",'
             b'"type":"limit","limit_price":"100.00","time_in_force":"day"}')
    )  # fmt: skip

    again = await h.entry.handle(
        post("/v1/orders", b'{ "time_in_force" : "day", "limit_price" : "100.00", "type":"limit",\n'
             b' "quantity":"10", "side":"buy", "symbol":"AAPL", "account_id":"ACC-1" }')
    )  # fmt: skip

    assert again.header("idempotent-replayed") == "true"
    assert again.body == first.body
    assert len(h.bus.submitted) == 1


# --- same key, different request: 422 ---------------------------------------------------------


async def test_same_key_with_a_different_body_is_422_idempotency_key_reused(h) -> None:
    await h.entry.handle(post("/v1/orders", order_json(quantity="10")))

    response = await h.entry.handle(post("/v1/orders", order_json(quantity="11")))

    assert response.status == 422
    assert problem_code(response) == "idempotency_key_reused"
    assert len(h.bus.submitted) == 1


async def test_same_key_on_another_route_is_422_idempotency_key_reused(h) -> None:
    await h.entry.handle(post("/v1/orders", order_json()))

    response = await h.entry.handle(post("/v1/payments", payment_json()))

    assert problem_code(response) == "idempotency_key_reused"


async def test_a_different_body_is_refused_even_while_the_first_is_in_flight(h) -> None:
    h.bus.gate = asyncio.Event()
    first = asyncio.create_task(h.entry.handle(post("/v1/orders", order_json(quantity="10"))))
    await wait_for_record(h.store, transfer(), is_prepared=False)

    response = await h.entry.handle(post("/v1/orders", order_json(quantity="12")))
    h.bus.gate.set()
    await first

    assert problem_code(response) == "idempotency_key_reused"


async def test_keys_are_scoped_by_principal(h) -> None:
    first = await h.entry.handle(post("/v1/orders", order_json(), who=caller(principal="svc-a")))
    second = await h.entry.handle(post("/v1/orders", order_json(), who=caller(principal="svc-b")))

    assert (first.status, second.status) == (202, 202)
    assert body_of(first)["transfer_id"] != body_of(second)["transfer_id"]
    assert len(h.bus.submitted) == 2


# --- same key while the first is in progress: 409 ---------------------------------------------


async def test_same_key_while_in_progress_is_409_with_retry_after_and_not_stored(h) -> None:
    h.bus.gate = asyncio.Event()
    first = asyncio.create_task(h.entry.handle(post("/v1/orders", order_json())))
    await wait_for_record(h.store, transfer(), is_prepared=False)

    conflict = await h.entry.handle(post("/v1/orders", order_json(), now_ns=T0 + NS))
    h.bus.gate.set()
    accepted = await first
    after = await h.entry.handle(post("/v1/orders", order_json(), now_ns=T0 + 2 * NS))

    assert conflict.status == 409
    assert problem_code(conflict) == "idempotency_request_in_progress"
    assert conflict.header("retry-after") == "1"
    assert after.body == accepted.body  # the 409 was not stored: the replay is the 202
    assert len(h.bus.submitted) == 1


# --- lease expired: reconcile, never re-run blindly -------------------------------------------


async def _die_at_the_bus(h: Harness) -> SubmitOrder:
    # A first attempt prepares its command and then hangs at the bus; it is killed there.
    h.bus.gate = asyncio.Event()
    first = asyncio.create_task(h.entry.handle(post("/v1/orders", order_json())))
    record = await wait_for_record(h.store, transfer(), is_prepared=True)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    h.bus.gate = None
    assert isinstance(record.command, SubmitOrder)
    return record.command


async def test_expired_lease_with_the_command_in_the_ledger_completes_from_it(h) -> None:
    command = await _die_at_the_bus(h)
    h.bus.known[command.transfer_id] = command  # it reached the ledger before the worker died

    response = await h.entry.handle(post("/v1/orders", order_json(), now_ns=T0 + LEASE_NS))
    again = await h.entry.handle(post("/v1/orders", order_json(), now_ns=T0 + LEASE_NS + 1))

    assert response.status == 202
    assert response.body == accepted_response(command, encode_json).body
    assert response.header("idempotent-replayed") == "true"
    assert again.body == response.body
    assert h.bus.submitted == []  # found, so never sent again
    assert LeaseReconciled(PRINCIPAL, command.transfer_id, ReconcileOutcome.FOUND) in h.events


async def test_expired_lease_with_a_prepared_command_not_found_resubmits_it_unchanged(h) -> None:
    command = await _die_at_the_bus(h)

    response = await h.entry.handle(post("/v1/orders", order_json(), now_ns=T0 + LEASE_NS))

    assert response.status == 202
    assert h.bus.submitted == [command]  # the very command, with the first attempt's time
    assert (
        body_of(response)["accepted_at"]
        == body_of(accepted_response(command, encode_json))["accepted_at"]
    )
    assert LeaseReconciled(PRINCIPAL, command.transfer_id, ReconcileOutcome.RESUBMITTED) in h.events


async def test_expired_lease_with_nothing_prepared_or_found_runs_the_request_once(h) -> None:
    fingerprint = request_fingerprint("POST", "/v1/orders", order_json())
    claimed = await h.store.claim(transfer(), fingerprint, "died-during-risk", T0)
    assert claimed == Claimed(is_takeover=False)

    busy = await h.entry.handle(post("/v1/orders", order_json(), now_ns=T0 + LEASE_NS - 1))
    response = await h.entry.handle(post("/v1/orders", order_json(), now_ns=T0 + LEASE_NS))

    assert problem_code(busy) == "idempotency_request_in_progress"
    assert response.status == 202
    assert h.bus.lookups == [transfer()]  # looked up before running
    assert len(h.bus.submitted) == 1
    assert LeaseReconciled(PRINCIPAL, transfer(), ReconcileOutcome.RERUN) in h.events


async def test_expired_lease_whose_lookup_fails_answers_503_and_submits_nothing(h) -> None:
    await _die_at_the_bus(h)
    h.bus.is_lookup_down = True

    response = await h.entry.handle(post("/v1/orders", order_json(), now_ns=T0 + LEASE_NS))

    assert response.status == 503
    assert problem_code(response) == "submit_unavailable"
    assert h.bus.submitted == []


# --- rejected before execution: not stored ----------------------------------------------------


async def test_schema_rejection_is_not_stored_and_a_corrected_retry_with_the_key_succeeds(
    h,
) -> None:
    refused = await h.entry.handle(post("/v1/orders", order_json(quantity=10)))

    accepted = await h.entry.handle(post("/v1/orders", order_json(quantity="10")))

    assert (refused.status, problem_code(refused)) == (400, "decimal_not_string")
    assert accepted.status == 202


async def test_auth_rejection_is_not_stored_and_a_retry_with_the_key_succeeds(h) -> None:
    no_scope = await h.entry.handle(post("/v1/orders", order_json(), who=caller("orders:read")))
    expired = await h.entry.handle(
        post("/v1/orders", order_json(), who=Unauthenticated("token_expired", "expired"))
    )
    other_account = await h.entry.handle(
        post("/v1/orders", order_json(), who=caller(accounts=["ACC-2"]))
    )

    accepted = await h.entry.handle(post("/v1/orders", order_json()))

    assert [problem_code(r) for r in (no_scope, expired, other_account)] == [
        "insufficient_scope",
        "token_expired",
        "account_forbidden",
    ]
    assert (no_scope.status, expired.status, other_account.status) == (403, 401, 403)
    assert accepted.status == 202
    assert accepted.header("idempotent-replayed") is None


async def test_rate_limit_rejection_is_not_stored_and_a_later_retry_with_the_key_succeeds(
    store,
) -> None:
    settings = replace(SETTINGS, risk=RiskLimits(submit_rate_per_s=1, submit_burst=1))
    h = make_harness(store=store, settings=settings)
    await h.entry.handle(post("/v1/orders", order_json(), key="first"))

    limited = await h.entry.handle(post("/v1/orders", order_json(), key="second"))
    stored = await h.store.get(transfer("second"), T0)
    later = await h.entry.handle(post("/v1/orders", order_json(), key="second", now_ns=T0 + NS))

    assert (limited.status, problem_code(limited)) == (429, "rate_limited")
    assert limited.header("retry-after") == "1"
    assert stored is None
    assert later.status == 202


async def test_bus_down_is_503_with_the_key_released_and_the_retry_succeeds_once(h) -> None:
    h.bus.is_down = True
    down = await h.entry.handle(post("/v1/orders", order_json()))
    h.bus.is_down = False

    retry = await h.entry.handle(post("/v1/orders", order_json(), now_ns=T0 + NS))
    replay = await h.entry.handle(post("/v1/orders", order_json(), now_ns=T0 + 2 * NS))

    assert (down.status, problem_code(down)) == (503, "submit_unavailable")
    assert down.header("retry-after") == "1"
    assert retry.status == 202
    assert replay.body == retry.body
    assert len(h.bus.submitted) == 1


async def test_account_state_unavailable_is_503_and_not_stored(h) -> None:
    h.accounts.is_down = True
    down = await h.entry.handle(post("/v1/orders", order_json()))
    h.accounts.is_down = False

    retry = await h.entry.handle(post("/v1/orders", order_json()))

    assert (down.status, problem_code(down)) == (503, "state_unavailable")
    assert retry.status == 202


# --- business rejection after execution started: stored and replayed --------------------------


async def test_business_rejection_is_stored_and_replayed_and_a_new_key_is_needed(h) -> None:
    h.accounts.set_account(cash={"USD": "10"})
    refused = await h.entry.handle(post("/v1/orders", order_json()))
    h.accounts.set_account(cash={"USD": "1000000"})

    replayed = await h.entry.handle(post("/v1/orders", order_json()))
    new_key = await h.entry.handle(post("/v1/orders", order_json(), key="key-2"))

    assert (refused.status, problem_code(refused)) == (422, "insufficient_buying_power")
    assert replayed.body == refused.body
    assert replayed.header("idempotent-replayed") == "true"
    assert new_key.status == 202
    assert len(h.bus.submitted) == 1


# --- retention --------------------------------------------------------------------------------


async def test_records_are_kept_for_the_retention_then_the_key_is_new_again(h) -> None:
    first = await h.entry.handle(post("/v1/orders", order_json()))

    last_replay = await h.entry.handle(
        post("/v1/orders", order_json(), now_ns=T0 + RETENTION_NS - 1)
    )
    after = await h.entry.handle(post("/v1/orders", order_json(), now_ns=T0 + RETENTION_NS))

    assert last_replay.body == first.body
    assert after.header("idempotent-replayed") is None
    assert body_of(after)["accepted_at"] != body_of(first)["accepted_at"]
    # Same transfer id: the ledger's own dedupe still makes it one order.
    assert body_of(after)["transfer_id"] == body_of(first)["transfer_id"]
