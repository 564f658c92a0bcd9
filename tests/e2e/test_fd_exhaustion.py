"""File-descriptor exhaustion against a real ``tickgate run`` with a low open-file limit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import orjson
import pytest

from tests.builders import TEST_SECRET, make_token
from tests.harness import client, http, poll_until
from tests.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SHED_LINE = "closed the oldest incomplete connection"


def limit_open_files(soft: int, hard: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return apply


@contextlib.contextmanager
def tickgate_run(tmp_path: Path, port: int, soft: int, hard: int) -> Iterator[Path]:
    """``tickgate run`` with RLIMIT_NOFILE (soft, hard); yields its log file."""
    log = tmp_path / "tickgate.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TICKGATE_")},
        "TICKGATE_DATA_DIR": str(tmp_path),
        "TICKGATE_AUTH_JWT_SECRET": TEST_SECRET,
        "TICKGATE_PORTFOLIO_DEMO_ACCOUNTS": "20",
        # Only the file-descriptor budget may close the idle connections here.
        "TICKGATE_SERVER_HEADER_TIMEOUT_S": "300",
    }
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=limit_open_files(soft, hard),  # the point of the test
        )
        try:
            yield log
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def healthy(port: int) -> bool:
    try:
        status, _ = await http("GET", f"http://127.0.0.1:{port}/healthz")
    except OSError:
        return False
    return status == 200


@contextlib.asynccontextmanager
async def idle_connections(
    port: int, count: int
) -> AsyncIterator[list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]:
    """``count`` raw TCP connections that never send a byte."""
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(count):
            opened.append(await asyncio.open_connection("127.0.0.1", port))  # noqa: PERF401  # one at a time
        yield opened
    finally:
        for _, writer in opened:
            writer.close()


async def watch_eof(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError):
        await reader.read()


async def test_idle_connections_past_the_open_file_limit_never_lock_out_clients(tmp_path):
    # 256 descriptors: capacity 256 - 64 reserved = 192 connections; 400 idle
    # connections would exhaust them twice over.
    port = free_port()
    token = make_token(accounts=["DEMO-0001"])
    with tickgate_run(tmp_path, port, soft=256, hard=256) as log:
        await poll_until(lambda: healthy(port), what="tickgate to be healthy", timeout_s=60)
        async with client(f"ws://127.0.0.1:{port}/ws?token={token}") as established:
            await established.until(lambda m: m["type"] == "authenticated")
            async with idle_connections(port, 400) as idle:
                watchers = [asyncio.ensure_future(watch_eof(r)) for r, _ in idle]
                status, body = await http("GET", f"http://127.0.0.1:{port}/healthz")
                async with client(f"ws://127.0.0.1:{port}/ws?token={token}") as newcomer:
                    hello = await newcomer.until(lambda m: m["type"] == "authenticated")
                pong = await established.request({"op": "ping", "id": 1})
                await poll_until(
                    lambda: watchers[0].done(), what="the oldest idle connection to be shed"
                )
                _, metrics = await http("GET", f"http://127.0.0.1:{port}/metrics")
                newest_is_open = not watchers[-1].done()
                for watcher in watchers:
                    watcher.cancel()

    text = log.read_text()
    shed = next(
        float(line.split()[-1])
        for line in metrics.decode().splitlines()
        if line.startswith('tickgate_connections_closed_total{reason="shed"}')
    )
    assert status == 200
    assert orjson.loads(body)["status"] == "ok"
    assert hello["sub"] == "trader-1"
    assert pong["type"] == "pong"
    assert newest_is_open
    assert shed >= 400 - 192
    # Logged, but once per interval, not once per connection.
    assert 1 <= text.count(SHED_LINE) <= 3
    assert "Traceback" not in text


async def test_the_soft_open_file_limit_is_raised_to_the_hard_one_at_start(tmp_path):
    port = free_port()
    with tickgate_run(tmp_path, port, soft=256, hard=1024) as log:
        await poll_until(lambda: healthy(port), what="tickgate to be healthy", timeout_s=60)

    text = log.read_text()
    assert "raised the open-file limit from 256 to 1024" in text
    assert "accepting up to 960 connections (open-file limit 1024 minus 64 reserved)" in text
