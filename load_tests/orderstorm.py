"""An open-loop order storm against the order API: ``POST /v1/orders`` on a fixed schedule.

The sender holds ``connections`` keep-alive HTTP/1.1 connections (a small
client on ``asyncio.Protocol``: one request per connection at a time, no
pipelining; the answers need only their status line, two headers and, for
errors and acceptances, the JSON body). At each request's scheduled time
it goes out on an idle connection, or waits in a queue for the next one to
come free: a server that answers slowly makes the queue grow, and since
latency runs from the scheduled time, the wait is part of it.

Latency is the time from the scheduled send to the complete answer, on
this process's monotonic clock, into an HDR histogram. ``send_lag`` is how
late the sender put requests on the wire (scheduled to written): when it
grows the generator, not the server, is the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, cast
from urllib.parse import urlsplit

import orjson

from load_tests.ordermix import OrderTally, Outcome, Schedule, classify, order_body
from load_tests.result import Latency
from load_tests.stats import Histogram, latency_of

__all__ = ["StormConfig", "StormResult", "run_storm"]

_HEAD_END: Final = b"\r\n\r\n"
_REPLAYED: Final = b"\r\nidempotent-replayed: true"
_LENGTH: Final = b"\r\ncontent-length:"

# Called with (order_id, scheduled send time on the monotonic clock in ns) for each 202.
AcceptedHook = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class StormConfig:
    """One storm: where, with what token, which schedule, and how."""

    api_url: str
    token: str
    schedule: Schedule
    accounts: Sequence[str]
    key_prefix: str
    connections: int = 64
    timeout_s: float = 10.0
    on_accepted: AcceptedHook | None = None


@dataclass(slots=True)
class StormResult:
    """What a storm measured."""

    offered: int
    duration_s: float
    elapsed_s: float
    tally: OrderTally
    latency: Histogram
    send_lag: Histogram
    cpu_s: float
    first_error: str | None = None

    def figures(self) -> dict[str, object]:
        """The JSON form: rates over the scheduled duration, percentiles in ms."""
        latency = latency_of(self.latency)
        lag = latency_of(self.send_lag)
        outcomes = self.tally.outcomes
        return {
            "offered": self.offered,
            "offered_per_s": round(self.offered / self.duration_s, 1),
            "accepted_per_s": self.tally.per_s(Outcome.ACCEPTED, self.duration_s),
            "replayed_per_s": self.tally.per_s(Outcome.REPLAYED, self.duration_s),
            "answered": self.tally.answered,
            "outcomes": dict(outcomes),
            "codes": dict(self.tally.codes),
            "errors": self.tally.errors,
            "latency_ms": _latency_dict(latency),
            "send_lag_ms": _latency_dict(lag),
            "elapsed_s": round(self.elapsed_s, 3),
            "generator_cpu_pct": round(100 * self.cpu_s / self.elapsed_s, 1)
            if self.elapsed_s > 0
            else None,
            "first_error": self.first_error,
        }


def _latency_dict(latency: Latency) -> dict[str, float | int | None]:
    return {
        "count": latency.count,
        "p50": latency.p50,
        "p99": latency.p99,
        "p999": latency.p999,
        "max": latency.max,
    }


@dataclass(slots=True)
class _Request:
    slot: int
    scheduled_ns: int
    payload: bytes
    sent_ns: int = 0


@dataclass(slots=True)
class _State:
    config: StormConfig
    start_ns: int
    tally: OrderTally = field(default_factory=OrderTally)
    latency: Histogram = field(default_factory=Histogram)
    send_lag: Histogram = field(default_factory=Histogram)
    outstanding: int = 0
    last_answer_ns: int = 0
    first_error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def finish(self, request: _Request, outcome: str, code: str | None, now_ns: int) -> None:
        self.tally.add(outcome, code)
        if outcome != Outcome.FAILED:
            self.latency.record_ns(now_ns - request.scheduled_ns)
            self.last_answer_ns = now_ns
        self.outstanding -= 1
        if self.outstanding == 0:
            self.done.set()


class _Connection(asyncio.Protocol):
    """One keep-alive connection: sends a request, parses its answer, asks the pool for more."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head_end = -1
        self._body_length = 0
        self.request: _Request | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP connection's transport (uvloop's is not an asyncio.Transport subclass).
        self._transport = cast(asyncio.Transport, transport)

    def send(self, request: _Request) -> None:
        assert self._transport is not None
        assert self.request is None
        self.request = request
        now = time.monotonic_ns()
        request.sent_ns = now
        self._pool.state.send_lag.record_ns(now - request.scheduled_ns)
        self._transport.write(request.payload)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._head_end < 0:
            end = self._buffer.find(_HEAD_END)
            if end < 0:
                return
            self._head_end = end + 4
            head = bytes(self._buffer[:end]).lower()
            at = head.find(_LENGTH)
            if at < 0:
                # Every answer of the API carries a length; anything else is not understood.
                self._fail("an answer without content-length")
                return
            line_end = head.find(b"\r\n", at + 2)
            self._body_length = int(head[at + len(_LENGTH) : line_end if line_end > 0 else None])
            self._status = int(head[9:12])
            self._is_replayed = _REPLAYED in head
        end = self._head_end + self._body_length
        if len(self._buffer) < end:
            return
        body = bytes(self._buffer[self._head_end : end])
        del self._buffer[:end]
        self._head_end = -1
        request, self.request = self.request, None
        if request is None:
            self._fail("an answer nobody asked for")
            return
        self._pool.answered(self, request, self._status, self._is_replayed, body)

    def _fail(self, reason: str) -> None:
        self._pool.state.first_error = self._pool.state.first_error or reason
        self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self._pool.lost(self, exc)


class _Pool:
    """Connections, the idle ones, and the queue of requests waiting for one."""

    def __init__(self, state: _State, host: str, port: int) -> None:
        self.state = state
        self._host = host
        self._port = port
        self._idle: deque[_Connection] = deque()
        self._queue: deque[_Request] = deque()
        self._all: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def open(self, count: int) -> None:
        for _ in range(count):
            await self._connect()

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.state.config.timeout_s):
            _, connection = await loop.create_connection(
                lambda: _Connection(self), self._host, self._port
            )
        self._all.add(connection)
        self._give(connection)

    def submit(self, request: _Request) -> None:
        self.state.outstanding += 1
        if self._idle:
            self._idle.popleft().send(request)
        else:
            self._queue.append(request)

    def _give(self, connection: _Connection) -> None:
        if self._queue:
            connection.send(self._queue.popleft())
        else:
            self._idle.append(connection)

    def answered(
        self,
        connection: _Connection,
        request: _Request,
        status: int,
        is_replayed: bool,
        body: bytes,
    ) -> None:
        now = time.monotonic_ns()
        outcome = classify(status, is_replayed=is_replayed)
        code = None
        if status >= 400:
            code = _problem_code(body)
        elif outcome == Outcome.ACCEPTED and self.state.config.on_accepted is not None:
            order_id = orjson.loads(body).get("order_id")
            if isinstance(order_id, str):
                self.state.config.on_accepted(order_id, request.scheduled_ns)
        self.state.finish(request, outcome, code, now)
        self._give(connection)

    def lost(self, connection: _Connection, exc: Exception | None) -> None:
        self._all.discard(connection)
        with contextlib.suppress(ValueError):
            self._idle.remove(connection)
        if connection.request is not None:
            if exc is not None:
                self.state.first_error = self.state.first_error or repr(exc)
            self.state.finish(connection.request, Outcome.FAILED, None, time.monotonic_ns())
            connection.request = None
        if not self._closing:
            task = asyncio.get_running_loop().create_task(self._replace())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _replace(self) -> None:
        try:
            await self._connect()
        except (OSError, TimeoutError) as e:
            self.state.first_error = self.state.first_error or repr(e)

    def expire(self, now_ns: int) -> None:
        # A request waits at most the timeout in the queue (from its scheduled
        # time: it fails there) and at most the timeout on the wire (from its
        # send: the connection is aborted and replaced). Counting the wire's
        # from the send keeps the server's work on a request sent late, which
        # it answers, from being thrown away just before the answer.
        limit = int(self.state.config.timeout_s * 1e9)
        for connection in list(self._all):
            if connection.request is not None and now_ns - connection.request.sent_ns > limit:
                connection.abort()
        while self._queue and now_ns - self._queue[0].scheduled_ns > limit:
            self.state.finish(self._queue.popleft(), Outcome.FAILED, None, now_ns)

    def fail_queued(self, now_ns: int) -> None:
        while self._queue:
            self.state.finish(self._queue.popleft(), Outcome.FAILED, None, now_ns)

    async def close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        connections = list(self._all)
        for connection in connections:
            connection.abort()
        for connection in connections:
            await connection.closed


def _problem_code(body: bytes) -> str:
    try:
        problem = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "not_json"
    code = problem.get("code") if isinstance(problem, dict) else None
    return code if isinstance(code, str) else "no_code"


def _head(config: StormConfig, host: str) -> bytes:
    return (
        f"POST /v1/orders HTTP/1.1\r\nhost: {host}\r\n"
        f"authorization: Bearer {config.token}\r\ncontent-type: application/json\r\n"
    ).encode()


async def run_storm(config: StormConfig) -> StormResult:
    """Send the schedule's requests at their times; wait for the answers (or the timeout)."""
    parts = urlsplit(config.api_url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"the order API URL must be http://host:port, was {config.api_url!r}")
    port = parts.port or 80
    head = _head(config, parts.netloc)
    schedule = config.schedule
    key_prefix = config.key_prefix.encode()
    state = _State(config, start_ns=0)
    pool = _Pool(state, parts.hostname, port)
    cpu_start = time.process_time()
    try:
        await pool.open(config.connections)
        start = time.monotonic_ns() + 20_000_000  # a head start to reach the loop's first sleep
        state.start_ns = start
        count = len(schedule)
        send_at, keys = schedule.send_at_ns, schedule.key_index
        i = 0
        next_expiry = start
        while i < count:
            now = time.monotonic_ns()
            while i < count and start + send_at[i] <= now:
                key = keys[i]
                body = order_body(key, config.accounts)
                payload = b"%sidempotency-key: %s-%d\r\ncontent-length: %d\r\n\r\n%s" % (
                    head,
                    key_prefix,
                    key,
                    len(body),
                    body,
                )
                pool.submit(_Request(i, start + send_at[i], payload))
                i += 1
            if now >= next_expiry:
                pool.expire(now)
                next_expiry = now + 100_000_000
            if i < count:
                await asyncio.sleep(max(0, start + send_at[i] - time.monotonic_ns()) / 1e9)
        deadline = time.monotonic_ns() + int(config.timeout_s * 1e9)
        while state.outstanding and time.monotonic_ns() < deadline:
            state.done.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await state.done.wait()
            pool.expire(time.monotonic_ns())
        pool.fail_queued(time.monotonic_ns())
    finally:
        await pool.close()
    end = max(state.last_answer_ns, state.start_ns + (schedule.send_at_ns[-1] if count else 0))
    return StormResult(
        offered=len(schedule),
        duration_s=schedule.duration_s,
        elapsed_s=(end - state.start_ns) / 1e9,
        tally=state.tally,
        latency=state.latency,
        send_lag=state.send_lag,
        cpu_s=time.process_time() - cpu_start,
        first_error=state.first_error,
    )
