"""The client fleet: WebSocket clients spread over worker processes.

The parent builds one ``ClientSpec`` per client (what it subscribes to, its
token, when it connects) and deals them out to ``workers`` processes. Each
worker runs its clients on one event loop (uvloop when installed), and
every ``interval_s`` sends the parent a ``Sample`` of what they saw (see
``stats``), aligned on the run's start time so the parent can add up the
samples of an interval across workers.

A client connects at its ramp time, subscribes, checks every message
(``StreamChecker``), and records latencies. When the connection drops it
counts the close code and reconnects with exponential backoff and full
jitter, resubscribing with its epoch and last seqs so the server can replay
what it missed. A *slow* client stops reading after it subscribes, to
exercise the server's slow-consumer handling; it does not come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import queue
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

import orjson

from load_tests.checker import StreamChecker, StreamCounts
from load_tests.stats import Histogram, Sample
from load_tests.wsclient import HandshakeError, WebSocketProtocol, connect

__all__ = ["ClientSpec", "Fleet", "WorkerConfig", "backoff_delay_s"]

_SLOW_RECEIVE_BUFFER = 4096
_SLOW_READ_PAUSE_S = 1.0
"""A slow client reads at most its 4 KiB receive buffer a second."""


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """One client: its channel and keys, headers, ramp offset and behaviour."""

    index: int
    channel: str
    keys: tuple[str, ...]
    start_at_s: float
    headers: tuple[tuple[str, str], ...] = ()
    slow: bool = False


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What one worker process runs (picklable)."""

    worker: int
    url: str
    specs: tuple[ClientSpec, ...]
    t0: float
    interval_s: float
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 10.0
    connect_timeout_s: float = 10.0
    seed: int = 0


def backoff_delay_s(attempt: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(max, initial x 2^attempt)]."""
    ceiling = min(max_s, initial_s * (2.0 ** min(attempt, 30)))
    return rng.uniform(0.0, ceiling)


@dataclass(slots=True)
class _Recorder:
    """A worker's measurements of the current interval."""

    counts: StreamCounts = field(default_factory=StreamCounts)
    quotes: Histogram = field(default_factory=Histogram)
    portfolio: Histogram = field(default_factory=Histogram)
    closes: Counter[str] = field(default_factory=Counter)
    slow_closes: Counter[str] = field(default_factory=Counter)
    connect_errors: Counter[str] = field(default_factory=Counter)
    frames: int = 0
    payload_bytes: int = 0
    connected: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    first_connects: int = 0
    last_first_connect_s: float = 0.0
    first_attempt_s: float | None = None
    max_connect_s: float = 0.0

    def take(self, worker: int, index: int, t_end: float, cpu_s: float) -> Sample:
        sample = Sample(
            worker=worker,
            index=index,
            t_end=t_end,
            connected=self.connected,
            counts=self.counts.take(),
            frames=self.frames,
            payload_bytes=self.payload_bytes,
            closes=self.closes.copy(),
            slow_closes=self.slow_closes.copy(),
            connect_errors=self.connect_errors.copy(),
            reconnects=self.reconnects,
            connect_failures=self.connect_failures,
            cpu_s=cpu_s,
            quotes_latency=self.quotes.encode(),
            portfolio_latency=self.portfolio.encode(),
            first_connects=self.first_connects,
            last_first_connect_s=self.last_first_connect_s,
            first_attempt_s=self.first_attempt_s,
            max_connect_s=self.max_connect_s,
        )
        self.quotes.reset()
        self.portfolio.reset()
        self.closes.clear()
        self.slow_closes.clear()
        self.connect_errors.clear()
        self.frames = self.payload_bytes = self.reconnects = self.connect_failures = 0
        self.first_connects = 0
        return sample


class _Client:
    def __init__(self, spec: ClientSpec, config: WorkerConfig, recorder: _Recorder) -> None:
        self.spec = spec
        self._config = config
        self._recorder = recorder
        self._checker = StreamChecker(recorder.counts)
        self._rng = random.Random(config.seed * 1_000_003 + spec.index)

    async def run(self, stopping: asyncio.Event) -> None:
        config, recorder = self._config, self._recorder
        attempt = 0
        connected_before = False
        first_attempt = time.time() - config.t0
        if recorder.first_attempt_s is None or first_attempt < recorder.first_attempt_s:
            recorder.first_attempt_s = first_attempt
        while not stopping.is_set():
            try:
                protocol = await connect(
                    config.url,
                    self._on_message,
                    headers=dict(self.spec.headers),
                    timeout_s=config.connect_timeout_s,
                    receive_buffer=_SLOW_RECEIVE_BUFFER if self.spec.slow else None,
                    read_pause_s=_SLOW_READ_PAUSE_S if self.spec.slow else 0.0,
                )
            except (OSError, HandshakeError, TimeoutError) as e:
                recorder.connect_failures += 1
                recorder.connect_errors[_error_kind(e)] += 1
                await _pause(stopping, self._delay(attempt))
                attempt += 1
                continue
            if connected_before:
                recorder.reconnects += 1
            else:
                now = time.time() - config.t0
                recorder.first_connects += 1
                recorder.last_first_connect_s = max(recorder.last_first_connect_s, now)
                recorder.max_connect_s = max(recorder.max_connect_s, now - first_attempt)
            connected_before = True
            attempt = 0
            recorder.connected += 1
            try:
                code = await self._session(protocol, stopping)
            finally:
                recorder.connected -= 1
            if code is None:  # we stopped
                return
            if self.spec.slow:  # closed as expected; it does not come back
                recorder.slow_closes[str(code)] += 1
                return
            recorder.closes[str(code)] += 1
            await _pause(stopping, self._delay(attempt))
            attempt += 1

    async def _session(self, protocol: WebSocketProtocol, stopping: asyncio.Event) -> int | None:
        protocol.send_text(orjson.dumps(self._subscribe()))
        stop = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait((protocol.closed, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if protocol.closed.done():
            return protocol.closed.result()
        protocol.close(1000)
        try:
            async with asyncio.timeout(2.0):
                await protocol.closed
        except TimeoutError:
            protocol.abort()
        return None

    def _subscribe(self) -> dict[str, Any]:
        spec = self.spec
        names = "symbols" if spec.channel == "quotes" else "accounts"
        message: dict[str, Any] = {"op": "subscribe", "channel": spec.channel, names: spec.keys}
        known = [self._checker.keys.get((spec.channel, k)) for k in spec.keys]
        if known and all(s is not None and s.last_seq is not None for s in known):
            epochs = {s.epoch for s in known if s is not None}
            if len(epochs) == 1:  # ask the server to replay what was missed
                message["epoch"] = epochs.pop()
                message["last_seq"] = {
                    k: s.last_seq for k, s in zip(spec.keys, known, strict=True) if s is not None
                }
        return message

    def _on_message(self, payload: memoryview | bytes, recv_ns: int) -> None:
        recorder = self._recorder
        recorder.frames += 1
        recorder.payload_bytes += len(payload)
        counts = recorder.counts
        try:
            messages = orjson.loads(payload)
        except orjson.JSONDecodeError:
            counts.errors["bad_frame_json"] += 1
            return
        if not isinstance(messages, list):
            counts.errors["frame_not_an_array"] += 1
            return
        checker = self._checker
        for message in messages:
            if not isinstance(message, dict):
                counts.errors["message_not_an_object"] += 1
                continue
            latency = checker.on_message(message, recv_ns)
            if latency is not None and not self.spec.slow:  # slow by design: not measured
                if message.get("channel") == "quotes":
                    self._recorder.quotes.record_ns(latency)
                else:
                    self._recorder.portfolio.record_ns(latency)
            elif message.get("type") == "unsubscribed":
                checker.forget(str(message.get("channel")), list(message.get("keys", ())))

    def _delay(self, attempt: int) -> float:
        config = self._config
        return backoff_delay_s(attempt, config.backoff_initial_s, config.backoff_max_s, self._rng)


def _error_kind(error: BaseException) -> str:
    # A short, stable label: the exception type, and the handshake's reason.
    if isinstance(error, HandshakeError):
        return f"handshake: {str(error)[:60]}"
    return type(error).__name__


async def _pause(stopping: asyncio.Event, delay_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay_s):
            await stopping.wait()


async def _work(config: WorkerConfig, samples: mp.Queue[Sample], stop: MpEvent) -> None:
    recorder = _Recorder()
    stopping = asyncio.Event()

    async def start(client: _Client) -> None:
        await _pause(stopping, max(0.0, config.t0 + client.spec.start_at_s - time.time()))
        if not stopping.is_set():
            await client.run(stopping)

    tasks = [asyncio.create_task(start(_Client(s, config, recorder))) for s in config.specs]
    index = 0
    cpu = time.process_time()
    while True:
        index += 1
        due = config.t0 + index * config.interval_s
        await asyncio.sleep(max(0.0, due - time.time()))
        last = stop.is_set()
        if last:
            stopping.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await asyncio.gather(*tasks, return_exceptions=True)
        now_cpu = time.process_time()
        sample = recorder.take(
            config.worker, -index if last else index, due - config.t0, now_cpu - cpu
        )
        cpu = now_cpu
        samples.put(sample)
        if last:
            return


def _worker_main(config: WorkerConfig, samples: mp.Queue[Sample], stop: MpEvent) -> None:
    try:
        import uvloop  # optional: the fleet is faster on it

        uvloop.run(_work(config, samples, stop))
    except ImportError:
        asyncio.run(_work(config, samples, stop))


class Fleet:
    """Worker processes running the clients; the parent polls their samples.

    A sample with a negative ``index`` is a worker's last (``-index`` is its
    interval); ``finished`` counts them.
    """

    def __init__(
        self,
        url: str,
        specs: Sequence[ClientSpec],
        *,
        workers: int,
        interval_s: float,
        seed: int = 0,
    ) -> None:
        self._url = url
        self._specs = list(specs)
        self._workers = max(1, min(workers, len(self._specs) or 1))
        self._interval_s = interval_s
        self._seed = seed
        context = mp.get_context("spawn")
        self._queue: mp.Queue[Sample] = context.Queue()
        self._stop = context.Event()
        self._context = context
        self._processes: list[BaseProcess] = []
        self.finished = 0

    @property
    def workers(self) -> int:
        """Worker processes."""
        return self._workers

    def start(self, t0: float) -> None:
        """Spawn the workers; clients connect from ``t0`` (wall clock) on."""
        for w in range(self._workers):
            config = WorkerConfig(
                worker=w,
                url=self._url,
                specs=tuple(self._specs[w :: self._workers]),
                t0=t0,
                interval_s=self._interval_s,
                seed=self._seed,
            )
            process = self._context.Process(
                target=_worker_main,
                args=(config, self._queue, self._stop),
                name=f"tickgate-load-{w}",
                daemon=True,
            )
            process.start()
            self._processes.append(process)

    def poll(self, timeout_s: float) -> list[Sample]:
        """Samples that arrived, waiting up to ``timeout_s`` for the first."""
        out: list[Sample] = []
        try:
            out.append(self._queue.get(timeout=timeout_s))
            while True:
                out.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        self.finished += sum(1 for s in out if s.index < 0)
        return out

    def stop(self) -> None:
        """Ask the workers to close their clients and send their last sample."""
        self._stop.set()

    def join(self, timeout_s: float = 10.0) -> None:
        """Wait for the workers to exit; kill those that do not."""
        deadline = time.monotonic() + timeout_s
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1.0)

    def alive(self) -> int:
        """Workers still running."""
        return sum(1 for p in self._processes if p.is_alive())
