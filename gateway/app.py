"""The composition root: ``create_app(settings)`` builds and wires everything.

This is the one place that picks adapters (simulator, Kafka or upstream feed;
memory or Redis position store) and builds the PriceBook, the portfolio
engine, the channels and the connection hub. The accounts are assembled
when the service starts, after the position store's warm start and before
any client can connect; ``gateway.service`` starts and stops the
long-running tasks in the Starlette lifespan.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.middleware import Middleware

from gateway.access import ACCESS_STATE_KEY, OriginPolicy, UpgradeGuard
from gateway.accounts.positioncache import PositionCache
from gateway.accounts.positionsfile import load_positions_file
from gateway.accounts.riskworker import RiskWorker
from gateway.accounts.runtime import Accounts
from gateway.admission import ADMISSION_STATE_KEY, ConnectionAdmission, open_file_limit
from gateway.channels.pacing import RevaluationPacer
from gateway.channels.portfolio import PortfolioChannel
from gateway.channels.portfoliowire import PortfolioEncoder
from gateway.channels.quotes import QuotesChannel
from gateway.clock import Clock, SystemClock
from gateway.errors import SettingsError
from gateway.http.bodies import BodyLimit
from gateway.http.dashboard import dashboard_routes
from gateway.http.orderapi import api_app
from gateway.http.routes import EXCEPTION_HANDLERS, ROUTES, body_too_large
from gateway.jwtkeys import build_verifier
from gateway.loopmonitor import LoopMonitor
from gateway.marketdata.pipeline import MarketDataPipeline
from gateway.marketdata.simulator import SimulatorSource
from gateway.marketdata.source import MarketDataSource
from gateway.metrics import Metrics
from gateway.refdata import load_master
from gateway.service import Gateway
from gateway.settings import Settings
from gateway.tracing import build_tracer
from gateway.trading.runtime import Trading
from gateway.uvicornseam import SERVER_SETTINGS_STATE_KEY
from gateway.ws.channelspecs import QUOTES, PortfolioChannelSpec, QuotesChannelSpec
from gateway.ws.hub import HUB_STATE_KEY, ConnectionHub
from portfolio.demo import demo_records
from portfolio.engine import PortfolioEngine
from portfolio.errors import PortfolioError
from portfolio.fx import FxTable
from portfolio.memory import MemoryPositionStore
from portfolio.positions import PositionBook
from portfolio.records import load_records, record_problem, records_of
from portfolio.redis import RedisPositionStore
from portfolio.riskrun import RiskUniverse
from portfolio.store import AccountRecord, PositionStore
from portfolio.types import AccountId
from portfolio.valuation import InstrumentTerms
from pricing.instruments import InstrumentMaster
from pricing.pricebook import PriceBook
from pricing.simulator import TRADING_SECONDS_PER_DAY, MarketModel, ModelParams
from pricing.types import F64Array2D

__all__ = [
    "Apps",
    "build_gateway",
    "build_source",
    "create_app",
    "create_apps",
    "seed_records",
]

logger = logging.getLogger(__name__)


async def _open_accounts(gateway: Gateway, truth: dict[AccountId, AccountRecord]) -> Accounts:
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
    cache = PositionCache(
        gateway.store,
        name="redis" if settings.redis.url else "memory",
        settings=settings.position_cache,
        records_of=lambda accounts: records_of(
            positions, master.symbols, [positions.account_ix(a) for a in accounts]
        ),
        problem=lambda record: record_problem(record, master.symbol_index, fx.currencies),
        all_accounts=lambda: list(positions.accounts),
        metrics=gateway.metrics,
    )
    records = await cache.warm_start(truth)
    load_records(positions, records.values(), master.symbol_index)
    engine = PortfolioEngine(
        gateway.book,
        positions,
        fx,
        terms,
        max_leverage=settings.portfolio.max_leverage,
        now_ns=gateway.clock.now_ns(),
    )
    channel = PortfolioChannel(
        engine,
        PortfolioEncoder(engine, master, settings.risk),
        epoch=gateway.epoch,
        clock=gateway.clock,
    )
    pacer = RevaluationPacer(
        engine,
        channel,
        max_loop_share=settings.portfolio.max_loop_share,
        clock=gateway.clock,
        metrics=gateway.metrics,
    )
    gateway.hub.register_channel(channel, PortfolioChannelSpec(set(positions.accounts)))
    gateway.pipeline.add_listener(pacer)
    universe = RiskUniverse(master, terms, fx.currencies)
    history, trading_days = _market_history(gateway)
    worker = RiskWorker(
        channel,
        universe,
        settings.risk,
        clock=gateway.clock,
        metrics=gateway.metrics,
        history=history,
        trading_days=trading_days,
    )
    logger.info(
        "portfolio: %d accounts, %d positions",
        positions.size_n,
        positions.size_p,
        extra={"event": "portfolio.loaded"},
    )
    return Accounts(positions, engine, channel, pacer, worker, cache)


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


def seed_records(settings: Settings, master: InstrumentMaster) -> dict[AccountId, AccountRecord]:
    """What an empty ledger is seeded with: the positions file, or the demo accounts."""
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


def build_source(
    settings: Settings, master: InstrumentMaster, clock: Clock, metrics: Metrics
) -> MarketDataSource:
    kind = settings.feed.source
    if kind == "kafka":
        from gateway.marketdata.kafka import KafkaSource

        return KafkaSource(settings.kafka, master, clock=clock, metrics=metrics)
    if kind == "upstream":
        from gateway.marketdata.upstream import UpstreamSource

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
    auth = settings.auth
    if auth.jwt_secret is None and auth.is_hs256_enabled:
        logger.warning(
            "no TICKGATE_AUTH_JWT_SECRET is set; using the development secret in %s",
            settings.data_dir,
            extra={"event": "auth.dev_secret_used"},
        )
    verifier = build_verifier(settings)
    logger.info(
        "accepting tokens signed %s",
        ", ".join(sorted(verifier.algorithms)),
        extra={"event": "auth.key_algorithms"},
    )
    book = PriceBook(master.ref_price, stale_after_ns=settings.feed.stale_after_ms * 1_000_000)
    epoch = secrets.token_hex(6)
    quotes = QuotesChannel(master, book, epoch=epoch)
    hub = ConnectionHub(
        ws=settings.ws,
        fanout=settings.fanout,
        auth=settings.auth,
        access=settings.access,
        channels={QUOTES: quotes},
        specs={
            QUOTES: QuotesChannelSpec(
                master.symbol_index, is_open=settings.auth.allow_anonymous_quotes
            )
        },
        verifier=verifier,
        clock=clock,
        metrics=metrics,
    )
    source = source or build_source(settings, master, clock, metrics)
    _check_history_days(settings, source)
    pipeline = MarketDataPipeline(
        source, book, [quotes], settings=settings.feed, clock=clock, metrics=metrics
    )
    seeds = seed_records(settings, master)
    trading = Trading.build(
        settings, master, book, clock=clock, metrics=metrics, epoch=epoch, tracer=build_tracer()
    )
    gateway = Gateway(
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
        trading=trading,
        seeds=lambda: seeds,
        open_accounts=lambda truth: _open_accounts(gateway, truth),
        loop_monitor=LoopMonitor(metrics),
    )
    return gateway


def _admission(settings: Settings, gateway: Gateway) -> ConnectionAdmission:
    server = settings.server
    limit = open_file_limit()
    admission = ConnectionAdmission(
        capacity=limit - server.reserved_fds,
        health_headroom=server.health_headroom,
        metrics=gateway.metrics,
    )
    logger.info(
        "accepting up to %d connections (open-file limit %d minus %d reserved), "
        "the last %d for plain HTTP only",
        admission.capacity,
        limit,
        server.reserved_fds,
        admission.health_headroom,
        extra={"event": "connections.capacity"},
    )
    return admission


def _upgrade_guard(settings: Settings) -> UpgradeGuard:
    origins = OriginPolicy.from_settings(
        settings.access, host=settings.host, port=settings.port, scheme=settings.tls.scheme
    )
    if origins.is_any:
        logger.info("WebSocket upgrades from any Origin", extra={"event": "access.origin_policy"})
    elif origins.allowed is None:
        logger.info(
            "WebSocket upgrades from the Origin the request's Host header names",
            extra={"event": "access.origin_policy"},
        )
    else:
        logger.info(
            "WebSocket upgrades from the Origins %s",
            ", ".join(sorted(origins.allowed)),
            extra={"event": "access.origin_policy"},
        )
    return UpgradeGuard(settings.access, origins)


@dataclass(frozen=True, slots=True)
class Apps:
    """The two listeners' apps over one gateway: ``/ws`` and HTTP, and the order API."""

    main: Starlette
    api: Starlette
    gateway: Gateway


def create_apps(
    settings: Settings,
    *,
    clock: Clock | None = None,
    source: MarketDataSource | None = None,
    api_owns_lifespan: bool = False,
) -> Apps:
    """Build the gateway and both apps; the gateway's app owns the lifespan unless the API does.

    ``/ws`` needs ``gateway.server`` (uvicorn and our protocol class).
    """
    gateway = build_gateway(settings, clock=clock, source=source)

    # One admission for every listener: file descriptors are the process's.
    listener_state: dict[str, object] = {
        ADMISSION_STATE_KEY: _admission(settings, gateway),
        SERVER_SETTINGS_STATE_KEY: settings.server,
        ACCESS_STATE_KEY: _upgrade_guard(settings),
    }

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        await gateway.start()
        try:
            yield {HUB_STATE_KEY: gateway.hub, **listener_state}
        finally:
            await gateway.stop()

    @contextlib.asynccontextmanager
    async def listener_only(app: Starlette) -> AsyncIterator[dict[str, object]]:
        # The API listener beside the gateway's: its protections, not the service.
        yield dict(listener_state)

    body_limit = Middleware(
        BodyLimit, max_body_bytes=settings.server.max_body_bytes, refuse=body_too_large
    )
    main = Starlette(
        # The dashboard's paths come first: none of them overlaps the API's.
        routes=[*dashboard_routes(settings), *ROUTES],
        middleware=[body_limit],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=None if api_owns_lifespan else lifespan,
    )
    # An unknown path is a 404, never a redirect: Starlette would redirect
    # /healthz/ to a URL built from the request's Host header.
    main.router.redirect_slashes = False
    main.state.gateway = gateway
    api = api_app(gateway, lifespan=lifespan if api_owns_lifespan else listener_only)
    return Apps(main, api, gateway)


def create_app(
    settings: Settings, *, clock: Clock | None = None, source: MarketDataSource | None = None
) -> Starlette:
    """Return the gateway's app alone (the order API's listener is not served)."""
    return create_apps(settings, clock=clock, source=source).main
