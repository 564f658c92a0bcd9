"""The ledger's operator commands (``tickgate ledger ...``), on the store the settings name.

Each function opens what it needs, does one thing, closes, and returns a
process exit code with its one-line answer printed by the caller:

- ``verify``: the hash chain, every transaction's balance, and every
  materialised balance against the sum of its entries;
- ``dlq_list`` / ``dlq_redrive``: the dead letters, and re-submitting them
  to the command bus (audit-logged, with the operator's name);
- ``reconcile``: compare the Redis position cache with the ledger, and
  rewrite every cached account that differs from the ledger's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.accounts.dayroll import day_start_ns
from gateway.audit import audit
from gateway.clock import Clock
from gateway.settings import Settings
from gateway.trading.config import ledger_kafka_settings
from gateway.trading.runtime import build_ledger_store
from ledger import admin
from ledger.accounts import load_accounts
from ledger.inbox import InboxBus
from ledger.store import DeadLetter
from portfolio.store import AccountRecord
from portfolio.types import AccountId
from pricing.instruments import InstrumentMaster

__all__ = ["ReconcileReport", "dlq_list", "dlq_redrive", "reconcile", "verify"]

logger = logging.getLogger(__name__)

# Cached floats against the ledger's exact values: anything closer is the same number.
_RELATIVE_TOLERANCE = 1e-9
_ABSOLUTE_TOLERANCE = 1e-6


async def verify(settings: Settings) -> tuple[bool, str]:
    """Check the ledger; (clean, one summary line naming the first bad row if any)."""
    store = build_ledger_store(settings)
    await store.start()
    try:
        report = await admin.verify(store)
    finally:
        await store.stop()
    return report.is_clean, report.summary()


async def dlq_list(settings: Settings, *, include_redriven: bool) -> list[DeadLetter]:
    """The dead letters, oldest first."""
    store = build_ledger_store(settings)
    await store.start()
    try:
        return await admin.dlq_list(store, include_redriven=include_redriven)
    finally:
        await store.stop()


async def _redrive(
    settings: Settings, ids: Sequence[int] | None, *, actor: str, clock: Clock
) -> list[DeadLetter]:
    store = build_ledger_store(settings)
    await store.start()
    try:
        if ids is None:
            ids = [d.dlq_id for d in await admin.dlq_list(store, include_redriven=False)]
        if settings.orders.bus == "kafka":
            from ledger.kafka import KafkaCommandProducer

            producer = KafkaCommandProducer(
                ledger_kafka_settings(settings.ledger, settings.orders, settings.kafka)
            )
            try:
                return await admin.dlq_redrive(
                    store, producer, ids, actor=actor, now_ns=clock.now_ns()
                )
            finally:
                await producer.stop()
        inbox = InboxBus(store, clock.now_ns)
        return await admin.dlq_redrive(store, inbox, ids, actor=actor, now_ns=clock.now_ns())
    finally:
        await store.stop()


async def dlq_redrive(
    settings: Settings, ids: Sequence[int] | None, *, actor: str, clock: Clock
) -> list[DeadLetter]:
    """Re-submit dead letters (``ids``, or every one not yet redriven) to the command bus.

    One audit event records what was redriven, or that the redrive failed.
    """
    try:
        letters = await _redrive(settings, ids, actor=actor, clock=clock)
    except Exception as e:
        audit(
            "ledger.dlq_redrive",
            ts_ns=clock.now_ns(),
            actor=actor,
            outcome="failed",
            requested=list(ids) if ids is not None else "all",
            error=type(e).__name__,
        )
        raise
    audit(
        "ledger.dlq_redrive",
        ts_ns=clock.now_ns(),
        actor=actor,
        outcome="redriven",
        requested=list(ids) if ids is not None else "all",
        dlq_ids=[letter.dlq_id for letter in letters],
        transfer_ids=[letter.transfer_id for letter in letters],
    )
    return letters


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What ``reconcile`` found and did."""

    accounts: int
    repaired: Sequence[AccountId]
    missing: Sequence[AccountId]
    orphans: Sequence[AccountId]

    def summary(self) -> str:
        """One line."""
        return (
            f"ledger reconcile: {self.accounts} accounts in the ledger, "
            f"{len(self.repaired)} cached record(s) repaired "
            f"({len(self.missing)} missing from the cache), "
            f"{len(self.orphans)} cached account(s) the ledger lacks"
        )


async def reconcile(
    settings: Settings, master: InstrumentMaster, clock: Clock, *, dry_run: bool
) -> ReconcileReport:
    """Compare the Redis position cache with the ledger and rewrite what differs.

    The ledger is the truth: a cached account that is missing, behind, or
    different in any position or cash amount is replaced by the ledger's
    record (unless ``dry_run``). Cached accounts the ledger does not hold
    are reported, not removed.
    """
    from portfolio.redis import RedisPositionStore

    redis = settings.redis
    if redis.url is None:
        raise ValueError("reconcile needs the position cache's Redis: set TICKGATE_REDIS_URL")
    store = build_ledger_store(settings)
    cache = RedisPositionStore(
        redis.url, key_prefix=redis.key_prefix, timeout_s=redis.timeout_ms / 1000
    )
    await store.start()
    await cache.start()
    try:
        start_ns = day_start_ns(settings.portfolio.day_roll_minute(), clock.now_ns())
        snapshot = await load_accounts(store, master, day_start_ns=start_ns)
        truth = {a: account.to_record() for a, account in snapshot.accounts.items()}
        cached = await cache.load()
        missing = [a for a in truth if a not in cached]
        differing = [a for a in truth if a in cached and not same_record(cached[a], truth[a])]
        repaired = sorted([*missing, *differing])
        if repaired and not dry_run:
            await cache.save([truth[a] for a in repaired])
            logger.warning(
                "ledger reconcile rewrote %d cached account(s)",
                len(repaired),
                extra={"event": "ledger.reconcile_rewrote_cache"},
            )
        return ReconcileReport(
            len(truth), repaired, sorted(missing), sorted(a for a in cached if a not in truth)
        )
    finally:
        await cache.stop()
        await store.stop()


def same_record(cached: AccountRecord, truth: AccountRecord) -> bool:
    """Whether a cached record states what the ledger's does (floats within rounding)."""
    if (cached.version, cached.base_currency) != (truth.version, truth.base_currency):
        return False
    close = _close
    currencies = set(cached.cash) | set(truth.cash)
    if not all(close(cached.cash.get(c, 0.0), truth.cash.get(c, 0.0)) for c in currencies):
        return False
    held = {s for s, p in cached.positions.items() if p.quantity != 0}
    if held != {s for s, p in truth.positions.items() if p.quantity != 0}:
        return False
    for symbol in held:
        a, b = cached.positions[symbol], truth.positions[symbol]
        fields = ("quantity", "avg_cost", "realised_pnl", "commission", "day_open_quantity")
        if not all(close(getattr(a, name), getattr(b, name)) for name in fields):
            return False
    return True


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_RELATIVE_TOLERANCE, abs_tol=_ABSOLUTE_TOLERANCE)
