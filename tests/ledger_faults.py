"""Fault-injection helpers for the ledger: a real ledger subprocess to SIGKILL, and checks.

Reusable by the crash tests and by a longer fault run (the gateway's
end-to-end tests can drive the same process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Self

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from orders.commands import Command, command_to_wire


class LedgerProcess:
    """``python -m ledger`` as a child process that a test may SIGKILL and restart."""

    def __init__(self, args: Sequence[str], log_path: str) -> None:
        self.args = [sys.executable, "-m", "ledger", *args]
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log)
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = b""
        while time.monotonic() < deadline and b"ledger ready" not in line:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                raise RuntimeError(f"the ledger exited with {self.process.returncode}")
        if b"ledger ready" not in line:
            raise TimeoutError("the ledger did not get ready")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None
        return code


async def create_topics(bootstrap: str, *names: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        )
    finally:
        await admin.close()


async def produce(
    bootstrap: str, commands: Sequence[Command], topic: str = "orders.submitted"
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for command in commands:
            await producer.send_and_wait(
                topic, orjson.dumps(command_to_wire(command)), key=command.account_id.encode()
            )
    finally:
        await producer.stop()


async def consume_all(
    bootstrap: str, topic: str, expected_min: int, timeout_s: float = 60.0
) -> list[dict[str, object]]:
    """Every record on ``topic`` from the start, once at least ``expected_min`` were read."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    out: list[dict[str, object]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            fetched = await consumer.getmany(timeout_ms=200)
            for records in fetched.values():
                out += [orjson.loads(r.value) for r in records if r.value is not None]
            if len(out) >= expected_min and not fetched:
                break
    finally:
        await consumer.stop()
    return out


async def count(dsn: str, sql: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))
