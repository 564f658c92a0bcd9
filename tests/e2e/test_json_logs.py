"""``TICKGATE_LOG_FORMAT=json``: a real ``tickgate run`` writes one JSON object per line."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import orjson
import pytest

from tests.builders import TEST_SECRET
from tests.harness import http, poll_until
from tests.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def _ready(port: int) -> bool:
    try:
        status, _ = await http("GET", f"http://127.0.0.1:{port}/readyz")
    except OSError:  # not listening yet
        return False
    return status == 200


async def test_every_line_is_one_json_object_with_an_event(tmp_path):
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TICKGATE_")},
        "TICKGATE_DATA_DIR": str(tmp_path),
        "TICKGATE_AUTH_JWT_SECRET": TEST_SECRET,
        "TICKGATE_LOG_FORMAT": "json",
        "TICKGATE_PORTFOLIO_DEMO_ACCOUNTS": "20",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "run",
        "--port",
        str(port),
        "--api-port",
        str(free_port()),
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await poll_until(lambda: _ready(port), what="tickgate to be ready", timeout_s=30)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    records = [orjson.loads(line) for line in stderr.decode().splitlines()]
    events = [r["event"] for r in records]
    assert process.returncode == 0
    assert all({"ts", "level", "logger", "event", "message"} <= set(r) for r in records)
    assert {"service.starting", "service.started", "service.stopped"} <= set(events)
    # uvicorn's own lines are JSON too, with the event of a record that names none.
    assert any(r["logger"].startswith("uvicorn") and r["event"] == "log" for r in records)
    assert TEST_SECRET not in stderr.decode()
