"""Settings: a tree of frozen dataclasses, one section per component.

Each section validates its own values in ``__post_init__``; ``Settings``
checks the rules that span sections. ``Settings.from_env`` builds the tree
once from the ``TICKGATE_*`` keys (``gateway.environment`` maps each field
to its key), and each component receives only its own section.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import ClassVar, Literal

from gateway import environment
from gateway.environment import Secret
from gateway.errors import SettingsError

__all__ = [
    "AccessSettings",
    "ApiSettings",
    "AuditSettings",
    "AuthSettings",
    "DashboardSettings",
    "FanoutSettings",
    "FeedSettings",
    "KafkaSettings",
    "LedgerSettings",
    "OrdersSettings",
    "PortfolioSettings",
    "PositionCacheSettings",
    "RedisSettings",
    "RiskSettings",
    "Secret",
    "ServerSettings",
    "Settings",
    "SimulatorSettings",
    "TlsSettings",
    "UpstreamSettings",
    "WebSocketSettings",
    "default_data_dir",
]


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise SettingsError(name, message)


def _positive(settings: object, *names: str) -> None:
    for name in names:
        value = getattr(settings, name)
        _check(value > 0, name, f"must be positive, was {value}")


def _ordered(settings: object, low_name: str, high_name: str) -> None:
    low, high = getattr(settings, low_name), getattr(settings, high_name)
    _check(low <= high, low_name, f"must be <= {high_name} ({high}), was {low}")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The listener's limits on every connection, before and while it is a request.

    A request's head (request line and headers) holds at most
    ``max_header_bytes`` and must be complete within ``header_timeout_s`` of
    the connection's start, or of the end of its previous response; a
    connection idle after a response is closed after
    ``keep_alive_timeout_s``. A request body holds at most
    ``max_body_bytes`` (``gateway.http.bodies``). Connections are kept
    ``reserved_fds`` below the open-file limit, and the last
    ``health_headroom`` of them take plain HTTP only (``gateway.admission``).
    """

    env_section: ClassVar[str] = "SERVER"
    max_header_bytes: int = 16_384
    header_timeout_s: float = 10.0
    keep_alive_timeout_s: int = 5
    max_body_bytes: int = 65_536
    reserved_fds: int = 64
    health_headroom: int = 16

    def __post_init__(self) -> None:
        _positive(
            self,
            "max_header_bytes",
            "header_timeout_s",
            "keep_alive_timeout_s",
            "max_body_bytes",
            "reserved_fds",
            "health_headroom",
        )


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS on every listener (the gateway's and the order API's), on when ``cert_file`` is set.

    ``cert_file`` is the PEM certificate chain, ``key_file`` its PEM private
    key (unset: the key is in ``cert_file``), ``key_password`` the key's
    passphrase, if it has one.
    """

    env_section: ClassVar[str] = "TLS"
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: Secret | None = None

    def __post_init__(self) -> None:
        if self.cert_file is None:
            _check(self.key_file is None, "key_file", "needs cert_file")
            _check(self.key_password is None, "key_password", "needs cert_file")

    @property
    def is_enabled(self) -> bool:
        """Whether the listeners speak TLS."""
        return self.cert_file is not None

    @property
    def scheme(self) -> Literal["http", "https"]:
        """The listeners' URL scheme."""
        return "https" if self.is_enabled else "http"


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """Market-data ingest: which source feeds the PriceBook, and staleness."""

    env_section: ClassVar[str] = "FEED"
    source: Literal["simulator", "kafka", "upstream"] = "simulator"
    instruments_file: Path | None = None
    stale_after_ms: int = 10_000
    staleness_check_ms: int = 500

    def __post_init__(self) -> None:
        _positive(self, "stale_after_ms", "staleness_check_ms")


@dataclass(frozen=True, slots=True)
class WebSocketSettings:
    """Limits and timers of one client connection on ``/ws``."""

    env_section: ClassVar[str] = "WS"
    max_inbound_bytes: int = 16_384
    max_subscriptions: int = 256
    inbound_rate_per_s: float = 20.0
    inbound_burst: int = 40
    auth_deadline_s: float = 5.0
    error_limit: int = 20
    error_window_s: float = 10.0
    heartbeat_interval_s: float = 5.0
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    close_timeout_s: float = 5.0
    per_message_deflate: bool = False

    def __post_init__(self) -> None:
        _positive(
            self,
            "max_inbound_bytes",
            "max_subscriptions",
            "inbound_rate_per_s",
            "inbound_burst",
            "auth_deadline_s",
            "error_limit",
            "error_window_s",
            "heartbeat_interval_s",
            "ping_interval_s",
            "ping_timeout_s",
            "close_timeout_s",
        )


@dataclass(frozen=True, slots=True)
class FanoutSettings:
    """Per-client outbound buffering and the slow-consumer policy.

    The socket stops taking writes above ``write_buffer_high_bytes`` and
    resumes below ``write_buffer_low_bytes`` (the water-mark pair).
    ``socket_send_buffer_bytes`` caps the kernel's send buffer per connection
    (0 keeps the kernel's autotuning, which can grow to megabytes and hide a
    lagging client's backlog from the conflation).
    """

    env_section: ClassVar[str] = "FANOUT"
    max_outbox_bytes: int = 1_048_576
    write_buffer_high_bytes: int = 65_536
    write_buffer_low_bytes: int = 16_384
    socket_send_buffer_bytes: int = 262_144
    slow_consumer_grace_ms: int = 5_000
    sweep_interval_ms: int = 250

    def __post_init__(self) -> None:
        _positive(
            self,
            "max_outbox_bytes",
            "write_buffer_high_bytes",
            "slow_consumer_grace_ms",
            "sweep_interval_ms",
        )
        send_buffer = self.socket_send_buffer_bytes
        _check(send_buffer >= 0, "socket_send_buffer_bytes", f"must be >= 0, was {send_buffer}")
        low, high = self.write_buffer_low_bytes, self.write_buffer_high_bytes
        _check(
            0 <= low < high,
            "write_buffer_low_bytes",
            f"must be >= 0 and below write_buffer_high_bytes ({high}), was {low}",
        )


@dataclass(frozen=True, slots=True)
class AccessSettings:
    """Who may open ``/ws``: checked on the upgrade request, before the handshake.

    ``allowed_origins`` lists the browser origins (``https://app.example``)
    whose pages may open a WebSocket; unset, the listener's own origins
    (``gateway.access.own_origins``); ``*`` allows any. A request without an
    ``Origin`` header (not a browser) passes unless ``require_origin``.
    Each client IP may start ``connect_rate_per_ip_per_s`` upgrades a second
    (bursts of ``connect_burst_per_ip``) and hold ``max_connections_per_ip``
    WebSockets at once; addresses in ``limit_exempt_networks`` (CIDR) are not
    limited per IP. One token subject may hold ``max_connections_per_principal``
    authenticated connections at once. ``max_tracked_ips`` bounds the
    per-IP state kept.
    """

    env_section: ClassVar[str] = "ACCESS"
    allowed_origins: tuple[str, ...] = ()
    require_origin: bool = False
    connect_rate_per_ip_per_s: float = 2.0
    connect_burst_per_ip: int = 60
    max_connections_per_ip: int = 256
    max_connections_per_principal: int = 64
    limit_exempt_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    max_tracked_ips: int = 100_000

    def __post_init__(self) -> None:
        _positive(
            self,
            "connect_rate_per_ip_per_s",
            "connect_burst_per_ip",
            "max_connections_per_ip",
            "max_connections_per_principal",
            "max_tracked_ips",
        )
        for origin in self.allowed_origins:
            scheme, sep, rest = origin.partition("://")
            _check(
                origin == "*" or (scheme in ("http", "https") and bool(sep) and bool(rest)),
                "allowed_origins",
                f"items must be * or look like https://host[:port], was {origin!r}",
            )
        for network in self.limit_exempt_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise SettingsError(
                    "limit_exempt_networks",
                    f"items must be networks such as 10.0.0.0/8, was {network!r}",
                ) from None


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """JWT verification (docs/protocol.md, "Authentication").

    HS256 tokens are checked with ``jwt_secret``; RS256 and ES256 tokens
    with the PEM key in ``public_key_file`` or the keys of the JWKS in
    ``jwks_file`` (by ``kid``). Without ``jwt_secret`` and without public
    keys, a dev secret in the data dir is used; with public keys and no
    ``jwt_secret``, HS256 tokens are refused. ``audience``, when set, must
    be in every token's ``aud``.
    """

    env_section: ClassVar[str] = "AUTH"
    jwt_secret: Secret | None = None
    public_key_file: Path | None = None
    jwks_file: Path | None = None
    issuer: str = "tickgate"
    audience: str | None = None
    leeway_s: float = 5.0
    allow_anonymous_quotes: bool = True

    @property
    def is_hs256_enabled(self) -> bool:
        """Whether HS256 tokens are taken: a secret is set, or no public key is."""
        has_public_keys = self.public_key_file is not None or self.jwks_file is not None
        return self.jwt_secret is not None or not has_public_keys

    def __post_init__(self) -> None:
        _check(
            0 <= self.leeway_s <= 300, "leeway_s", f"must be within [0, 300], was {self.leeway_s}"
        )
        if self.jwt_secret is not None:
            length = len(self.jwt_secret.reveal())
            _check(length >= 32, "jwt_secret", f"must be at least 32 characters, was {length}")


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    """The built-in market simulator (see ``pricing.simulator``)."""

    env_section: ClassVar[str] = "SIMULATOR"
    seed: int = 7
    tick_rate_per_s: float = 4_000.0
    step_ms: float = 5.0
    market_share: float = 0.25
    sector_share: float = 0.25
    spread_bps: float = 2.0
    max_catchup_steps: int = 200

    def __post_init__(self) -> None:
        _positive(self, "tick_rate_per_s", "step_ms", "max_catchup_steps")
        _check(self.spread_bps >= 0, "spread_bps", f"must be >= 0, was {self.spread_bps}")
        for name in ("market_share", "sector_share"):
            value = getattr(self, name)
            _check(0 <= value <= 1, name, f"must be within [0, 1], was {value}")
        total = self.market_share + self.sector_share
        _check(total <= 1, "sector_share", f"market_share + sector_share must be <= 1, was {total}")


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """The Kafka market-data source and its dead-letter topic."""

    env_section: ClassVar[str] = "KAFKA"
    bootstrap: str | None = None
    topic: str = "md.ticks"
    dlq_topic: str = "md.ticks.dlq"
    group_id: str = "tickgate-gateway"
    client_id: str = "tickgate"
    auto_offset_reset: Literal["earliest", "latest"] = "latest"
    max_batch_records: int = 5_000
    fetch_wait_ms: int = 5
    commit_interval_ms: int = 1_000
    commit_timeout_ms: int = 5_000
    request_timeout_ms: int = 40_000
    probe_interval_ms: int = 1_000
    probe_timeout_ms: int = 2_000
    retry_backoff_initial_ms: int = 250
    retry_backoff_max_ms: int = 10_000
    enable_idempotence: bool = False

    def __post_init__(self) -> None:
        _positive(
            self,
            "max_batch_records",
            "fetch_wait_ms",
            "commit_interval_ms",
            "commit_timeout_ms",
            "request_timeout_ms",
            "probe_interval_ms",
            "probe_timeout_ms",
            "retry_backoff_initial_ms",
            "retry_backoff_max_ms",
        )
        _ordered(self, "retry_backoff_initial_ms", "retry_backoff_max_ms")


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """A generic JSON vendor WebSocket feed.

    ``subscribe_template`` is the message sent after each connect, with
    ``$symbols`` replaced by the JSON array of symbols. The ``field_*``
    settings name the vendor's field for each tick field; ``ts_unit`` is the
    unit of its timestamps.
    """

    env_section: ClassVar[str] = "UPSTREAM"
    # repr=False: a password in the URL never reaches a repr (redacted() masks it).
    url: str | None = field(default=None, repr=False)
    subscribe_template: str = '{"op":"subscribe","symbols":$symbols}'
    symbols: tuple[str, ...] = ()
    field_symbol: str = "symbol"
    field_bid: str = "bid"
    field_ask: str = "ask"
    field_last: str = "last"
    field_size: str = "size"
    field_ts_event: str = "ts_event"
    field_seq: str = "seq"
    ts_unit: Literal["ns", "us", "ms", "s"] = "ns"
    resubscribe_on_gap: bool = True
    batch_window_ms: int = 5
    batch_max_ticks: int = 5_000
    open_timeout_s: float = 10.0
    reconnect_initial_ms: int = 250
    reconnect_max_ms: int = 30_000

    def __post_init__(self) -> None:
        _positive(
            self,
            "batch_window_ms",
            "batch_max_ticks",
            "open_timeout_s",
            "reconnect_initial_ms",
            "reconnect_max_ms",
        )
        _ordered(self, "reconnect_initial_ms", "reconnect_max_ms")
        _check(
            "$symbols" in self.subscribe_template,
            "subscribe_template",
            "must contain the $symbols placeholder",
        )


@dataclass(frozen=True, slots=True)
class PortfolioSettings:
    """Accounts and valuation.

    Without ``positions_file`` the gateway seeds ``demo_accounts`` demo
    accounts. ``rates`` gives the risk-free rate per currency for option
    pricing (``USD=0.04``); ``max_leverage`` sets buying power.
    ``max_loop_share`` bounds the share of the event loop that revaluation
    on ticks may take (the rule: docs/operations.md, "Revaluation and the
    event loop"). Every day at ``day_roll_utc`` (``HH:MM``, UTC) the trading day
    rolls: current mids become the previous closes and today's opening
    quantities the current ones, so day P&L starts again from zero.
    """

    env_section: ClassVar[str] = "PORTFOLIO"
    demo_accounts: int = 1_000
    demo_seed: int = 11
    positions_file: Path | None = None
    max_leverage: float = 2.0
    rates: tuple[str, ...] = ("USD=0.04", "EUR=0.02", "GBP=0.04", "JPY=0.005")
    max_loop_share: float = 0.5
    day_roll_utc: str = "22:00"

    def __post_init__(self) -> None:
        _check(self.demo_accounts >= 0, "demo_accounts", f"must be >= 0, was {self.demo_accounts}")
        _positive(self, "max_leverage")
        _check(
            0 < self.max_loop_share <= 1,
            "max_loop_share",
            f"must be in (0, 1], was {self.max_loop_share}",
        )
        self.day_roll_minute()
        self.rate_by_currency()

    def day_roll_minute(self) -> int:
        """``day_roll_utc`` as minutes after midnight UTC; raises ``SettingsError``."""
        hours, _, minutes = self.day_roll_utc.partition(":")
        ok = hours.isdigit() and minutes.isdigit() and len(minutes) == 2
        total = int(hours) * 60 + int(minutes) if ok else -1
        _check(
            ok and int(hours) < 24 and int(minutes) < 60,
            "day_roll_utc",
            f"must be HH:MM (UTC), was {self.day_roll_utc!r}",
        )
        return total

    def rate_by_currency(self) -> dict[str, float]:
        """``rates`` as a mapping; raises ``SettingsError`` on a malformed item."""
        out: dict[str, float] = {}
        for item in self.rates:
            currency, _, value = item.partition("=")
            try:
                rate = float(value)
            except ValueError:
                rate = math.nan
            _check(
                bool(currency) and math.isfinite(rate) and -1 < rate < 1,
                "rates",
                f"items must look like USD=0.04, was {item!r}",
            )
            out[currency.strip().upper()] = rate
        return out


@dataclass(frozen=True, slots=True)
class RiskSettings:
    """Risk cadence and models (see docs/risk.md).

    Every ``interval_ms`` the gateway samples prices into the intraday
    model (half-life ``intraday_half_life_s``), reprices options for time
    decay and computes VaR, volatilities and stress for every account in a
    worker thread. VaR comes from the daily model: an EWMA of daily returns
    with decay ``ewma_lambda``, seeded in simulator mode from
    ``history_days`` daily closes drawn from the simulator's own model, and
    fed each day's close-to-close return at the day roll; it is reported
    once the model holds ``min_days`` daily returns. Historical VaR uses the
    last ``window`` daily returns as scenarios; the horizon is
    ``horizon_days`` trading days. ``scenarios`` overrides the default
    stress scenarios: ``name:equity=-0.1,vol=0.5;name2:fx=0.05``.
    """

    env_section: ClassVar[str] = "RISK"
    interval_ms: int = 1_000
    ewma_lambda: float = 0.94
    window: int = 250
    min_days: int = 20
    history_days: int = 500
    horizon_days: float = 1.0
    intraday_half_life_s: float = 20.0
    confidences: tuple[str, ...] = ("0.95", "0.99")
    scenarios: str = ""

    def __post_init__(self) -> None:
        _positive(self, "interval_ms", "window", "min_days", "horizon_days", "intraday_half_life_s")
        _check(
            self.history_days >= 0,
            "history_days",
            f"must be >= 0, was {self.history_days}",
        )
        _check(
            0 < self.ewma_lambda < 1,
            "ewma_lambda",
            f"must be within (0, 1), was {self.ewma_lambda}",
        )
        levels = self.confidence_levels()
        _check(
            bool(levels) and all(0.5 < c < 1 for c in levels),
            "confidences",
            f"must be numbers within (0.5, 1), were {self.confidences}",
        )
        if self.scenarios:
            # Imported here: portfolio.stress pulls in numpy and scipy, which
            # the CLI's light commands (token, spike) never need.
            from portfolio.stress import parse_scenarios

            try:
                parse_scenarios(self.scenarios)
            except ValueError as e:
                raise SettingsError("scenarios", str(e)) from None

    def confidence_levels(self) -> tuple[float, ...]:
        """``confidences`` as numbers (NaN for a malformed one)."""
        out = []
        for item in self.confidences:
            try:
                out.append(float(item))
            except ValueError:
                out.append(math.nan)
        return tuple(out)


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """The Redis server (off unless ``url`` is set); it backs the position cache."""

    env_section: ClassVar[str] = "REDIS"
    # repr=False: a password in the URL never reaches a repr (redacted() masks it).
    url: str | None = field(default=None, repr=False)
    key_prefix: str = "tickgate"
    timeout_ms: int = 2_000

    def __post_init__(self) -> None:
        _positive(self, "timeout_ms")


@dataclass(frozen=True, slots=True)
class PositionCacheSettings:
    """The position cache's writer, whichever store backs it (memory, or Redis).

    Dirty accounts are written every ``flush_interval_ms``, in transactions
    of at most 250 accounts; while the store is down the cache is marked
    degraded and retried with backoff. Every ``check_interval_ms`` the
    store's sync mark is read to catch a store that lost its data. These
    keys were once in the ``REDIS`` section, and their old names still work
    (``Settings.env_aliases``).
    """

    env_section: ClassVar[str] = "POSITION_CACHE"
    flush_interval_ms: int = 200
    check_interval_ms: int = 1_000
    retry_backoff_initial_ms: int = 250
    retry_backoff_max_ms: int = 10_000

    def __post_init__(self) -> None:
        _positive(
            self,
            "flush_interval_ms",
            "check_interval_ms",
            "retry_backoff_initial_ms",
            "retry_backoff_max_ms",
        )
        _ordered(self, "retry_backoff_initial_ms", "retry_backoff_max_ms")


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The order API's own listener (docs/api.md).

    ``tickgate run`` serves it beside ``/ws`` unless ``enabled`` is false;
    ``tickgate api`` serves it alone. ``max_body_bytes`` bounds a request
    body (413 beyond it, read no further).
    """

    env_section: ClassVar[str] = "API"
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8001
    max_body_bytes: int = 16_384
    retry_after_s: int = 1
    recent_commands_max: int = 10_000
    list_limit_default: int = 50
    list_limit_max: int = 200

    def __post_init__(self) -> None:
        _check(0 <= self.port <= 65535, "port", f"must be within [0, 65535], was {self.port}")
        _positive(
            self,
            "max_body_bytes",
            "retry_after_s",
            "recent_commands_max",
            "list_limit_default",
            "list_limit_max",
        )
        _ordered(self, "list_limit_default", "list_limit_max")


@dataclass(frozen=True, slots=True)
class OrdersSettings:
    """Order entry: idempotency, pre-trade limits, the command bus and the ``orders`` channel.

    ``idempotency_store`` is ``memory`` (the embedded default) or ``redis``
    (``TICKGATE_REDIS_URL``). ``bus`` is ``inbox`` (the embedded ledger's
    inbox) or ``kafka`` (``TICKGATE_KAFKA_BOOTSTRAP``). Money limits are
    decimal strings: ``max_order_notional`` as ``CCY:AMOUNT`` items,
    ``position_limits`` as ``SYMBOL:QUANTITY`` items. ``channel_history``
    is how many events per account the ``orders`` channel keeps to replay
    on recovery.
    """

    env_section: ClassVar[str] = "ORDERS"
    idempotency_store: Literal["memory", "redis"] = "memory"
    lease_ms: int = 15_000
    retention_s: int = 86_400
    in_progress_retry_after_s: int = 1
    memory_max_records: int = 200_000
    price_band_bps: int = 1_000
    max_order_notional: tuple[str, ...] = (
        "USD:1000000",
        "EUR:1000000",
        "GBP:1000000",
        "JPY:150000000",
    )
    max_position_quantity: int = 1_000_000
    position_limits: tuple[str, ...] = ()
    submit_rate_per_s: int = 100
    submit_burst: int = 100
    max_rate_tracked_accounts: int = 100_000
    reservation_ttl_s: int = 300
    blocked_symbols: tuple[str, ...] = ()
    bus: Literal["inbox", "kafka"] = "inbox"
    kafka_topic: str = "orders.submitted"
    kafka_client_id: str = "tickgate-orders"
    kafka_enable_idempotence: bool = False
    kafka_send_timeout_ms: int = 5_000
    kafka_request_timeout_ms: int = 5_000
    kafka_linger_ms: int = 0
    events_topic: str = "orders.events"
    events_group_id: str = "tickgate-gateway-events"
    channel_history: int = 256

    def __post_init__(self) -> None:
        _positive(
            self,
            "lease_ms",
            "retention_s",
            "in_progress_retry_after_s",
            "memory_max_records",
            "price_band_bps",
            "max_position_quantity",
            "submit_rate_per_s",
            "submit_burst",
            "max_rate_tracked_accounts",
            "reservation_ttl_s",
            "kafka_send_timeout_ms",
            "kafka_request_timeout_ms",
            "channel_history",
        )
        _check(self.kafka_linger_ms >= 0, "kafka_linger_ms", "must be >= 0")
        _check(
            self.lease_ms < self.retention_s * 1000,
            "lease_ms",
            f"must be shorter than retention_s, was {self.lease_ms} ms",
        )
        _check(
            self.lease_ms > self.kafka_send_timeout_ms,
            "lease_ms",
            f"must exceed kafka_send_timeout_ms ({self.kafka_send_timeout_ms}), "
            f"was {self.lease_ms}",
        )
        self.notional_limits()
        self.quantity_limits()

    def notional_limits(self) -> dict[str, Decimal]:
        """``max_order_notional`` as a mapping; raises ``SettingsError``."""
        return _decimal_items(self.max_order_notional, "max_order_notional", "USD:1000000")

    def quantity_limits(self) -> dict[str, Decimal]:
        """``position_limits`` as a mapping; raises ``SettingsError``."""
        return _decimal_items(self.position_limits, "position_limits", "AAPL:5000")


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    """The ledger: its store, its service and the simulated venue and bank (docs/ledger.md).

    ``url`` names the store: unset, the SQLite file ``ledger.db`` under the
    data dir; ``sqlite:///PATH``; or ``postgresql://...``. ``embedded``
    runs the ledger service inside ``tickgate run`` and ``tickgate api``;
    set it false when a separate ``tickgate ledger run`` consumes the
    commands (then the bus must be Kafka). Fees are decimal strings in the
    instrument's currency; ``max_fill_lots`` 0 means no liquidity cap.
    """

    env_section: ClassVar[str] = "LEDGER"
    url: Secret | None = None
    embedded: bool = True
    batch_max_commands: int = 1_000
    idle_poll_ms: int = 250
    relay_batch_size: int = 1_000
    relay_interval_ms: int = 200
    rail_poll_interval_ms: int = 100
    rail_timeout_ms: int = 2_000
    retry_backoff_initial_ms: int = 50
    retry_backoff_max_ms: int = 2_000
    partition_months_ahead: int = 2
    slippage_bps: str = "0"
    fee_per_unit: str = "0"
    fee_bps: str = "0"
    max_fill_lots: int = 0
    market_collar_bps: str = "500"
    allow_short_sales: bool = True
    rail_latency_ms: float = 0.0
    rail_failure_rate: float = 0.0
    rail_lost_reply_rate: float = 0.0
    rail_settle_after_ms: float = 50.0
    group_id: str = "ledger"
    dlq_topic: str = "orders.dlq"

    def __post_init__(self) -> None:
        _positive(
            self,
            "batch_max_commands",
            "idle_poll_ms",
            "relay_batch_size",
            "relay_interval_ms",
            "rail_poll_interval_ms",
            "rail_timeout_ms",
            "retry_backoff_initial_ms",
            "retry_backoff_max_ms",
        )
        _ordered(self, "retry_backoff_initial_ms", "retry_backoff_max_ms")
        _check(self.partition_months_ahead >= 0, "partition_months_ahead", "must be >= 0")
        _check(self.max_fill_lots >= 0, "max_fill_lots", "must be >= 0 (0: no cap)")
        for name in ("slippage_bps", "fee_per_unit", "fee_bps", "market_collar_bps"):
            _decimal_at_least_zero(self, name)
        for name in ("rail_failure_rate", "rail_lost_reply_rate"):
            value = getattr(self, name)
            _check(0 <= value <= 1, name, f"must be within [0, 1], was {value}")
        for name in ("rail_latency_ms", "rail_settle_after_ms"):
            _check(getattr(self, name) >= 0, name, f"must be >= 0, was {getattr(self, name)}")
        if self.url is not None:
            url = self.url.reveal()
            _check(
                url.startswith(("postgresql://", "postgres://", "sqlite:///")),
                "url",
                "must start with postgresql://, postgres:// or sqlite:///",
            )

    def decimal(self, name: str) -> Decimal:
        """The decimal-string setting ``name`` as a ``Decimal``."""
        return Decimal(getattr(self, name))

    def store_location(self, data_dir: Path) -> str:
        """The PostgreSQL DSN, or the path of the SQLite file (the default under ``data_dir``)."""
        if self.url is None:
            return str(data_dir / "ledger.db")
        url = self.url.reveal()
        if url.startswith("sqlite:///"):
            return url.removeprefix("sqlite://")
        return url

    @property
    def is_postgres(self) -> bool:
        return self.url is not None and self.url.reveal().startswith(("postgresql:", "postgres:"))


def _decimal_items(items: tuple[str, ...], name: str, example: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for item in items:
        key, _, text = item.partition(":")
        try:
            value = Decimal(text.strip())
        except InvalidOperation:
            value = Decimal("NaN")
        _check(
            bool(key.strip()) and value.is_finite() and value > 0,
            name,
            f"items must look like {example} with a positive amount, was {item!r}",
        )
        out[key.strip()] = value
    return out


def _decimal_at_least_zero(settings: object, name: str) -> None:
    text = getattr(settings, name)
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    _check(value.is_finite() and value >= 0, name, f"must be a decimal >= 0, was {text!r}")


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """The audit log (``gateway.audit``): also appended to ``file`` when it is set."""

    env_section: ClassVar[str] = "AUDIT"
    file: Path | None = None


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    """The browser dashboard at ``/``, and its demo mode.

    In demo mode the page may ask ``POST /dashboard/token`` for a token that
    reads one seeded demo account, or for a short one with the ``admin`` scope
    to start a simulator spike: anyone who reaches the port gets them.
    ``demo`` unset means demo mode is on when the feed is the built-in
    simulator and off otherwise (``is_demo``).
    """

    env_section: ClassVar[str] = "DASHBOARD"
    enabled: bool = True
    demo: bool | None = None
    demo_token_ttl_s: float = 300.0

    def __post_init__(self) -> None:
        ttl = self.demo_token_ttl_s
        _check(ttl >= 30, "demo_token_ttl_s", f"must be at least 30, was {ttl}")

    def is_demo(self, feed_source: str) -> bool:
        """Whether demo mode is on, given the feed source (``demo`` unset: the simulator)."""
        return self.enabled and (self.demo if self.demo is not None else feed_source == "simulator")


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """Return ``$XDG_DATA_HOME/tickgate``, or ``~/.local/share/tickgate``."""
    base = environ.get("XDG_DATA_HOME") or str(Path(environ.get("HOME", "~")) / ".local/share")
    return Path(base).expanduser() / "tickgate"


@dataclass(frozen=True, slots=True)
class Settings:
    """All of tickgate's settings; each component receives only its own section."""

    env_section: ClassVar[str] = ""
    # Keys renamed when the position cache got its own section: the old
    # names still work (see gateway.environment).
    env_aliases: ClassVar[Mapping[str, str]] = {
        f"TICKGATE_REDIS_{name}": f"TICKGATE_POSITION_CACHE_{name}"
        for name in ("FLUSH_INTERVAL_MS", "RETRY_BACKOFF_INITIAL_MS", "RETRY_BACKOFF_MAX_MS")
    }
    host: str = "127.0.0.1"
    port: int = 8000
    # Expanded here too: Settings() built in code must not mean a directory named "~".
    data_dir: Path = field(default_factory=lambda: default_data_dir(os.environ))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    shutdown_timeout_s: int = 10
    server: ServerSettings = field(default_factory=ServerSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    feed: FeedSettings = field(default_factory=FeedSettings)
    ws: WebSocketSettings = field(default_factory=WebSocketSettings)
    fanout: FanoutSettings = field(default_factory=FanoutSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    simulator: SimulatorSettings = field(default_factory=SimulatorSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    portfolio: PortfolioSettings = field(default_factory=PortfolioSettings)
    risk: RiskSettings = field(default_factory=RiskSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    position_cache: PositionCacheSettings = field(default_factory=PositionCacheSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    orders: OrdersSettings = field(default_factory=OrdersSettings)
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)

    def __post_init__(self) -> None:
        _check(0 <= self.port <= 65535, "port", f"must be within [0, 65535], was {self.port}")
        _positive(self, "shutdown_timeout_s")
        if self.feed.source == "kafka":
            _check(
                self.kafka.bootstrap is not None,
                "kafka_bootstrap",
                "must be set when feed_source is kafka",
            )
        if self.orders.bus == "kafka" or not self.ledger.embedded:
            _check(
                self.kafka.bootstrap is not None,
                "kafka_bootstrap",
                "must be set when orders_bus is kafka or the ledger is not embedded",
            )
        if not self.ledger.embedded:
            _check(
                self.orders.bus == "kafka",
                "orders_bus",
                "must be kafka when the ledger is not embedded (ledger_embedded is false)",
            )
        if self.orders.idempotency_store == "redis":
            _check(
                self.redis.url is not None,
                "redis_url",
                "must be set when orders_idempotency_store is redis",
            )
        if self.api.enabled and self.api.port != 0:
            _check(
                self.api.port != self.port or self.api.host != self.host,
                "api_port",
                f"must differ from the WebSocket listener's port ({self.port})",
            )
        if self.feed.source == "upstream":
            _check(
                self.upstream.url is not None,
                "upstream_url",
                "must be set when feed_source is upstream",
            )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], overrides: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from ``TICKGATE_*`` keys; ``overrides`` win over ``environ``.

        Raises ``SettingsError`` naming the key of an unknown or invalid setting.
        """
        defaults = {"TICKGATE_DATA_DIR": str(default_data_dir(environ))}
        return environment.from_env(cls, environ, overrides, defaults)

    def redacted(self) -> dict[str, object]:
        """Every effective setting by key, with secrets shown as ``***``."""
        return environment.redacted(self)
