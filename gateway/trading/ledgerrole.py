"""``tickgate ledger run``: the ledger service alone, for the split deployment.

It consumes commands from Kafka ``orders.submitted`` (consumer group
``TICKGATE_LEDGER_GROUP_ID``) into the store ``TICKGATE_LEDGER_URL`` names
(PostgreSQL in production), prices orders on its own PriceBook fed by the
configured market-data source, and publishes its events to
``orders.events`` for the gateway and API nodes. On its first start it
seeds the accounts the ledger lacks (the positions file, or the demo
accounts), as the embedded ledger does. It runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from gateway.accounts.dayroll import day_start_ns, run_day_rolls
from gateway.app import build_source, seed_records
from gateway.clock import SystemClock
from gateway.errors import SettingsError
from gateway.logs import configure_logging
from gateway.marketdata.pipeline import MarketDataPipeline
from gateway.metrics import Metrics
from gateway.refdata import load_master
from gateway.settings import Settings
from gateway.tracing import build_tracer
from gateway.trading.runtime import build_ledger_service, build_ledger_store, trace_commits
from pricing.pricebook import PriceBook
from pricing.types import I64Array1D

__all__ = ["run_ledger"]

logger = logging.getLogger(__name__)


class _Matcher:
    # A PriceBook listener: the resting orders on changed instruments are re-checked.
    def __init__(self, on_changed: Callable[[list[int]], None]) -> None:
        self._on_changed = on_changed

    def on_book_changed(self, changed_ix: I64Array1D, now_ns: int) -> None:
        self._on_changed(changed_ix.tolist())


def run_ledger(settings: Settings) -> None:
    """Run the standalone ledger service until SIGINT or SIGTERM."""
    if settings.orders.bus != "kafka":
        raise SettingsError(
            "TICKGATE_ORDERS_BUS",
            "must be kafka for a standalone ledger (the embedded one reads the inbox)",
        )
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(_run(settings))


async def _run(settings: Settings) -> None:
    clock, metrics = SystemClock(), Metrics()
    master = load_master(settings.feed.instruments_file)
    book = PriceBook(master.ref_price, stale_after_ns=settings.feed.stale_after_ms * 1_000_000)
    source = build_source(settings, master, clock, metrics)
    store = build_ledger_store(settings)
    ledger = build_ledger_service(settings, master, book, store, clock)
    service = ledger.service
    trace_commits(service, build_tracer(), clock.now_ns)
    pipeline = MarketDataPipeline(
        source,
        book,
        [_Matcher(service.on_book_changed)],
        settings=settings.feed,
        clock=clock,
        metrics=metrics,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await store.start()
    tasks: list[asyncio.Task[None]] = []
    rolls: set[asyncio.Task[object]] = set()

    def roll(now_ns: int) -> None:
        task: asyncio.Task[object] = asyncio.create_task(service.roll_day())
        rolls.add(task)
        task.add_done_callback(rolls.discard)

    try:
        await source.start()
        # Seeds post entries: their month's partition must exist first.
        await store.ensure_partitions(clock.now_ns(), settings.ledger.partition_months_ahead)
        start_ns = day_start_ns(settings.portfolio.day_roll_minute(), clock.now_ns())
        plan = await service.seed(
            seed_records(settings, master).values(), ts_event=start_ns - 1_000_000_000
        )
        logger.info(
            "ledger: %d seed account(s) posted",
            len(plan.batch.clients),
            extra={"event": "ledger.seeded"},
        )
        await service.start()
        minute = settings.portfolio.day_roll_minute()
        tasks += [
            asyncio.create_task(pipeline.run(), name="ledger-pipeline"),
            asyncio.create_task(pipeline.run_staleness(), name="ledger-staleness"),
            asyncio.create_task(run_day_rolls(minute, roll, clock), name="ledger-day-roll"),
        ]
        logger.info(
            "ledger service running on the %s source",
            source.name,
            extra={"event": "ledger.started"},
        )
        await stop.wait()
    finally:
        for task in [*tasks, *rolls]:
            task.cancel()
        for task in [*tasks, *rolls]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await service.stop()
        await ledger.close()
        await source.stop()
        await store.stop()
        logger.info("ledger service stopped", extra={"event": "ledger.stopped"})
