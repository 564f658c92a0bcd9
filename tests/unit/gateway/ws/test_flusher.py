"""Flusher: touched subscribers flushed a chunk per loop step, each once, others running between."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gateway.ws.flusher import Flusher
from gateway.ws.outbox import Outbox


class LoggingSubscriber:
    def __init__(self, name: str, log: list[str], done: asyncio.Event | None = None) -> None:
        self.outbox = Outbox()
        self.name = name
        self._log = log
        self._done = done

    def flush(self) -> None:
        self._log.append(self.name)
        if self._done is not None:
            self._done.set()


def call_soon(callback: Callable[[], None]) -> None:
    asyncio.get_running_loop().call_soon(callback)


def fleet(n: int, log: list[str]) -> list[LoggingSubscriber]:
    return [LoggingSubscriber(f"s{i}", log) for i in range(n)]


def test_up_to_a_chunk_is_flushed_at_once():
    log: list[str] = []
    flusher = Flusher(call_soon, chunk=4)

    flusher.flush(fleet(4, log))

    assert log == ["s0", "s1", "s2", "s3"]
    assert flusher.pending == 0


async def test_the_rest_is_flushed_a_chunk_per_loop_step_with_other_callbacks_between():
    log: list[str] = []
    flusher = Flusher(call_soon, chunk=2)
    done = asyncio.Event()
    subscribers = [*fleet(5, log), LoggingSubscriber("s5", log, done)]

    flusher.flush(subscribers)
    flushed_at_once = list(log)
    asyncio.get_running_loop().call_soon(log.append, "io")  # what the loop runs meanwhile
    await asyncio.wait_for(done.wait(), timeout=5)

    assert flushed_at_once == ["s0", "s1"]
    assert log == ["s0", "s1", "s2", "s3", "io", "s4", "s5"]
    assert flusher.pending == 0


async def test_a_subscriber_touched_again_while_queued_is_flushed_once():
    log: list[str] = []
    flusher = Flusher(call_soon, chunk=1)
    done = asyncio.Event()
    a, b = fleet(2, log)
    c = LoggingSubscriber("s2", log, done)

    flusher.flush([a, b, c])
    flusher.flush([b, c])  # the next batch touches them before their turn
    await asyncio.wait_for(done.wait(), timeout=5)

    assert log == ["s0", "s1", "s2"]


def test_the_chunk_must_be_positive():
    with pytest.raises(ValueError, match="chunk must be positive, was 0"):
        Flusher(call_soon, chunk=0)
