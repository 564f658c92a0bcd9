"""The open-loop sender against a scripted HTTP server on loopback.

The server answers by the request's idempotency key: a first sight is
``202`` with an ``order_id``, a repeat is a replay; key 3 is refused with a
problem. Answers are written in two pieces, the head split mid-line, so
the client's parser must join them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from load_tests.ordermix import build_schedule
from load_tests.orderstorm import StormConfig, run_storm

ACCOUNTS = ("DEMO-0001", "DEMO-0002")


def answer(status: int, body: bytes, *, replayed: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"{'Idempotent-Replayed: true' + chr(13) + chr(10) if replayed else ''}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


class ScriptedApi:
    def __init__(self) -> None:
        self.seen: set[bytes] = set()
        self.requests = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                fields = dict(
                    line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line
                )
                await reader.readexactly(int(fields[b"content-length"]))
                self.requests += 1
                key = fields[b"idempotency-key"]
                if key.endswith(b"-3"):
                    data = answer(422, b'{"code":"insufficient_buying_power","status":422}')
                elif key in self.seen:
                    data = answer(202, b'{"order_id":"ord_x"}', replayed=True)
                else:
                    self.seen.add(key)
                    data = answer(202, b'{"order_id":"ord_%s"}' % key.split(b"-")[-1])
                writer.write(data[:20])
                await writer.drain()
                writer.write(data[20:])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, ScriptedApi]]:
    scripted = ScriptedApi()
    server = await asyncio.start_server(scripted.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", scripted


async def test_every_request_is_answered_and_counted_by_its_outcome(api):
    url, scripted = api
    schedule = build_schedule(200.0, 1.0, duplicate_share=0.3, min_duplicate_age_s=0.05, seed=3)
    accepted: list[str] = []

    result = await run_storm(
        StormConfig(
            api_url=url,
            token="t",
            schedule=schedule,
            accounts=ACCOUNTS,
            key_prefix="run",
            connections=4,
            on_accepted=lambda order_id, _: accepted.append(order_id),
        )
    )

    outcomes = result.tally.outcomes
    duplicates_of_3 = sum(
        1 for k, d in zip(schedule.key_index, schedule.is_duplicate, strict=True) if d and k == 3
    )
    assert scripted.requests == len(schedule) == 200
    assert outcomes["refused"] == 1 + duplicates_of_3
    assert outcomes["accepted"] == schedule.fresh - 1
    assert outcomes["replayed"] == sum(schedule.is_duplicate) - duplicates_of_3
    assert result.tally.codes == {"insufficient_buying_power": 1 + duplicates_of_3}
    assert len(accepted) == outcomes["accepted"]
    assert result.latency.count == 200


async def test_an_unreachable_api_is_an_os_error():
    schedule = build_schedule(10.0, 0.5)

    with pytest.raises(ConnectionRefusedError):
        await run_storm(
            StormConfig(
                api_url="http://127.0.0.1:1",
                token="t",
                schedule=schedule,
                accounts=ACCOUNTS,
                key_prefix="run",
                connections=1,
            )
        )


async def test_a_url_that_is_not_http_is_refused():
    with pytest.raises(ValueError, match="must be http://host:port"):
        await run_storm(
            StormConfig(
                api_url="https://example.invalid",
                token="t",
                schedule=build_schedule(10.0, 0.5),
                accounts=ACCOUNTS,
                key_prefix="run",
            )
        )
