"""Real servers started by test fixtures on free loopback ports.

With ``CI=true`` a missing server binary fails the test run; elsewhere the
tests that need it are skipped with the reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

__all__ = [
    "PostgresServer",
    "free_port",
    "postgres_bin_dir",
    "require_binary",
    "run_process",
    "wait_for_port",
]


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(path: str | None, what: str) -> str:
    """Return ``path``, or fail (CI) / skip (elsewhere) when it is missing."""
    if path and os.access(path, os.X_OK):
        return path
    message = f"{what} is not installed; run `make test` to install the test servers"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def wait_for_port(port: int, timeout_s: float = 20.0) -> None:
    """Poll until something accepts connections on ``port``, or raise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


@contextmanager
def run_process(args: Sequence[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process, wait for its port, and kill it on exit."""
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


class RedisServer:
    """A real ``redis-server`` on a free loopback port, without persistence.

    ``stop()`` kills it; ``start()`` runs it again on the same port, empty,
    like a crashed cache that came back.
    """

    def __init__(self, binary: str, data_dir: str) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def is_running(self) -> bool:
        return self._process is not None

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError(f"redis-server already runs on port {self.port}")
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.data_dir,
        ]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(self.port)
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}")
        except BaseException:
            process.kill()
            process.wait(timeout=10)
            raise
        self._process = process

    def stop(self) -> None:
        """Kill the server (no shutdown, no save): its data is gone."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None


def postgres_bin_dir() -> str | None:
    """The directory of the newest installed PostgreSQL server binaries, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major_version)
    return os.path.dirname(found[-1]) if found else None


def _major_version(path: str) -> int:
    try:
        return int(path.split("/")[4])
    except (IndexError, ValueError):
        return 0


class PostgresServer:
    """A private PostgreSQL cluster in a temp dir on a free loopback port.

    PostgreSQL refuses to run as root, so when the tests run as root the
    cluster is initialised and run as the ``postgres`` user. ``stop()``
    stops it immediately (like a crash: WAL replay on the next start);
    ``start()`` runs it again on the same port with the same data.
    """

    def __init__(self, bin_dir: str) -> None:
        self.bin_dir = bin_dir
        self.root = tempfile.mkdtemp(prefix="tickgate-pg-")
        self.data_dir = os.path.join(self.root, "data")
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            [
                os.path.join(bin_dir, "initdb"),
                "-D",
                self.data_dir,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, args: list[str]) -> None:
        if self._as_postgres:
            args = ["runuser", "-u", "postgres", "--", *args]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    @property
    def is_running(self) -> bool:
        return os.path.exists(os.path.join(self.data_dir, "postmaster.pid"))

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
            "-c fsync=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(
            [
                os.path.join(self.bin_dir, "pg_ctl"),
                "-D",
                self.data_dir,
                "-o",
                options,
                "-l",
                os.path.join(self.root, "log"),
                "-w",
                "start",
            ]
        )
        wait_for_port(self.port)

    def stop(self, mode: str = "immediate") -> None:
        if self.is_running:
            self._run(
                [
                    os.path.join(self.bin_dir, "pg_ctl"),
                    "-D",
                    self.data_dir,
                    "-m",
                    mode,
                    "-w",
                    "stop",
                ]
            )

    def create_database(self, name: str) -> str:
        """Create an empty database and return its DSN."""
        self._run(
            [
                os.path.join(self.bin_dir, "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-q",
                "-c",
                f'CREATE DATABASE "{name}"',
            ]
        )
        return self.dsn(name)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
