"""schemathesis against the order API's own /openapi.json: every answer documented, none a 5xx.

``tickgate api`` runs in its own process with the embedded ledger; cases
are generated from the served document (valid and invalid bodies,
parameters and headers), sent with a token that holds every scope (and,
in a second run, with none), and each answer must be a status the
operation documents and never a server error. Examples are bounded per
operation, so the run stays within CI's time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error, status_code_conformance

from orders.openapi import openapi_document
from orders.routes import API_ROUTES
from tests.builders import TEST_SECRET, make_token
from tests.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLES_PER_OPERATION = 30
TOKEN = make_token(
    subject="fuzzer",
    accounts=["*"],
    scopes=("orders:write", "orders:read", "admin"),
    ttl_s=86_400,
)
CHECKS = [not_a_server_error, status_code_conformance]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def order_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The order API alone (``tickgate api``) on a free port; its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKGATE_")} | {
        "TICKGATE_DATA_DIR": str(tmp_path_factory.mktemp("order-api")),
        "TICKGATE_API_PORT": str(port),
        "TICKGATE_AUTH_JWT_SECRET": TEST_SECRET,
        "TICKGATE_PORTFOLIO_DEMO_ACCOUNTS": "20",
        "TICKGATE_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(f"{url}/healthz"):
            assert process.poll() is None, "tickgate api exited"
            assert time.monotonic() < deadline, "tickgate api did not start within 60 s"
            time.sleep(0.1)  # a poll with a deadline: the process starts on its own
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def api_schema(order_api: str) -> schemathesis.BaseSchema:
    # The document the server serves, fetched once.
    with urllib.request.urlopen(f"{order_api}/openapi.json", timeout=10) as response:
        return schemathesis.openapi.from_dict(json.loads(response.read()))


# The operations, from the document the API serves (built here without a server).
Operation = APIOperation[Any, Any, Any, Any]
DOCUMENT: Any = openapi_document(API_ROUTES)  # a JSON document
OPERATIONS = sorted(
    (method.upper(), path) for path, methods in DOCUMENT["paths"].items() for method in methods
)


def operation(api_schema: schemathesis.BaseSchema, method: str, path: str) -> Operation:
    for result in api_schema.get_all_operations():
        found = result.ok()  # type: ignore[union-attr]  # an Err raises here, failing the test
        if (found.method.upper(), found.path) == (method, path):
            return found
    raise AssertionError(f"{method} {path} is not in the served document")


def fuzz(op: Operation, base_url: str, headers: dict[str, str], examples: int) -> None:
    """Send ``examples`` valid and ``examples`` invalid cases of ``op``; check each answer."""
    has_inputs = any(len(inputs) for inputs in (op.path_parameters, op.headers, op.query, op.body))
    # An operation without inputs (GET /openapi.json) has no invalid case to make.
    modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if has_inputs else [])
    for mode in modes:

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

        run()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_with_a_token_every_answer_is_documented_and_none_a_server_error(
    api_schema, order_api, method, path
):
    headers = {"Authorization": f"Bearer {TOKEN}"}

    fuzz(operation(api_schema, method, path), order_api, headers, EXAMPLES_PER_OPERATION)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_without_a_token_every_answer_is_documented_and_none_a_server_error(
    api_schema, order_api, method, path
):
    fuzz(operation(api_schema, method, path), order_api, {}, 5)
