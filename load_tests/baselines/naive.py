"""The naive baseline: the obvious WebSocket quote server, for the benchmark to beat.

A Starlette app under uvicorn that speaks the subset of tickgate's protocol
the load-test fleet uses (``/ws`` with ``subscribe``, ``unsubscribe`` and
``ping`` on the ``quotes`` channel, ``/v1/instruments``, ``/metrics``,
``/healthz`` and ``/admin/spike``), fed by a built-in random-walk tick
generator. Run it with::

    python -m load_tests.baselines.naive --host 127.0.0.1 --port 8100 \\
        --instruments-file instruments.csv --tick-rate 20000 [--step-ms 5] [--seed 7]

It is naive in one respect, on purpose: fan-out. For every tick, in order, it
loops over the clients subscribed to that symbol and awaits
``websocket.send_text`` for each, one message per frame, encoded per client:
no batching of a step's ticks into one frame, no shared encoding, no
conflation, no per-client queue. A client that reads slowly therefore holds
up every other client. That is the design the benchmark measures tickgate
against.

It is otherwise correct: ``seq`` advances by one per tick of a symbol and is
the same for every client, a subscriber gets the symbol's snapshot before any
of its updates and then every update (no gap), and a client that goes away is
dropped without disturbing the generator. Each connection has a lock, held by
``subscribe`` while it registers the symbols and sends the snapshots, and by
every other send to that connection; registering a symbol and reading its
snapshot happen with no await in between, as do applying a tick and listing
its subscribers. A subscription remembers the seq of its snapshot, so an
update already covered by a fresh snapshot, or one for a symbol unsubscribed
meanwhile, is skipped.

There is no authentication: the ``token`` query parameter and any
``Authorization`` header are accepted and ignored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import math
import random
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from load_tests.universe import COLUMNS

__all__ = [
    "Instrument",
    "NaiveServer",
    "create_app",
    "load_instruments",
    "main",
]

Message = dict[str, Any]

# Volatility is annualised over a trading year of 252 days of 6.5 hours.
TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600
# A generator that fell behind emits the ticks of at most this many steps at once.
MAX_CATCH_UP_STEPS = 200
# bid = mid - 1 bp, ask = mid + 1 bp.
HALF_SPREAD = 1e-4
# Spike fields: (default, inclusive upper bound); every value must be > 0.
SPIKE_FIELDS = {
    "rate_multiplier": (10.0, 100.0),
    "vol_multiplier": (5.0, 20.0),
    "duration_s": (30.0, 3600.0),
}
MAX_SPIKE_BODY_BYTES = 4096
# Error messages list at most this many refused symbols, each cut to this length.
MAX_LISTED = 20
MAX_LISTED_CHARS = 64
MAX_ID_CHARS = 64
REQUIRED_COLUMNS = ("symbol", "type", "ref_price", "volatility", "weight")
# The reference fields /v1/instruments lists, as tickgate does; empty ones are null.
REFERENCE_FIELDS = COLUMNS[: COLUMNS.index("ref_price")]


# --- instruments ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instrument:
    """One row of the instrument CSV.

    ``ref_price``, ``volatility`` (annualised) and ``weight`` (relative tick
    frequency) are NaN for options, which never tick; ``reference`` holds the
    row's reference fields for ``/v1/instruments``.
    """

    symbol: str
    type: str
    ref_price: float
    volatility: float
    weight: float
    reference: dict[str, str | None]

    @property
    def ticks(self) -> bool:
        """Whether the generator quotes this instrument: not an option, with a weight."""
        return self.type != "option" and self.weight > 0


def _number(row: dict[str, str], column: str, line: int, *, minimum: float, strict: bool) -> float:
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"line {line}: {column} must be a number, was {text!r}") from None
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"line {line}: {column} must be finite and {bound}, was {text!r}")
    return value


def load_instruments(path: Path) -> list[Instrument]:
    """Read an instrument CSV (tickgate's header); raise ``ValueError`` naming a bad line."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        instruments: list[Instrument] = []
        seen: set[str] = set()
        for row in reader:
            line = reader.line_num
            symbol = (row.get("symbol") or "").strip()
            if not symbol:
                raise ValueError(f"{path}: line {line}: empty symbol")
            if symbol in seen:
                raise ValueError(f"{path}: line {line}: duplicate symbol {symbol!r}")
            seen.add(symbol)
            kind = (row.get("type") or "").strip()
            reference: dict[str, str | None] = {
                name: (row.get(name) or "").strip() or None for name in REFERENCE_FIELDS
            }
            if reference["id"] is None:
                reference["id"] = (row.get("instrument_id") or "").strip() or None
            reference["symbol"], reference["type"] = symbol, kind
            if kind == "option":
                price = volatility = weight = math.nan
            else:
                try:
                    price = _number(row, "ref_price", line, minimum=0.0, strict=True)
                    volatility = _number(row, "volatility", line, minimum=0.0, strict=False)
                    weight = _number(row, "weight", line, minimum=0.0, strict=False)
                except ValueError as e:
                    raise ValueError(f"{path}: {e}") from None
            instruments.append(Instrument(symbol, kind, price, volatility, weight, reference))
    if not instruments:
        raise ValueError(f"{path}: no instruments")
    return instruments


# --- state --------------------------------------------------------------------------------


@dataclass(slots=True)
class Quote:
    """A symbol's current state: null prices and seq 0 until its first tick."""

    mid: float
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    size: float | None = None
    ts: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class _Ticker:
    """A quoted instrument: its quote and its per-tick log-return variance at rate 1/s."""

    symbol: str
    quote: Quote
    variance_at_unit_rate: float


@dataclass(eq=False, slots=True)
class Connection:
    """One WebSocket client: its lock, and the seq of the snapshot of each subscribed symbol."""

    websocket: WebSocket
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    subscriptions: dict[str, int] = field(default_factory=dict)
    closed: bool = False


class _Refused(Exception):
    """A client message is refused with an ``error`` reply."""

    def __init__(self, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra


class NaiveServer:
    """The tick generator, the quote state, the subscribers, and the request handlers."""

    def __init__(
        self,
        instruments: Sequence[Instrument],
        *,
        tick_rate: float,
        step_ms: float = 5.0,
        seed: int = 7,
    ) -> None:
        if not (math.isfinite(tick_rate) and tick_rate >= 0):
            raise ValueError(f"tick_rate must be finite and >= 0, was {tick_rate}")
        if not (math.isfinite(step_ms) and step_ms > 0):
            raise ValueError(f"step_ms must be finite and > 0, was {step_ms}")
        self.tick_rate = tick_rate
        self.step_s = step_ms / 1000.0
        self.epoch = secrets.token_hex(6)
        self.instruments = list(instruments)
        self.quotes = {i.symbol: Quote(mid=i.ref_price) for i in self.instruments}
        self.subscribers: dict[str, dict[Connection, None]] = {s: {} for s in self.quotes}
        quoted = [i for i in self.instruments if i.ticks]
        total_weight = sum(i.weight for i in quoted)
        # A tick of instrument i stands for 1 / (rate * p_i) seconds, p_i its share of
        # the ticks: the variance per tick is vol^2 * that time in years.
        self._tickers = [
            _Ticker(
                i.symbol,
                self.quotes[i.symbol],
                i.volatility**2 * total_weight / (i.weight * TRADING_SECONDS_PER_YEAR),
            )
            for i in quoted
        ]
        self._cum_weights: list[float] = []
        running = 0.0
        for i in quoted:
            running += i.weight
            self._cum_weights.append(running)
        self._rng = random.Random(seed)
        self._spike_rate = 1.0
        self._spike_vol = 1.0
        self._spike_until = -math.inf
        self.task: asyncio.Task[None] | None = None
        self.ticks_emitted = 0
        self._registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self._registry)
        self._instruments_json = orjson.dumps([i.reference for i in self.instruments])

    # --- the generator ------------------------------------------------------------

    def regime(self) -> tuple[float, float]:
        """The current (rate multiplier, volatility multiplier)."""
        if asyncio.get_running_loop().time() < self._spike_until:
            return self._spike_rate, self._spike_vol
        return 1.0, 1.0

    def spike(self, rate_multiplier: float, vol_multiplier: float, duration_s: float) -> None:
        """Multiply the tick rate and the volatility for ``duration_s``; replaces any spike."""
        self._spike_rate = rate_multiplier
        self._spike_vol = vol_multiplier
        self._spike_until = asyncio.get_running_loop().time() + duration_s

    async def run(self) -> None:
        """Emit ticks on a fixed schedule of steps until cancelled."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        done = 0
        carry = 0.0
        while True:
            await asyncio.sleep(max(0.0, start + (done + 1) * self.step_s - loop.time()))
            due = int((loop.time() - start) / self.step_s)
            steps = min(due - done, MAX_CATCH_UP_STEPS)
            if steps <= 0:
                continue
            done = due
            if not self._tickers:
                continue
            rate_multiplier, vol_multiplier = self.regime()
            rate = self.tick_rate * rate_multiplier
            expected = rate * self.step_s * steps + carry
            count = round(expected)
            carry = expected - count
            if count > 0:
                await self._emit(count, rate, vol_multiplier, time.time_ns())

    async def _emit(self, count: int, rate: float, vol_multiplier: float, ts: int) -> None:
        rng = self._rng
        vol_squared = vol_multiplier * vol_multiplier
        picks = rng.choices(self._tickers, cum_weights=self._cum_weights, k=count)
        self.ticks_emitted += count
        for ticker in picks:
            quote = ticker.quote
            variance = ticker.variance_at_unit_rate * vol_squared / rate
            quote.mid *= math.exp(math.sqrt(variance) * rng.gauss(0.0, 1.0) - 0.5 * variance)
            quote.bid = quote.mid * (1.0 - HALF_SPREAD)
            quote.ask = quote.mid * (1.0 + HALF_SPREAD)
            quote.last = quote.mid
            quote.size = float(rng.randint(1, 10))
            quote.ts = ts
            quote.seq += 1
            seq = quote.seq
            # Listed with no await since the tick was applied: exactly the clients
            # whose snapshot is older than this tick.
            clients = list(self.subscribers[ticker.symbol])
            if not clients:
                continue
            message = self._quote_message("update", ticker.symbol, quote)
            for conn in clients:
                async with conn.lock:
                    # Skip it if the symbol was unsubscribed, or resubscribed with a
                    # snapshot that already holds this tick, while we waited.
                    if conn.subscriptions.get(ticker.symbol, seq) < seq:
                        await self._write(conn, message)

    # --- connections ------------------------------------------------------------

    def _quote_message(self, kind: str, key: str, quote: Quote) -> Message:
        return {
            "type": kind,
            "channel": "quotes",
            "key": key,
            "seq": quote.seq,
            "epoch": self.epoch,
            "bid": quote.bid,
            "ask": quote.ask,
            "last": quote.last,
            "size": quote.size,
            "ts_event": quote.ts,
            "ts_recv": quote.ts,
            "stale": quote.last is None,
        }

    async def _write(self, conn: Connection, message: Message) -> bool:
        """Send one message in a frame of its own; the caller holds ``conn.lock``.

        A client that is gone is dropped, and False returned.
        """
        if conn.closed:
            return False
        message["ts_sent"] = time.time_ns()
        frame = orjson.dumps([message]).decode()
        try:
            await conn.websocket.send_text(frame)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self._drop(conn)
            return False
        return True

    async def _reply(self, conn: Connection, message: Message) -> None:
        async with conn.lock:
            await self._write(conn, message)

    def _drop(self, conn: Connection) -> None:
        conn.closed = True
        for key in conn.subscriptions:
            self.subscribers[key].pop(conn, None)
        conn.subscriptions.clear()

    async def websocket_endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        conn = Connection(websocket)
        try:
            while not conn.closed:
                event = await websocket.receive()
                if event["type"] == "websocket.disconnect":
                    break
                text = event.get("text")
                if text is None:
                    error = _error("bad_frame", "binary frames are not accepted", None)
                    await self._reply(conn, error)
                else:
                    await self._on_text(conn, text)
        finally:
            self._drop(conn)

    async def _on_text(self, conn: Connection, text: str) -> None:
        request_id: object = None
        try:
            try:
                request = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise _Refused("bad_json", "the message is not JSON") from None
            if not isinstance(request, dict):
                raise _Refused("bad_request", "a message must be a JSON object")
            request_id = _request_id(request)
            op = request.get("op")
            if op == "ping":
                await self._reply(conn, _with_id({"type": "pong"}, request_id))
            elif op == "subscribe":
                await self._subscribe(conn, request, request_id)
            elif op == "unsubscribe":
                await self._unsubscribe(conn, request, request_id)
            else:
                extra = {"op": op} if isinstance(op, str) else {}
                raise _Refused("unknown_op", f"unknown op {op!r}", **extra)
        except _Refused as refused:
            await self._reply(conn, _error(refused.code, str(refused), request_id, **refused.extra))

    async def _subscribe(self, conn: Connection, request: Message, request_id: object) -> None:
        keys = _quote_keys(request)
        unknown = [k for k in keys if k not in self.quotes]
        if unknown:
            raise _Refused(
                "unknown_symbol",
                f"{len(unknown)} unknown symbol(s); nothing was subscribed",
                symbols=[k[:MAX_LISTED_CHARS] for k in unknown[:MAX_LISTED]],
            )
        async with conn.lock:
            if conn.closed:
                return
            snapshots = []
            for key in keys:
                # Registered and read with no await in between: every later tick of the
                # key goes to this connection, and this snapshot holds every earlier one.
                quote = self.quotes[key]
                self.subscribers[key][conn] = None
                conn.subscriptions[key] = quote.seq
                snapshots.append(self._quote_message("snapshot", key, quote))
            subscribed: Message = {
                "type": "subscribed",
                "channel": "quotes",
                "keys": keys,
                "epoch": self.epoch,
            }
            if not await self._write(conn, _with_id(subscribed, request_id)):
                return
            for snapshot in snapshots:
                if not await self._write(conn, snapshot):
                    return

    async def _unsubscribe(self, conn: Connection, request: Message, request_id: object) -> None:
        keys = _quote_keys(request)
        async with conn.lock:
            removed = [k for k in keys if conn.subscriptions.pop(k, None) is not None]
            for key in removed:
                self.subscribers[key].pop(conn, None)
            reply = {"type": "unsubscribed", "channel": "quotes", "keys": removed}
            await self._write(conn, _with_id(reply, request_id))

    # --- HTTP ---------------------------------------------------------------------

    async def instruments_endpoint(self, request: Request) -> Response:
        return Response(self._instruments_json, media_type="application/json")

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self._registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz_endpoint(self, request: Request) -> Response:
        if self.task is None or self.task.done():
            return JSONResponse({"status": "down"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def spike_endpoint(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_SPIKE_BODY_BYTES:
            return _http_error(413, "body_too_large", f"at most {MAX_SPIKE_BODY_BYTES} bytes")
        try:
            fields = orjson.loads(body) if body.strip() else {}
        except orjson.JSONDecodeError:
            return _http_error(400, "bad_json", "the body is not JSON")
        if not isinstance(fields, dict):
            return _http_error(400, "bad_request", "the body must be a JSON object")
        unknown = sorted(set(fields) - set(SPIKE_FIELDS))
        if unknown:
            return _http_error(400, "bad_request", f"unknown field(s) {', '.join(unknown)}")
        values: dict[str, float] = {}
        for name, (default, upper) in SPIKE_FIELDS.items():
            value = fields.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return _http_error(400, "bad_request", f"{name} must be a number")
            if not 0 < value <= upper:
                return _http_error(400, "bad_request", f"{name} must be in (0, {upper:g}]")
            values[name] = float(value)
        self.spike(values["rate_multiplier"], values["vol_multiplier"], values["duration_s"])
        return JSONResponse(values, status_code=202)


def _with_id(message: Message, request_id: object) -> Message:
    if request_id is not None:
        message["id"] = request_id
    return message


def _error(code: str, text: str, request_id: object, **extra: object) -> Message:
    message: Message = {"type": "error", "code": code, "message": text, "retry": False}
    message.update(extra)
    return _with_id(message, request_id)


def _http_error(status: int, code: str, text: str) -> Response:
    return JSONResponse({"code": code, "message": text}, status_code=status)


def _request_id(request: Message) -> object:
    """The request's ``id`` (None when absent); refuse one of the wrong type or size."""
    request_id = request.get("id")
    if request_id is None:
        return None
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        if -(2**63) <= request_id < 2**64:
            return request_id
    elif isinstance(request_id, str) and len(request_id) <= MAX_ID_CHARS:
        return request_id
    raise _Refused("bad_request", "id must be a 64-bit integer or a string of <= 64 characters")


def _quote_keys(request: Message) -> list[str]:
    """The distinct symbols of a quotes (un)subscribe, in order; refuse anything else."""
    channel = request.get("channel")
    if channel != "quotes":
        raise _Refused("unknown_channel", f"channel {channel!r} is not served")
    symbols = request.get("symbols")
    if not (
        isinstance(symbols, list) and symbols and all(isinstance(s, str) and s for s in symbols)
    ):
        raise _Refused("bad_request", "symbols must be a non-empty array of non-empty strings")
    return list(dict.fromkeys(symbols))


# --- the app ------------------------------------------------------------------------------


def create_app(
    instruments: Sequence[Instrument],
    *,
    tick_rate: float,
    step_ms: float = 5.0,
    seed: int = 7,
) -> Starlette:
    """The Starlette app; its generator runs while the app's lifespan does.

    The server is ``app.state.server``.
    """
    server = NaiveServer(instruments, tick_rate=tick_rate, step_ms=step_ms, seed=seed)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        server.task = asyncio.create_task(server.run(), name="naive-ticks")
        try:
            yield
        finally:
            server.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server.task

    app = Starlette(
        routes=[
            WebSocketRoute("/ws", server.websocket_endpoint),
            Route("/v1/instruments", server.instruments_endpoint, methods=["GET"]),
            Route("/metrics", server.metrics_endpoint, methods=["GET"]),
            Route("/healthz", server.healthz_endpoint, methods=["GET"]),
            Route("/admin/spike", server.spike_endpoint, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.server = server
    return app


def uvicorn_config(app: Starlette, *, host: str, port: int, log_level: str) -> uvicorn.Config:
    """uvicorn's defaults (its default WebSocket implementation), without deflate or access log."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ws_per_message_deflate=False,
        lifespan="on",
        access_log=False,
        log_level=log_level,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.baselines.naive",
        description="The naive baseline quote server: one awaited send per client per tick.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--instruments-file", type=Path, required=True, metavar="CSV")
    parser.add_argument("--tick-rate", type=float, default=20000.0, help="calm ticks per second")
    parser.add_argument("--step-ms", type=float, default=5.0, help="generator step")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.tick_rate) and args.tick_rate >= 0):
        parser.error(f"--tick-rate must be finite and >= 0, was {args.tick_rate}")
    if not (math.isfinite(args.step_ms) and args.step_ms > 0):
        parser.error(f"--step-ms must be finite and > 0, was {args.step_ms}")
    try:
        instruments = load_instruments(args.instruments_file)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        parser.error(f"--instruments-file: {e}")
    app = create_app(instruments, tick_rate=args.tick_rate, step_ms=args.step_ms, seed=args.seed)
    config = uvicorn_config(app, host=args.host, port=args.port, log_level=args.log_level)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
