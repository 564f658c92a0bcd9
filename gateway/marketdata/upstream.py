"""The upstream source: a generic JSON vendor feed over WebSocket.

- After each connect it sends ``subscribe_template`` with ``$symbols``
  replaced by the JSON array of symbols (``upstream.symbols``, or every
  non-option instrument).
- Each vendor message is a JSON object or an array of objects. Objects that
  carry the symbol field are ticks, mapped through the ``field_*`` settings;
  anything else (acks, vendor heartbeats) is ignored.
- Ticks are batched for up to ``batch_window_ms`` or ``batch_max_ticks``.
- Where ticks carry the feed's sequence number, each must be one more than
  the previous on the connection; a jump is counted as a gap and, with
  ``resubscribe_on_gap``, answered by resubscribing, which makes vendors
  resend their snapshot.
- A dropped connection is retried with exponential backoff and jitter, and
  resubscribed; meanwhile the source reports itself down so prices go stale.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from string import Template

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from gateway.backoff import Backoff
from gateway.clock import Clock
from gateway.marketdata.codec import DecodeError, TickDecoder, TickFields, TickRows
from gateway.marketdata.source import Rejection, SourceBatch
from gateway.metrics import Metrics
from gateway.settings import UpstreamSettings
from pricing.instruments import InstrumentMaster, InstrumentType

__all__ = ["UpstreamSource"]

logger = logging.getLogger(__name__)

_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class UpstreamSource:
    """Consume a vendor WebSocket feed; see the module docstring."""

    name = "upstream"

    def __init__(
        self,
        settings: UpstreamSettings,
        master: InstrumentMaster,
        *,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        assert settings.url is not None  # Settings refuses source=upstream without it
        self._settings = settings
        self._url = settings.url
        fields = TickFields(
            symbol=settings.field_symbol,
            bid=settings.field_bid,
            ask=settings.field_ask,
            last=settings.field_last,
            size=settings.field_size,
            ts_event=settings.field_ts_event,
            seq=settings.field_seq,
            ts_unit=settings.ts_unit,
        )
        self._decoder = TickDecoder(master.symbol_index, fields)
        symbols = settings.symbols or tuple(
            i.symbol for i in master if i.type is not InstrumentType.OPTION
        )
        self._subscribe = Template(settings.subscribe_template).safe_substitute(
            symbols=orjson.dumps(list(symbols)).decode()
        )
        self._clock = clock
        self._metrics = metrics
        self._is_up = False
        self._expected_seq: int | None = None
        self._has_gap = False
        self.connections = 0

    @property
    def is_up(self) -> bool:
        """Whether the feed connection is open and subscribed."""
        return self._is_up

    async def start(self) -> None:
        """The connection is made by ``batches``."""

    async def stop(self) -> None:
        """Nothing to flush; the connection closes with ``batches``."""
        self._is_up = False

    async def batches(self) -> AsyncIterator[SourceBatch]:
        """Yield batches; reconnect with backoff and resubscribe whenever the feed drops."""
        s = self._settings
        backoff = Backoff(s.reconnect_initial_ms / 1000, s.reconnect_max_ms / 1000)
        while True:
            try:
                async with connect(
                    self._url,
                    open_timeout=s.open_timeout_s,
                    max_size=_MAX_MESSAGE_BYTES,
                    compression=None,
                ) as ws:
                    await ws.send(self._subscribe)
                    self.connections += 1
                    self._expected_seq = None
                    self._set_up(True)
                    async for batch in self._read(ws):
                        backoff.reset()
                        yield batch
            except (OSError, TimeoutError, WebSocketException) as e:
                reason = str(e) or type(e).__name__
            else:
                reason = "closed by the vendor"
            self._set_up(False)
            delay_s = backoff.next_delay_s()
            logger.warning(
                "upstream %s lost (%s); reconnecting in %.2f s",
                self._url,
                reason,
                delay_s,
                extra={"event": "feed.lost"},
            )
            await asyncio.sleep(delay_s)

    async def acknowledge(self, batch: SourceBatch, rejected: Sequence[Rejection]) -> None:
        """No dead-letter topic here: refusals are counted by the pipeline and logged."""
        if rejected:
            reasons = sorted({r.reason.label for r in rejected})
            logger.warning(
                "upstream sent %d refused ticks (%s)",
                len(rejected),
                ", ".join(reasons),
                extra={"event": "feed.ticks_refused"},
            )

    async def _read(self, ws: ClientConnection) -> AsyncIterator[SourceBatch]:
        s = self._settings
        loop = asyncio.get_running_loop()
        rows = TickRows()
        while True:
            self._add(await ws.recv(decode=False), rows)
            deadline = loop.time() + s.batch_window_ms / 1000
            while len(rows) < s.batch_max_ticks:
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await ws.recv(decode=False)
                except TimeoutError:
                    break
                self._add(message, rows)
            if self._has_gap and s.resubscribe_on_gap:
                self._has_gap = False
                # Vendors may renumber after a subscribe: start expecting afresh.
                self._expected_seq = None
                await ws.send(self._subscribe)
            if rows:
                yield SourceBatch(rows.to_batch())

    def _add(self, message: bytes, rows: TickRows) -> None:
        ts_recv = self._clock.now_ns()
        try:
            parsed = self._decoder.parse(message)
        except DecodeError as e:
            self._reject(e)
            return
        for obj in parsed if isinstance(parsed, list) else [parsed]:
            if not self._decoder.is_tick(obj):
                continue
            self._check_seq(self._decoder.seq_of(obj))
            try:
                rows.append(self._decoder.decode(obj, ts_recv))
            except DecodeError as e:
                self._reject(e)

    def _check_seq(self, seq: int | None) -> None:
        if seq is None:
            return
        expected = self._expected_seq
        if expected is not None and seq != expected:
            self._metrics.counters.feed_gaps += 1
            self._has_gap = True
            logger.warning(
                "upstream sequence gap: expected %d, got %d",
                expected,
                seq,
                extra={"event": "feed.sequence_gap"},
            )
        self._expected_seq = seq + 1

    def _reject(self, error: DecodeError) -> None:
        self._metrics.counters.records_refused[error.reason] += 1
        logger.warning(
            "upstream sent an unusable message: %s", error, extra={"event": "feed.message_unusable"}
        )

    def _set_up(self, is_up: bool) -> None:
        if is_up != self._is_up:
            self._is_up = is_up
            if is_up:
                self._metrics.counters.feed_connects += 1
                logger.info(
                    "upstream %s connected and subscribed", self._url, extra={"event": "feed.up"}
                )
