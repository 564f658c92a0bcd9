"""What drives the market during a run, and how a spike is started.

- ``none``: the deployment makes its own ticks (its simulator, or a feed the
  operator runs); a spike cannot be started.
- ``admin``: the deployment's simulator; a spike is ``POST /admin/spike``
  with a token carrying the ``admin`` scope.
- ``kafka``: this tool produces the ticks to the ``md.ticks`` topic itself,
  in its own process, at ``--tick-rate`` ticks per second (a random walk per
  symbol, keyed by symbol, in the documented record format); a spike
  multiplies the rate and the volatility for its duration.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from load_tests.tokens import mint_token

if TYPE_CHECKING:
    from load_tests.run import RunConfig

__all__ = ["Driver", "make_driver"]


class Driver(Protocol):
    """Starts the load, starts a spike, stops."""

    async def start(self, t0: float) -> None: ...

    async def spike(
        self, duration_s: float, rate_multiplier: float, vol_multiplier: float
    ) -> None: ...

    async def stop(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class NoDriver:
    """The deployment makes its own ticks."""

    async def start(self, t0: float) -> None:
        """Nothing to start."""

    async def spike(self, duration_s: float, rate_multiplier: float, vol_multiplier: float) -> None:
        """A spike needs the admin or Kafka driver."""
        raise RuntimeError("a spike needs --driver admin or --driver kafka")

    async def stop(self) -> None:
        """Nothing to stop."""

    def describe(self) -> dict[str, Any]:
        return {"driver": "none"}


class AdminDriver:
    """Spikes through the simulator's ``POST /admin/spike``."""

    def __init__(self, http_url: str, token: str | None) -> None:
        self._url = f"{http_url}/admin/spike"
        self._token = token
        self.response: dict[str, Any] | None = None
        self.error: str | None = None

    async def start(self, t0: float) -> None:
        """The simulator runs already."""

    async def spike(self, duration_s: float, rate_multiplier: float, vol_multiplier: float) -> None:
        body = {
            "rate_multiplier": rate_multiplier,
            "vol_multiplier": vol_multiplier,
            "duration_s": duration_s,
        }
        try:
            self.response = await asyncio.to_thread(self._post, body)
        except (OSError, RuntimeError) as e:
            # An overloaded server may not answer in time; the run goes on
            # and the report says the spike request failed.
            self.error = str(e)

    def _post(self, body: dict[str, float]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(  # noqa: S310  # the deployment under test
            self._url, data=orjson.dumps(body), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                answer: dict[str, Any] = orjson.loads(response.read())
                return answer
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"POST {self._url} failed: {e.code} {e.read()[:200]!r}") from e

    async def stop(self) -> None:
        """Nothing to stop."""

    def describe(self) -> dict[str, Any]:
        return {"driver": "admin", "spike": self.response, "error": self.error}


class KafkaDriver:
    """Produces ticks to Kafka from a child process; see the module docstring."""

    def __init__(self, bootstrap: str, topic: str, symbols: Sequence[str], rate: float) -> None:
        context = mp.get_context("spawn")
        self._bootstrap = bootstrap
        self._topic = topic
        self._symbols = list(symbols)
        self._rate = rate
        self._multiplier: Synchronized[float] = context.Value("d", 1.0)
        self._vol: Synchronized[float] = context.Value("d", 1.0)
        self._produced: Synchronized[int] = context.Value("q", 0)
        self._stop = context.Event()
        self._context = context
        self._process: BaseProcess | None = None
        self._spike_task: asyncio.Task[None] | None = None

    async def start(self, t0: float) -> None:
        self._process = self._context.Process(
            target=_produce_main,
            args=(
                self._bootstrap,
                self._topic,
                self._symbols,
                self._rate,
                self._multiplier,
                self._vol,
                self._produced,
                self._stop,
            ),
            name="tickgate-load-kafka",
            daemon=True,
        )
        self._process.start()

    async def spike(self, duration_s: float, rate_multiplier: float, vol_multiplier: float) -> None:
        self._multiplier.value = rate_multiplier
        self._vol.value = vol_multiplier

        async def calm_down() -> None:
            await asyncio.sleep(duration_s)
            self._multiplier.value = 1.0
            self._vol.value = 1.0

        self._spike_task = asyncio.create_task(calm_down())

    async def stop(self) -> None:
        if self._spike_task is not None:
            self._spike_task.cancel()
        self._stop.set()
        if self._process is not None:
            await asyncio.to_thread(self._process.join, 10.0)
            if self._process.is_alive():
                self._process.kill()

    def describe(self) -> dict[str, Any]:
        return {
            "driver": "kafka",
            "topic": self._topic,
            "tick_rate": self._rate,
            "produced": self._produced.value,
        }


def _produce_main(
    bootstrap: str,
    topic: str,
    symbols: list[str],
    rate: float,
    multiplier: Synchronized[float],
    vol: Synchronized[float],
    produced: Synchronized[int],
    stop: Any,
) -> None:
    asyncio.run(_produce(bootstrap, topic, symbols, rate, multiplier, vol, produced, stop))


async def _produce(
    bootstrap: str,
    topic: str,
    symbols: list[str],
    rate: float,
    multiplier: Synchronized[float],
    vol: Synchronized[float],
    produced: Synchronized[int],
    stop: Any,
) -> None:
    from aiokafka import AIOKafkaProducer  # only this driver needs Kafka

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    rng = random.Random(7)
    mids = {s: 100.0 for s in symbols}
    keys = {s: s.encode() for s in symbols}
    seqs = dict.fromkeys(symbols, 0)
    step_s = 0.005
    owed = 0.0
    due = time.monotonic()
    try:
        while not stop.is_set():
            due += step_s
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            owed += rate * multiplier.value * step_s
            count, owed = int(owed), owed - int(owed)
            sigma = 0.0005 * vol.value
            ts = time.time_ns()
            for symbol in rng.choices(symbols, k=count):
                mid = mids[symbol] * math.exp(rng.gauss(0.0, sigma))
                mids[symbol] = mid
                seqs[symbol] += 1
                value = orjson.dumps(
                    {
                        "symbol": symbol,
                        "ts_event": ts,
                        "bid": round(mid * 0.9999, 4),
                        "ask": round(mid * 1.0001, 4),
                        "last": round(mid, 4),
                        "size": float(rng.randint(1, 10)),
                        "seq": seqs[symbol],
                    }
                )
                await producer.send(topic, value, key=keys[symbol])
            produced.value += count
    finally:
        await producer.stop()


def make_driver(config: RunConfig, http_url: str, symbols: Sequence[str]) -> Driver:
    """The driver ``config.driver`` names."""
    if config.driver == "admin":
        token = None
        if config.jwt_secret is not None:
            token = mint_token(
                config.jwt_secret,
                subject="tickgate-load",
                accounts=[],
                scope="admin",
                issuer=config.issuer,
            )
        return AdminDriver(http_url, token)
    if config.driver == "kafka":
        if config.kafka_bootstrap is None:
            raise ValueError("--driver kafka needs --kafka-bootstrap")
        return KafkaDriver(config.kafka_bootstrap, config.kafka_topic, symbols, config.tick_rate)
    return NoDriver()
