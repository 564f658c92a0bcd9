"""The composition root: ``create_app(settings)`` builds and wires everything.

This is the one place that picks adapters (simulator, Kafka or upstream feed;
memory or Redis position store), builds the PriceBook, the portfolio engine,
the channels and the connection hub, and owns the long-running tasks, which
it starts and stops in the Starlette lifespan. The portfolio is assembled at
startup, after the position store's warm start and before any client can
connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette

from gateway import closecodes
from gateway.auth import TokenVerifier
from gateway.channels import QUOTES, PortfolioChannelSpec, QuotesChannelSpec
from gateway.clock import Clock, SystemClock
from gateway.devsecret import load_or_create_dev_secret
from gateway.errors import SettingsError
from gateway.hub import HUB_STATE_KEY, ConnectionHub
from gateway.metrics import Metrics
from gateway.pipeline import MarketDataPipeline, MarketDataSource
from gateway.portfolio import PortfolioChannel
from gateway.positionsfile import load_positions_file
from gateway.quotes import QuotesChannel
from gateway.refdata import load_master
from gateway.riskworker import LoopMonitor, RiskWorker
from gateway.routes import http_routes
from gateway.settings import Settings
from gateway.sources.simulator import SimulatorSource
from gateway.storesync import PositionSync
from portfolio.demo import demo_records
from portfolio.engine import PortfolioEngine
from portfolio.errors import PortfolioError, StoreUnavailable
from portfolio.fx import FxTable
from portfolio.memory import MemoryPositionStore
from portfolio.positions import PositionBook
from portfolio.records import load_records, record_problem, records_of
from portfolio.redis import RedisPositionStore
from portfolio.riskrun import RiskUniverse
from portfolio.store import AccountRecord, PositionStore
from portfolio.types import AccountId, Fill
from portfolio.valuation import InstrumentTerms
from pricing.instruments import InstrumentMaster
from pricing.pricebook import PriceBook
from pricing.simulator import TRADING_SECONDS_PER_DAY, MarketModel, ModelParams
from pricing.types import F64Array2D

__all__ = ["Gateway", "PortfolioRuntime", "build_gateway", "create_app", "jwt_secret"]

logger = logging.getLogger(__name__)

_RESTART_DELAY_S = 1.0


@dataclass(slots=True)
class PortfolioRuntime:
    """The portfolio side of a running gateway."""

    positions: PositionBook
    engine: PortfolioEngine
    channel: PortfolioChannel
    risk: RiskWorker
    sync: PositionSync

    def rolled(self) -> None:
        """After a day roll: write every account (opening quantities changed), roll risk."""
        self.sync.mark_dirty(list(self.positions.accounts))
        self.risk.roll_day()

    def apply_fills(self, fills: list[Fill], now_ns: int) -> None:
        """Apply fills, push the changed accounts, and write them to the store."""
        change = self.channel.apply_fills(fills, now_ns)
        accounts = self.positions.accounts
        self.sync.mark_dirty([accounts[a] for a in change.accounts.tolist()])


@dataclass(slots=True)
class Gateway:
    """The running service: its parts and the tasks that drive them."""

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
    truth: dict[AccountId, AccountRecord]
    loop_monitor: LoopMonitor
    portfolio: PortfolioRuntime | None = None
    is_ready: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        """Start the source and the store, assemble the portfolio, start the tasks."""
        logger.info(
            "starting tickgate (epoch %s) with settings %s", self.epoch, self.settings.redacted()
        )
        await self.source.start()
        await self.store.start()
        portfolio = self.portfolio = await _start_portfolio(self)
        self._spawn("pipeline", self.pipeline.run)
        self._spawn("staleness", self.pipeline.run_staleness)
        self._spawn("sweeper", self.hub.run_sweeper)
        self._spawn("risk", portfolio.risk.run)
        self._spawn("positions-sync", portfolio.sync.run)
        day_roll = self.settings.portfolio.day_roll_minute()
        self._spawn("day-roll", lambda: portfolio.channel.run_day_rolls(day_roll, portfolio.rolled))
        self._spawn("loop-monitor", self.loop_monitor.run)
        self.is_ready = True
        logger.info("serving %d instruments from the %s source", len(self.master), self.source.name)

    async def stop(self) -> None:
        """Close clients (1001), stop the tasks and the source, flush the position cache."""
        self.is_ready = False
        self.hub.close_all(closecodes.GOING_AWAY, "server shutting down")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.portfolio is not None:
            self.portfolio.channel.close()
        await self.source.stop()
        if self.portfolio is not None:
            try:
                await self.portfolio.sync.flush()
            except StoreUnavailable as e:
                logger.warning("positions not written to the cache at shutdown: %s", e)
        await self.store.stop()
        logger.info("tickgate stopped")

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
            logger.exception("task %s crashed; restarting in %.0f s", name, _RESTART_DELAY_S)
            await asyncio.sleep(_RESTART_DELAY_S)


def jwt_secret(settings: Settings) -> str:
    """The configured signing secret, or the machine's dev secret if none is set."""
    if settings.auth.jwt_secret is not None:
        return settings.auth.jwt_secret.reveal()
    return load_or_create_dev_secret(settings.data_dir)


async def _start_portfolio(gateway: Gateway) -> PortfolioRuntime:
    settings, master = gateway.settings, gateway.master
    fx = FxTable(master)
    terms = InstrumentTerms.from_master(
        master, fx.currencies, settings.portfolio.rate_by_currency()
    )
    positions = PositionBook(
        fx.currencies,
        currency_ix=terms.currency_ix,
        multiplier=terms.multiplier,
        is_margined=terms.is_margined,
    )
    sync = PositionSync(
        gateway.store,
        name="redis" if settings.redis.url else "memory",
        settings=settings.redis,
        records_of=lambda accounts: records_of(
            positions, master.symbols, [positions.account_ix(a) for a in accounts]
        ),
        problem=lambda record: record_problem(record, master.symbol_index, fx.currencies),
        all_accounts=lambda: list(positions.accounts),
        metrics=gateway.metrics,
    )
    records = await sync.warm_start(gateway.truth)
    load_records(positions, records.values(), master.symbol_index)
    engine = PortfolioEngine(
        gateway.book,
        positions,
        fx,
        terms,
        max_leverage=settings.portfolio.max_leverage,
        now_ns=gateway.clock.now_ns(),
    )
    risk = settings.risk
    channel = PortfolioChannel(
        engine,
        master,
        epoch=gateway.epoch,
        history=settings.fanout.recovery_history,
        risk=risk,
        clock=gateway.clock,
        metrics=gateway.metrics,
        max_loop_share=settings.portfolio.max_loop_share,
    )
    gateway.hub.register_channel(channel, PortfolioChannelSpec(set(positions.accounts)))
    gateway.pipeline.add_listener(channel)
    universe = RiskUniverse(master, terms, fx.currencies)
    history, trading_days = _market_history(gateway)
    worker = RiskWorker(
        channel,
        universe,
        risk,
        clock=gateway.clock,
        metrics=gateway.metrics,
        history=history,
        trading_days=trading_days,
    )
    logger.info("portfolio: %d accounts, %d positions", positions.size_n, positions.size_p)
    return PortfolioRuntime(positions, engine, channel, worker, sync)


def _market_history(
    gateway: Gateway,
) -> tuple[F64Array2D | None, Callable[[], float] | None]:
    # The simulator knows its market: it draws the daily history that seeds the
    # risk model, and counts the trading days it has run (it trades around the
    # clock). Other sources have neither: the daily model learns from day rolls.
    source = gateway.source
    if not isinstance(source, SimulatorSource):
        return None, None
    model = source.model
    days = gateway.settings.risk.history_days
    history = model.daily_history(days, seed=gateway.settings.simulator.seed) if days else None
    step_s = model.params.step_s
    return history, lambda: model.steps * step_s / TRADING_SECONDS_PER_DAY


def _check_history_days(settings: Settings, source: MarketDataSource) -> None:
    # The simulator's history is moment-matched on its market and sector
    # shocks, which takes more days than there are shocks.
    if not isinstance(source, SimulatorSource):
        return
    days, shocks = settings.risk.history_days, 1 + len(source.model.sector_names)
    if 0 < days <= shocks:
        raise SettingsError(
            "TICKGATE_RISK_HISTORY_DAYS",
            f"must be 0 or more than the simulator's {shocks} market and sector shocks, was {days}",
        )


def _truth(settings: Settings, master: InstrumentMaster) -> dict[AccountId, AccountRecord]:
    # Until the ledger exists, account state comes from the positions file or
    # the seeded demo accounts.
    p = settings.portfolio
    if p.positions_file is not None:
        records = load_positions_file(p.positions_file)
        currencies = FxTable(master).currencies
        for record in records.values():
            problem = record_problem(record, master.symbol_index, currencies)
            if problem is not None:
                raise SettingsError("TICKGATE_PORTFOLIO_POSITIONS_FILE", problem)
        return records
    demo = demo_records(master, count=p.demo_accounts, seed=p.demo_seed)
    return {r.account: r for r in demo}


def _build_store(settings: Settings) -> PositionStore:
    redis = settings.redis
    if redis.url is not None:
        return RedisPositionStore(
            redis.url, key_prefix=redis.key_prefix, timeout_s=redis.timeout_ms / 1000
        )
    return MemoryPositionStore()


def _build_source(
    settings: Settings, master: InstrumentMaster, clock: Clock, metrics: Metrics
) -> MarketDataSource:
    kind = settings.feed.source
    if kind == "kafka":
        from gateway.sources.kafka import KafkaSource

        return KafkaSource(settings.kafka, master, clock=clock, metrics=metrics)
    if kind == "upstream":
        from gateway.sources.upstream import UpstreamSource

        return UpstreamSource(settings.upstream, master, clock=clock, metrics=metrics)
    sim = settings.simulator
    params = ModelParams(
        tick_rate_per_s=sim.tick_rate_per_s,
        step_s=sim.step_ms / 1000,
        market_share=sim.market_share,
        sector_share=sim.sector_share,
        spread_bps=sim.spread_bps,
    )
    model = MarketModel(master, params, seed=sim.seed)
    return SimulatorSource(model, sim, clock=clock, metrics=metrics)


def build_gateway(
    settings: Settings, *, clock: Clock | None = None, source: MarketDataSource | None = None
) -> Gateway:
    """Build every part of the service from ``settings`` (nothing is started).

    ``source`` replaces the one ``settings.feed.source`` names (for tests that
    script the market data).
    """
    clock = clock or SystemClock()
    metrics = Metrics()
    master = load_master(settings.feed.instruments_file)
    try:
        FxTable(master)  # every currency needs a pair against USD
    except PortfolioError as e:
        raise SettingsError("TICKGATE_FEED_INSTRUMENTS_FILE", str(e)) from None
    if settings.auth.jwt_secret is None:
        logger.warning(
            "no TICKGATE_AUTH_JWT_SECRET is set; using the development secret in %s",
            settings.data_dir,
        )
    verifier = TokenVerifier(
        jwt_secret(settings), issuer=settings.auth.issuer, leeway_s=settings.auth.leeway_s
    )
    book = PriceBook(master.ref_price, stale_after_ns=settings.feed.stale_after_ms * 1_000_000)
    epoch = secrets.token_hex(6)
    quotes = QuotesChannel(master, book, epoch=epoch, history=settings.fanout.recovery_history)
    hub = ConnectionHub(
        ws=settings.ws,
        fanout=settings.fanout,
        auth=settings.auth,
        channels={QUOTES: quotes},
        specs={QUOTES: QuotesChannelSpec(master.symbol_index)},
        verifier=verifier,
        clock=clock,
        metrics=metrics,
    )
    source = source or _build_source(settings, master, clock, metrics)
    _check_history_days(settings, source)
    pipeline = MarketDataPipeline(
        source, book, [quotes], settings=settings.feed, clock=clock, metrics=metrics
    )
    return Gateway(
        settings=settings,
        master=master,
        book=book,
        source=source,
        pipeline=pipeline,
        quotes=quotes,
        hub=hub,
        verifier=verifier,
        metrics=metrics,
        clock=clock,
        epoch=epoch,
        store=_build_store(settings),
        truth=_truth(settings, master),
        loop_monitor=LoopMonitor(metrics),
    )


def create_app(
    settings: Settings, *, clock: Clock | None = None, source: MarketDataSource | None = None
) -> Starlette:
    """Return the Starlette app; ``/ws`` needs ``gateway.server`` (uvicorn + our protocol)."""
    gateway = build_gateway(settings, clock=clock, source=source)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        await gateway.start()
        try:
            yield {HUB_STATE_KEY: gateway.hub}
        finally:
            await gateway.stop()

    app = Starlette(routes=http_routes(gateway), lifespan=lifespan)
    app.state.gateway = gateway
    return app
