"""Contract of the idempotency store port, run over every adapter.

``memory`` is the embedded default; ``redis`` runs against a real
redis-server (one per session, a unique key prefix per test), and a
private one for the kill-and-restart case.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest

from orders.commands import SubmitOrder
from orders.errors import IdempotencyUnavailable
from orders.idempotency import (
    Busy,
    Claimed,
    IdempotencyStore,
    Mismatch,
    RecordState,
    Replay,
    StoredResponse,
)
from orders.memory import MemoryIdempotencyStore
from orders.redis import RedisIdempotencyStore
from orders.settings import IdempotencySettings
from orders.types import (
    AccountId,
    IdempotencyKey,
    OrderType,
    PrincipalId,
    Side,
    TimeInForce,
    TraceId,
    order_id_for,
    transfer_id_for,
)
from tests.servers import RedisServer, free_port

NS = 1_000_000_000
T0 = 1_800_000_000 * NS
SETTINGS = IdempotencySettings(lease_ms=10_000, retention_s=3_600)
LEASE = 10 * NS
RETENTION = 3_600 * NS
TRANSFER = transfer_id_for(PrincipalId("svc"), IdempotencyKey("k-1"))
OTHER_TRANSFER = transfer_id_for(PrincipalId("svc"), IdempotencyKey("k-2"))
FP = "a" * 64
OTHER_FP = "b" * 64
RESPONSE = StoredResponse(
    202,
    (("content-type", "application/json"), ("location", "/v1/orders/ord_x")),
    b'{"order_id":"ord_x","status":"accepted"}',
)


def make_command(transfer_id=TRANSFER) -> SubmitOrder:
    return SubmitOrder(
        transfer_id=transfer_id,
        trace_id=TraceId("ab" * 16),
        principal=PrincipalId("svc"),
        account_id=AccountId("ACC-1"),
        ts_accepted=T0,
        order_id=order_id_for(transfer_id),
        symbol="AAPL",
        side=Side.BUY,
        quantity=Decimal("10"),
        order_type=OrderType.LIMIT,
        limit_price=Decimal("187.25"),
        time_in_force=TimeInForce.DAY,
    )


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def new_store(request: pytest.FixtureRequest) -> Callable[[], IdempotencyStore]:
    """A factory of fresh, empty stores of one adapter (one shared namespace per test)."""
    if request.param == "memory":
        shared = MemoryIdempotencyStore(SETTINGS)
        return lambda: shared
    server: RedisServer = request.getfixturevalue("shared_redis")
    prefix = f"contract-{uuid.uuid4().hex}"
    return lambda: RedisIdempotencyStore(server.url, SETTINGS, key_prefix=prefix, timeout_s=5.0)


@pytest.fixture
async def store(new_store: Callable[[], IdempotencyStore]) -> AsyncIterator[IdempotencyStore]:
    started = new_store()
    await started.start()
    yield started
    await started.stop()


# --- claims ---------------------------------------------------------------------------


async def test_first_claim_creates_an_in_progress_record_with_a_lease(store) -> None:
    outcome = await store.claim(TRANSFER, FP, "A", T0)
    record = await store.get(TRANSFER, T0)

    assert outcome == Claimed(is_takeover=False)
    assert record is not None
    assert (record.state, record.owner, record.fingerprint) == (RecordState.IN_PROGRESS, "A", FP)
    assert (record.lease_until_ns, record.expires_at_ns) == (T0 + LEASE, T0 + RETENTION)
    assert (record.command, record.response) == (None, None)


async def test_claim_while_the_lease_is_live_is_busy_until_the_lease_ends(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)

    outcome = await store.claim(TRANSFER, FP, "B", T0 + LEASE - 1)

    assert outcome == Busy(T0 + LEASE)


async def test_claim_with_another_fingerprint_while_in_progress_is_a_mismatch(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)

    outcome = await store.claim(TRANSFER, OTHER_FP, "B", T0 + 1)

    assert outcome == Mismatch()


async def test_claim_with_another_fingerprint_after_completion_is_a_mismatch(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)
    await store.complete(TRANSFER, "A", RESPONSE, T0 + 1)

    outcome = await store.claim(TRANSFER, OTHER_FP, "B", T0 + 2)

    assert outcome == Mismatch()


async def test_claim_with_another_fingerprint_after_the_lease_expired_is_a_mismatch(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)

    outcome = await store.claim(TRANSFER, OTHER_FP, "B", T0 + LEASE + 1)
    record = await store.get(TRANSFER, T0 + LEASE + 1)

    assert outcome == Mismatch()
    assert record is not None
    assert record.owner == "A"


async def test_claim_after_completion_replays_the_stored_response_byte_for_byte(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)
    assert await store.complete(TRANSFER, "A", RESPONSE, T0 + 1)

    outcome = await store.claim(TRANSFER, FP, "B", T0 + 2)

    assert outcome == Replay(RESPONSE)


async def test_a_binary_body_and_many_headers_survive_the_store(store) -> None:
    body = bytes(range(256)) * 40
    headers = tuple((f"x-h{i}", f"v{i} ü") for i in range(20))
    response = StoredResponse(422, headers, body)
    await store.claim(TRANSFER, FP, "A", T0)
    await store.complete(TRANSFER, "A", response, T0)

    outcome = await store.claim(TRANSFER, FP, "B", T0 + 1)

    assert isinstance(outcome, Replay)
    assert outcome.response.body == body
    assert outcome.response.headers == headers
    assert outcome.response.status == 422


async def test_a_repeated_claim_by_the_same_owner_is_claimed_again(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)

    outcome = await store.claim(TRANSFER, FP, "A", T0 + 1)

    assert outcome == Claimed(is_takeover=False)


async def test_keys_are_independent(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)

    outcome = await store.claim(OTHER_TRANSFER, FP, "B", T0)

    assert outcome == Claimed(is_takeover=False)


async def test_concurrent_claims_of_one_key_let_exactly_one_through(store) -> None:
    outcomes = await asyncio.gather(
        *(store.claim(TRANSFER, FP, f"owner-{i}", T0) for i in range(50))
    )

    claimed = [o for o in outcomes if isinstance(o, Claimed)]
    busy = [o for o in outcomes if isinstance(o, Busy)]
    assert len(claimed) == 1
    assert len(busy) == 49


# --- leases and takeover --------------------------------------------------------------


async def test_claim_at_the_end_of_the_lease_takes_over_without_a_command(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)

    outcome = await store.claim(TRANSFER, FP, "B", T0 + LEASE)
    record = await store.get(TRANSFER, T0 + LEASE)

    assert outcome == Claimed(is_takeover=True, command=None)
    assert record is not None
    assert (record.owner, record.lease_until_ns) == ("B", T0 + 2 * LEASE)


async def test_takeover_hands_back_the_prepared_command(store) -> None:
    command = make_command()
    await store.claim(TRANSFER, FP, "A", T0)
    assert await store.prepare(TRANSFER, "A", command, T0 + 1)

    outcome = await store.claim(TRANSFER, FP, "B", T0 + 1 + LEASE)

    assert outcome == Claimed(is_takeover=True, command=command)


async def test_prepare_renews_the_lease(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)
    await store.prepare(TRANSFER, "A", make_command(), T0 + 5 * NS)

    outcome = await store.claim(TRANSFER, FP, "B", T0 + LEASE)

    assert outcome == Busy(T0 + 5 * NS + LEASE)


async def test_an_owner_whose_lease_was_taken_over_can_change_nothing(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)
    await store.claim(TRANSFER, FP, "B", T0 + LEASE)

    prepared = await store.prepare(TRANSFER, "A", make_command(), T0 + LEASE + 1)
    completed = await store.complete(TRANSFER, "A", RESPONSE, T0 + LEASE + 1)
    released = await store.release(TRANSFER, "A")
    record = await store.get(TRANSFER, T0 + LEASE + 1)

    assert (prepared, completed, released) == (False, False, False)
    assert record is not None
    assert (record.owner, record.state, record.command) == ("B", RecordState.IN_PROGRESS, None)


async def test_complete_by_a_stranger_changes_nothing(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)

    completed = await store.complete(TRANSFER, "X", RESPONSE, T0 + 1)
    outcome = await store.claim(TRANSFER, FP, "B", T0 + 2)

    assert completed is False
    assert outcome == Busy(T0 + LEASE)


async def test_a_repeated_complete_by_the_owner_succeeds_and_keeps_the_first_response(
    store,
) -> None:
    await store.claim(TRANSFER, FP, "A", T0)
    await store.complete(TRANSFER, "A", RESPONSE, T0 + 1)

    again = await store.complete(TRANSFER, "A", StoredResponse(500, (), b"other"), T0 + 2)
    outcome = await store.claim(TRANSFER, FP, "B", T0 + 3)

    assert again is True
    assert outcome == Replay(RESPONSE)


async def test_prepare_on_a_completed_record_changes_nothing(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)
    await store.complete(TRANSFER, "A", RESPONSE, T0 + 1)

    prepared = await store.prepare(TRANSFER, "A", make_command(), T0 + 2)

    assert prepared is False


# --- release ----------------------------------------------------------------------------


async def test_release_without_a_prepared_command_deletes_the_record(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)

    released = await store.release(TRANSFER, "A")
    record = await store.get(TRANSFER, T0 + 1)
    outcome = await store.claim(TRANSFER, OTHER_FP, "B", T0 + 1)

    assert released is True
    assert record is None
    assert outcome == Claimed(is_takeover=False)


async def test_release_with_a_prepared_command_ends_the_lease_and_keeps_the_command(
    store,
) -> None:
    command = make_command()
    await store.claim(TRANSFER, FP, "A", T0)
    await store.prepare(TRANSFER, "A", command, T0)

    released = await store.release(TRANSFER, "A")
    outcome = await store.claim(TRANSFER, FP, "B", T0 + 1)

    assert released is True
    assert outcome == Claimed(is_takeover=True, command=command)


async def test_release_by_a_stranger_changes_nothing(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)

    released = await store.release(TRANSFER, "X")
    outcome = await store.claim(TRANSFER, FP, "B", T0 + 1)

    assert released is False
    assert outcome == Busy(T0 + LEASE)


async def test_release_of_a_completed_record_changes_nothing(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)
    await store.complete(TRANSFER, "A", RESPONSE, T0)

    released = await store.release(TRANSFER, "A")
    outcome = await store.claim(TRANSFER, FP, "B", T0 + 1)

    assert released is False
    assert outcome == Replay(RESPONSE)


# --- retention ---------------------------------------------------------------------------


async def test_a_completed_record_is_kept_for_the_retention_from_completion(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)
    await store.complete(TRANSFER, "A", RESPONSE, T0 + 7 * NS)

    last_replay = await store.claim(TRANSFER, FP, "B", T0 + 7 * NS + RETENTION - 1)
    after = await store.claim(TRANSFER, OTHER_FP, "C", T0 + 7 * NS + RETENTION)

    assert last_replay == Replay(RESPONSE)
    assert after == Claimed(is_takeover=False)


async def test_an_abandoned_in_progress_record_expires_after_the_retention(store) -> None:
    await store.claim(TRANSFER, FP, "A", T0)

    record = await store.get(TRANSFER, T0 + RETENTION)
    outcome = await store.claim(TRANSFER, OTHER_FP, "B", T0 + RETENTION)

    assert record is None
    assert outcome == Claimed(is_takeover=False)


async def test_get_of_an_unknown_key_is_none(store) -> None:
    assert await store.get(TRANSFER, T0) is None


# --- memory only: the bound ----------------------------------------------------------------


async def test_memory_store_past_its_bound_forgets_the_oldest_record() -> None:
    store = MemoryIdempotencyStore(IdempotencySettings(memory_max_records=3))
    keys = [transfer_id_for(PrincipalId("svc"), IdempotencyKey(f"k{i}")) for i in range(4)]
    for key in keys:
        await store.claim(key, FP, "A", T0)

    kept = [await store.get(key, T0) is not None for key in keys]

    assert kept == [False, True, True, True]
    assert len(store) == 3


# --- redis only: an unreachable or restarted server -----------------------------------------


@pytest.fixture
async def unreachable_store() -> AsyncIterator[RedisIdempotencyStore]:
    store = RedisIdempotencyStore(f"redis://127.0.0.1:{free_port()}/0", SETTINGS, timeout_s=0.2)
    await store.start()
    yield store
    await store.stop()


@pytest.mark.integration
@pytest.mark.parametrize("operation", ["claim", "prepare", "complete", "release", "get"])
async def test_redis_store_without_a_server_raises_idempotency_unavailable(
    unreachable_store, operation
) -> None:
    calls = {
        "claim": lambda s: s.claim(TRANSFER, FP, "A", T0),
        "prepare": lambda s: s.prepare(TRANSFER, "A", make_command(), T0),
        "complete": lambda s: s.complete(TRANSFER, "A", RESPONSE, T0),
        "release": lambda s: s.release(TRANSFER, "A"),
        "get": lambda s: s.get(TRANSFER, T0),
    }

    with pytest.raises(IdempotencyUnavailable):
        await calls[operation](unreachable_store)


@pytest.mark.integration
async def test_redis_store_used_before_start_raises_idempotency_unavailable() -> None:
    store = RedisIdempotencyStore(f"redis://127.0.0.1:{free_port()}/0", SETTINGS)

    with pytest.raises(IdempotencyUnavailable, match="not started"):
        await store.claim(TRANSFER, FP, "A", T0)


@pytest.mark.integration
async def test_redis_killed_refuses_claims_and_after_a_restart_claims_work_again(
    redis_server,
) -> None:
    store = RedisIdempotencyStore(redis_server.url, SETTINGS, timeout_s=1.0)
    await store.start()
    try:
        before = await store.claim(TRANSFER, FP, "A", T0)
        redis_server.stop()
        with pytest.raises(IdempotencyUnavailable):
            await store.claim(OTHER_TRANSFER, FP, "B", T0)
        redis_server.start()
        after = await store.claim(OTHER_TRANSFER, FP, "B", T0)
        lost = await store.get(TRANSFER, T0)
    finally:
        await store.stop()

    assert before == Claimed(is_takeover=False)
    assert after == Claimed(is_takeover=False)
    assert lost is None  # the restarted server is empty (no persistence)
