"""The Kafka command bus: commands to ``orders.submitted``, keyed by account.

- Value: the command's wire form (``orders.commands``, schema version 1) as
  JSON; key: the account id, so one account's commands (an order, then its
  cancel) stay in order on one partition; headers ``v``, ``type`` and
  ``trace_id`` let consumers route without parsing.
- ``acks=all``: ``submit`` returns once every in-sync replica has the
  record, which is what the API's 202 promises.
- ``enable_idempotence`` is a setting, off by default (the test broker,
  Tansu, does not answer InitProducerId). Duplicates are harmless: the
  ledger dedupes on the transfer id.
- Every submit is bounded by ``send_timeout_ms``, connecting included;
  failures and timeouts become ``BusUnavailable``. A record whose send timed
  out may still reach the broker later, so a 503 promises nothing either
  way; the retry re-sends the identical command (same transfer id).
- ``start`` does not fail when the broker is down: the producer connects on
  the first submit, and again after a failed start.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from orders.commands import Command, command_to_wire
from orders.errors import BusUnavailable
from orders.settings import KafkaBusSettings

__all__ = ["KafkaCommandBus", "encode_command"]

logger = logging.getLogger(__name__)


def encode_command(command: Command) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Return the key, value and headers of the record that carries ``command``."""
    value = orjson.dumps(command_to_wire(command))
    headers = [
        ("v", b"1"),
        ("type", command.type.value.encode()),
        ("trace_id", command.trace_id.encode()),
    ]
    return command.account_id.encode(), value, headers


class KafkaCommandBus:
    """A ``CommandBus`` over an aiokafka producer; see the module docstring."""

    def __init__(self, settings: KafkaBusSettings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._connecting = asyncio.Lock()
        self._is_up = False

    @property
    def is_up(self) -> bool:
        """Whether the last connect or submit reached the broker (False before the first)."""
        return self._is_up

    async def start(self) -> None:
        """Try to connect now; a down broker is no error (``submit`` will retry)."""
        try:
            async with asyncio.timeout(self._settings.send_timeout_ms / 1000):
                await self._connected()
        except (BusUnavailable, TimeoutError) as e:
            logger.warning(
                "kafka %s not reachable at start: %s",
                self._settings.bootstrap,
                e,
                extra={"event": "orders.bus_unreachable"},
            )
            return
        self._is_up = True

    async def stop(self) -> None:
        """Flush (bounded by the send timeout) and close the producer."""
        producer, self._producer = self._producer, None
        self._is_up = False
        if producer is None:
            return
        try:
            async with asyncio.timeout(self._settings.send_timeout_ms / 1000):
                await producer.stop()
        except (KafkaError, TimeoutError) as e:
            logger.warning(
                "closing the kafka producer failed: %s",
                e,
                extra={"event": "orders.bus_close_failed"},
            )

    async def __aenter__(self) -> KafkaCommandBus:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def submit(self, command: Command) -> None:
        """Return once the broker acknowledged ``command`` (acks=all); else raise."""
        key, value, headers = encode_command(command)
        try:
            async with asyncio.timeout(self._settings.send_timeout_ms / 1000):
                producer = await self._connected()
                await producer.send_and_wait(
                    self._settings.topic, value=value, key=key, headers=headers
                )
        except TimeoutError as e:
            self._is_up = False
            raise BusUnavailable(
                f"kafka did not acknowledge within {self._settings.send_timeout_ms} ms"
            ) from e
        except KafkaError as e:
            self._is_up = False
            raise BusUnavailable(f"kafka refused the command: {e}") from e
        except BusUnavailable:
            self._is_up = False
            raise
        self._is_up = True

    async def _connected(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._connecting:
            if self._producer is not None:
                return self._producer
            s = self._settings
            producer = AIOKafkaProducer(
                bootstrap_servers=s.bootstrap,
                client_id=s.client_id,
                acks="all",
                enable_idempotence=s.enable_idempotence,
                request_timeout_ms=s.request_timeout_ms,
                linger_ms=s.linger_ms,
            )
            try:
                await producer.start()
            except BaseException as e:
                # A half-started producer holds connections: close it before giving up.
                await producer.stop()
                if isinstance(e, KafkaError | OSError):
                    raise BusUnavailable(f"kafka {s.bootstrap} unreachable: {e}") from e
                raise
            self._producer = producer
            return producer
