"""Layering rules of the style guide (section 1), checked by walking imports with ``ast``.

- Imports point left only: pricing <- portfolio <- orders <- ledger <- gateway.
- Core modules (all of pricing/, portfolio/ except its store adapters,
  orders/ and ledger/ except their adapters, and the gateway's client
  session) import no I/O or async framework and never read the
  environment or the clock.
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
CORE_EXTRA_FILES = ("gateway/session.py",)
# Adapters of the portfolio's position-store port talk to their technology.
PORTFOLIO_ADAPTERS = ("portfolio/redis.py", "portfolio/memory.py")
# orders/ is core except its adapters, one module per technology (style guide 1).
ORDERS_ADAPTER_MODULES = ("memory.py", "redis.py", "kafka.py")
# ledger/ is core (journal, money, positions, venue, sagas, state, seeds) except its
# adapters and the asyncio service around them.
LEDGER_ADAPTER_MODULES = (
    "postgres.py",
    "sqlite.py",
    "kafka.py",
    "inbox.py",
    "bank.py",
    "relay.py",
    "service.py",
    "admin.py",
    "__main__.py",
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
    if path.startswith("portfolio/"):
        return path not in PORTFOLIO_ADAPTERS
    if path.startswith("orders/"):
        return path.rsplit("/", 1)[-1] not in ORDERS_ADAPTER_MODULES
    if path.startswith("ledger/"):
        return path.rsplit("/", 1)[-1] not in LEDGER_ADAPTER_MODULES
    return path.startswith("pricing/") or path in CORE_EXTRA_FILES


def parse(path: str) -> ast.AST:
    return ast.parse((ROOT / path).read_text(encoding="utf-8"), filename=path)


def report(violations: list[Violation]) -> str:
    return "layering violations:\n" + "\n".join(f"  {v}" for v in violations)


# --- the rules on this tree ----------------------------------------------------------


def test_the_walk_finds_the_packages_and_the_core_session():
    files = source_files()

    assert is_core("ledger/journal.py")
    assert is_core("ledger/venue.py")
    assert not is_core("ledger/postgres.py")
    assert any(f.startswith("pricing/") for f in files)
    assert any(f.startswith("gateway/") for f in files)
    assert "gateway/session.py" in files


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


def test_checker_accepts_gateway_importing_pricing():
    source = "from pricing.pricebook import PriceBook\nimport gateway.session\n"

    assert list(package_violations("gateway/app.py", ast.parse(source))) == []
