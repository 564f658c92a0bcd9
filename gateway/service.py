"""The running service: its parts, and the tasks that drive them (start, stop, supervise).

``gateway.app`` builds a ``Gateway``; the Starlette lifespan starts it
before the server accepts clients and stops it at shutdown. Every
long-running task runs under a supervisor that logs a crash and restarts
the task, so one bad batch or a bug in one listener cannot stop market data
for everyone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.accounts.dayroll import run_day_rolls
from gateway.accounts.runtime import Accounts
from gateway.auth import TokenVerifier
from gateway.channels.quotes import QuotesChannel
from gateway.clock import Clock
from gateway.errors import ShutdownIncomplete
from gateway.loopmonitor import LoopMonitor
from gateway.marketdata.pipeline import MarketDataPipeline
from gateway.marketdata.source import MarketDataSource
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.trading.runtime import Trading
from gateway.ws import closecodes
from gateway.ws.channelspecs import OrdersChannelSpec
from gateway.ws.hub import ConnectionHub
from portfolio.errors import StoreUnavailable
from portfolio.store import AccountRecord, PositionStore
from portfolio.types import AccountId
from pricing.instruments import InstrumentMaster
from pricing.pricebook import PriceBook

__all__ = ["Gateway"]

logger = logging.getLogger(__name__)

_RESTART_DELAY_S = 1.0


@dataclass(slots=True)
class Gateway:
    """The running service: its parts and the tasks that drive them.

    ``open_accounts`` assembles the accounts from the ledger's records once
    the position store has started (its warm start decides where each account
    starts from); ``seeds`` are the accounts an empty embedded ledger is
    seeded with (the positions file or the demo accounts).
    """

    settings: Settings
    master: InstrumentMaster
    book: PriceBook
    source: MarketDataSource
    pipeline: MarketDataPipeline
    quotes: QuotesChannel
    hub: ConnectionHub
    verifier: TokenVerifier
    metrics: Metrics
    clock: Clock
    epoch: str
    store: PositionStore
    trading: Trading
    seeds: Callable[[], dict[AccountId, AccountRecord]]
    open_accounts: Callable[[dict[AccountId, AccountRecord]], Awaitable[Accounts]]
    loop_monitor: LoopMonitor
    accounts: Accounts | None = None
    is_ready: bool = False
    shutdown_problems: list[str] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        """Start the source and the store, assemble the accounts, start the tasks."""
        logger.info(
            "starting tickgate (epoch %s) with settings %s",
            self.epoch,
            self.settings.redacted(),
            extra={"event": "service.starting"},
        )
        await self.source.start()
        await self.store.start()
        trading = self.trading
        await trading.open(self.seeds)
        accounts = self.accounts = await self.open_accounts(await trading.load_accounts())
        await trading.attach(accounts)
        self.hub.register_channel(
            trading.channel, OrdersChannelSpec(set(accounts.positions.accounts))
        )
        self.pipeline.add_listener(trading)
        await trading.start()
        run_events = trading.run_events()
        if run_events is not None:
            self._spawn("ledger-events", run_events)
        self._spawn("pipeline", self.pipeline.run)
        self._spawn("staleness", self.pipeline.run_staleness)
        self._spawn("sweeper", self.hub.run_sweeper)
        self._spawn("risk", accounts.risk.run)
        self._spawn("position-cache", accounts.cache.run)
        day_roll = self.settings.portfolio.day_roll_minute()
        self._spawn("day-roll", lambda: run_day_rolls(day_roll, self._roll_day, self.clock))
        self._spawn("loop-monitor", self.loop_monitor.run)
        self.is_ready = True
        logger.info(
            "serving %d instruments from the %s source",
            len(self.master),
            self.source.name,
            extra={"event": "service.started"},
        )

    async def stop(self) -> None:
        """Close clients (1001), stop the tasks and the source, flush the position cache.

        Bounded and complete whatever the state of the servers: each step
        that talks to one is limited to ``shutdown_timeout_s``, and a step
        that fails is logged and the next one still runs. What could not be
        done is listed in ``shutdown_problems`` (the process then exits 4).
        """
        self.is_ready = False
        self.hub.close_all(closecodes.GOING_AWAY, "server shutting down")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.accounts is not None:
            self.accounts.pacer.close()
        await self._step("stopping the order path", self.trading.stop)
        await self._step("stopping the source", self.source.stop)
        if self.accounts is not None:
            await self._step("writing the position cache", self._flush_positions)
        await self._step("closing the position store", self.store.stop)
        if self.shutdown_problems:
            logger.warning(
                "tickgate stopped with work left undone: %s",
                "; ".join(self.shutdown_problems),
                extra={"event": "service.stopped_incomplete"},
            )
        else:
            logger.info("tickgate stopped", extra={"event": "service.stopped"})

    async def _flush_positions(self) -> None:
        assert self.accounts is not None
        cache = self.accounts.cache
        waiting = cache.dirty_count
        try:
            await cache.flush()
        except StoreUnavailable as e:
            raise ShutdownIncomplete(f"positions not written to the cache at shutdown: {e}") from e
        logger.info(
            "positions written to the cache at shutdown (%d accounts were waiting)",
            waiting,
            extra={"event": "service.positions_flushed"},
        )

    async def _step(self, what: str, run: Callable[[], Awaitable[None]]) -> None:
        # One step of the shutdown: bounded, and never stopping the next.
        timeout_s = self.settings.shutdown_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                await run()
        except ShutdownIncomplete as e:
            logger.warning("%s", e, extra={"event": "service.shutdown_step_incomplete"})
            self.shutdown_problems.append(str(e))
        except TimeoutError:
            logger.warning(
                "%s did not finish within %d s; abandoned",
                what,
                timeout_s,
                extra={"event": "service.shutdown_step_timed_out"},
            )
            self.shutdown_problems.append(f"{what} timed out")
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            logger.warning(
                "%s was cancelled from within",
                what,
                extra={"event": "service.shutdown_step_cancelled"},
            )
            self.shutdown_problems.append(f"{what} was cancelled")
        except Exception:
            logger.exception("%s failed", what, extra={"event": "service.shutdown_step_failed"})
            self.shutdown_problems.append(f"{what} failed")

    def _roll_day(self, now_ns: int) -> None:
        # The accounts roll their day; the ledger expires what rests for the day.
        if self.accounts is not None:
            self.accounts.roll_day(now_ns)
        self.trading.roll_day()

    def _spawn(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        self._tasks.append(asyncio.create_task(_supervise(name, run), name=f"tickgate-{name}"))


async def _supervise(name: str, run: Callable[[], Awaitable[None]]) -> None:
    # A task boundary: a crash is logged and the task restarted, so one bad
    # batch or a bug in one listener cannot stop market data for everyone.
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(
                "task %s crashed; restarting in %.0f s",
                name,
                _RESTART_DELAY_S,
                extra={"event": "service.task_crashed"},
            )
            await asyncio.sleep(_RESTART_DELAY_S)
