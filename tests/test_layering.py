"""Layering rules of the style guide (section 1), checked by walking imports with ``ast``.

- Imports point left only: pricing <- portfolio <- orders <- ledger <- gateway;
  neither orders/ nor ledger/ ever imports gateway/.
- Core modules import no I/O or async framework and never read the
  environment or the clock. Core is all of pricing/; portfolio/, orders/ and
  ledger/ except their adapters (one module per technology, named after it)
  and the ledger's asyncio shell; and the sans-I/O core of the /ws protocol:
  gateway/ws/ except its asyncio shell.
- load_tests imports none of our packages.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUR_PACKAGES = ("gateway", "pricing", "portfolio", "orders", "ledger", "load_tests")

# Which of our packages each package may not import.
FORBIDDEN_OURS = {
    "pricing": {"gateway", "portfolio", "orders", "ledger", "load_tests"},
    "portfolio": {"gateway", "orders", "ledger", "load_tests"},
    "orders": {"gateway", "ledger", "load_tests"},
    "ledger": {"gateway", "load_tests"},
    "gateway": {"load_tests"},
    "load_tests": {"gateway", "pricing", "portfolio", "orders", "ledger"},
}
CORE_FORBIDDEN_IMPORTS = {
    "asyncio",
    "redis",
    "aiokafka",
    "starlette",
    "websockets",
    "uvicorn",
    "orjson",
}
# (module, attribute) pairs that read the environment or the clock.
CORE_FORBIDDEN_NAMES = {
    ("os", "environ"),
    ("os", "getenv"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "monotonic"),
    ("time", "monotonic_ns"),
    ("time", "perf_counter"),
    ("time", "perf_counter_ns"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
}
# The /ws protocol's sans-I/O core is this directory, except the shell below.
WS_CORE_DIR = "gateway/ws/"
# The asyncio shell: the socket (uvicorn protocol), what every connection
# shares (timers, the JSON decoder it injects), and the JSON encoder it injects.
WS_SHELL = ("gateway/ws/connection.py", "gateway/ws/hub.py", "gateway/ws/encoding.py")
# Packages whose adapters are named after their technology (style guide 1):
# everything else in them is core.
PACKAGES_WITH_ADAPTERS = ("portfolio/", "orders/", "ledger/")
ADAPTER_MODULES = ("memory.py", "redis.py", "kafka.py", "postgres.py", "sqlite.py")
# The ledger's asyncio shell around its core (journal, money, positions,
# venue, sagas, state, seeds): the embedded inbox, the simulated bank, the
# outbox relay, the service loop, the admin commands and the runner.
LEDGER_SHELL = (
    "ledger/inbox.py",
    "ledger/bank.py",
    "ledger/relay.py",
    "ledger/service.py",
    "ledger/admin.py",
    "ledger/__main__.py",
)


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Yield (line, absolute module name) for each import; relative ones are skipped."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted_name(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def clock_and_env_reads(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Yield (line, name) for each reference to the environment or the clock."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name = dotted_name(node)
            if name is None:
                continue
            parts = name.split(".")
            # "dt.datetime.now" ends with ("datetime", "now"); "os.environ" is itself a pair.
            if len(parts) >= 2 and (parts[-2], parts[-1]) in CORE_FORBIDDEN_NAMES:
                yield node.lineno, name
        elif isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[-1]
            for alias in node.names:
                if (top, alias.name) in CORE_FORBIDDEN_NAMES:
                    yield node.lineno, f"from {node.module} import {alias.name}"


def package_violations(path: str, tree: ast.AST) -> Iterator[Violation]:
    package = path.split("/")[0]
    for line, module in imported_modules(tree):
        top = module.split(".")[0]
        if top in FORBIDDEN_OURS[package]:
            yield Violation(path, line, f"{package} imports {module}")


def core_violations(path: str, tree: ast.AST) -> Iterator[Violation]:
    for line, module in imported_modules(tree):
        if module.split(".")[0] in CORE_FORBIDDEN_IMPORTS:
            yield Violation(path, line, f"core module imports {module}")
    for line, name in clock_and_env_reads(tree):
        yield Violation(path, line, f"core module reads the environment or clock: {name}")


def source_files() -> list[str]:
    files = []
    for package in OUR_PACKAGES:
        directory = ROOT / package
        if directory.is_dir():
            files += [p.relative_to(ROOT).as_posix() for p in sorted(directory.rglob("*.py"))]
    return files


def is_core(path: str) -> bool:
    if path in LEDGER_SHELL:
        return False
    if path.startswith(PACKAGES_WITH_ADAPTERS):
        return path.rsplit("/", 1)[-1] not in ADAPTER_MODULES
    if path.startswith(WS_CORE_DIR):
        return path not in WS_SHELL
    return path.startswith("pricing/")


def parse(path: str) -> ast.AST:
    return ast.parse((ROOT / path).read_text(encoding="utf-8"), filename=path)


def report(violations: list[Violation]) -> str:
    return "layering violations:\n" + "\n".join(f"  {v}" for v in violations)


# --- the rules on this tree ----------------------------------------------------------


def test_the_walk_finds_the_packages_and_the_ws_core_and_shell():
    files = source_files()
    ws_core = {f for f in files if f.startswith(WS_CORE_DIR) and is_core(f)}

    assert is_core("ledger/journal.py")
    assert is_core("ledger/venue.py")
    assert not is_core("ledger/postgres.py")
    assert any(f.startswith("pricing/") for f in files)
    assert any(f.startswith("orders/") for f in files)
    assert set(WS_SHELL) <= set(files)
    assert {
        "gateway/ws/session.py",
        "gateway/ws/channelspecs.py",
        "gateway/ws/closecodes.py",
        "gateway/ws/topic.py",
        "gateway/ws/outbox.py",
    } <= ws_core


def test_packages_import_only_leftwards():
    violations = [v for f in source_files() for v in package_violations(f, parse(f))]

    assert not violations, report(violations)


def test_core_modules_do_no_io_and_read_no_environment_or_clock():
    violations = [v for f in source_files() if is_core(f) for v in core_violations(f, parse(f))]

    assert not violations, report(violations)


# --- the checker itself -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected_line"),
    [
        ("import os\n\nimport asyncio\n", 3),
        ("from redis.asyncio import Redis\n", 1),
        ("import orjson as json\n", 1),
        ("import os\nx = os.environ['A']\n", 2),
        ("from os import environ\n", 1),
        ("import time\n\n\ndef f():\n    return time.time_ns()\n", 5),
        ("import datetime as dt\nnow = dt.datetime.now()\n", 2),
        ("from datetime import datetime\nnow = datetime.now()\n", 2),
        ("from time import time\n", 1),
    ],
)
def test_checker_flags_core_violations_at_their_line(source, expected_line):
    violations = list(core_violations("pricing/example.py", ast.parse(source)))

    assert [v.line for v in violations] == [expected_line]
    assert str(violations[0]).startswith(f"pricing/example.py:{expected_line}: ")


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np\nfrom pricing.types import F64Array1D\n",
        "import datetime as dt\nd = dt.date(2026, 1, 2)\n",
        "import time\n",  # importing is fine; reading the clock is not
        "now_ns = 0\nx = self.time\n",
    ],
)
def test_checker_accepts_clean_core_code(source):
    assert list(core_violations("pricing/example.py", ast.parse(source))) == []


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("pricing/book.py", "from gateway.settings import Settings\n"),
        ("pricing/book.py", "import portfolio.positions\n"),
        ("portfolio/pnl.py", "from ledger import journal\n"),
        ("load_tests/spike.py", "from pricing import PriceBook\n"),
        ("load_tests/spike.py", "import gateway\n"),
    ],
)
def test_checker_flags_imports_pointing_right(path, source):
    violations = list(package_violations(path, ast.parse(source)))

    assert [v.line for v in violations] == [1]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("pricing/pricebook.py", True),
        ("portfolio/engine.py", True),
        ("portfolio/redis.py", False),
        ("orders/commands.py", True),
        ("orders/kafka.py", False),
        ("ledger/journal.py", True),
        ("ledger/postgres.py", False),
        ("gateway/ws/session.py", True),
        ("gateway/ws/outbox.py", True),
        ("gateway/ws/connection.py", False),
        ("gateway/ws/encoding.py", False),
        ("gateway/channels/quotes.py", False),
        ("gateway/app.py", False),
    ],
)
def test_core_is_stated_by_directory_minus_adapters_and_the_shell(path, expected):
    assert is_core(path) is expected


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("orders/commands.py", "from gateway.errors import GatewayError\n"),
        ("ledger/journal.py", "import gateway.settings\n"),
        ("orders/bus.py", "from ledger import journal\n"),
    ],
)
def test_checker_flags_orders_or_ledger_importing_rightwards(path, source):
    violations = list(package_violations(path, ast.parse(source)))

    assert [v.line for v in violations] == [1]


def test_checker_accepts_gateway_importing_pricing():
    source = "from pricing.pricebook import PriceBook\nimport gateway.ws.session\n"

    assert list(package_violations("gateway/app.py", ast.parse(source))) == []
