"""Graceful shutdown of a real ``tickgate run`` process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from gateway.ws import closecodes
from tests.builders import TEST_SECRET
from tests.harness import client, http, poll_until
from tests.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def _healthy(port: int) -> bool:
    try:
        status, _ = await http("GET", f"http://127.0.0.1:{port}/healthz")
    except OSError:  # not listening yet
        return False
    return status == 200


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_closes_clients_with_1001_and_exits_cleanly(tmp_path, signum):
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TICKGATE_")},
        "TICKGATE_DATA_DIR": str(tmp_path),
        "TICKGATE_AUTH_JWT_SECRET": TEST_SECRET,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "run",
        "--port",
        str(port),
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await poll_until(lambda: _healthy(port), what="tickgate to be healthy", timeout_s=30)
        async with client(f"ws://127.0.0.1:{port}/ws") as c:
            await c.request({"op": "subscribe", "channel": "quotes", "symbols": ["AAPL"], "id": 1})
            process.send_signal(signum)
            code, _ = await c.closed()
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    log = stderr.decode()
    assert code == closecodes.GOING_AWAY
    assert process.returncode == 0
    assert "tickgate stopped" in log
    assert TEST_SECRET not in log
