"""tickgate-load against a gateway started in the test: each scenario, briefly.

The tool runs as its own process (``python -m load_tests``), as operators
run it, against a gateway on its simulator. The assertions are about the
report files and the consistency of the counts, never about timing.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.builders import TEST_SECRET, make_settings
from tests.harness import running_gateway
from tests.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def load(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "load_tests",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, output.decode()


def common(url: str, out: Path, secret: Path, clients: int = 6) -> list[str]:
    return [
        "--url",
        url,
        "--clients",
        str(clients),
        "--symbols-per-client",
        "5",
        "--out",
        str(out),
        "--workers",
        "2",
        "--jwt-secret-file",
        str(secret),
        "--no-progress",
    ]


def read_result(out: Path) -> dict[str, Any]:
    for name in ("result.json", "report.png", "summary.md"):
        assert (out / name).stat().st_size > 0, name
    result: dict[str, Any] = orjson.loads((out / "result.json").read_bytes())
    return result


def assert_consistent(result: dict[str, Any]) -> None:
    assert 0 < result["delivered"] <= result["produced"]
    assert result["produced"] - result["delivered"] == result["conflated"]
    assert result["gaps"] == 0
    assert result["protocol_errors"] == {}
    assert result["closes"] == {}
    assert result["latency_ms"]["count"] > 0
    assert result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text(TEST_SECRET, encoding="utf-8")
    return path


async def test_fanout_writes_a_consistent_report_with_quotes_and_portfolios(
    tmp_path: Path, secret: Path
) -> None:
    out = tmp_path / "fanout"
    async with running_gateway(make_settings(tmp_path)) as gw:
        code, output = await load(
            "fanout",
            *common(gw.ws_url, out, secret),
            "--duration-s",
            "3",
            "--portfolio-share",
            "0.5",
            "--accounts",
            "50",
            "--slo",
            "gaps=0,errors=0",
        )

    assert code == 0, output
    result = read_result(out)
    assert_consistent(result)
    assert result["connected_max"] == 6
    assert result["portfolio_latency_ms"]["count"] > 0
    assert [p["name"] for p in result["phases"]] == ["steady"]
    assert all(check["ok"] for check in result["slo"])
    assert "PASS" in (out / "summary.md").read_text(encoding="utf-8")


async def test_spike_through_the_admin_endpoint_marks_its_window(
    tmp_path: Path, secret: Path
) -> None:
    out = tmp_path / "spike"
    async with running_gateway(make_settings(tmp_path)) as gw:
        code, output = await load(
            "spike",
            *common(gw.ws_url, out, secret),
            "--duration-s",
            "4",
            "--spike-at-s",
            "1",
            "--spike-s",
            "1.5",
            "--rate-multiplier",
            "3",
            "--vol-multiplier",
            "2",
        )

    assert code == 0, output
    result = read_result(out)
    assert_consistent(result)
    assert result["spike_window"] == [1.0, 2.5]
    assert [p["name"] for p in result["phases"]] == ["baseline", "spike", "recovery"]
    assert result["generator"]["driver"]["spike"]["rate_multiplier"] == 3.0
    assert result["server"]["before_spike"] is not None


async def test_soak_reads_the_servers_memory_over_the_run(tmp_path: Path, secret: Path) -> None:
    out = tmp_path / "soak"
    async with running_gateway(make_settings(tmp_path)) as gw:
        code, output = await load(
            "soak", *common(gw.ws_url, out, secret, clients=4), "--duration-s", "3"
        )

    assert code == 0, output
    result = read_result(out)
    assert_consistent(result)
    server = result["server"]
    assert server["source"] == "metrics"
    assert 0 < server["start"] <= server["peak"]
    assert server["growth_pct"] is not None


async def test_a_missed_objective_exits_1_and_says_so(tmp_path: Path, secret: Path) -> None:
    out = tmp_path / "missed"
    async with running_gateway(make_settings(tmp_path)) as gw:
        code, output = await load(
            "fanout",
            *common(gw.ws_url, out, secret, clients=2),
            "--duration-s",
            "2",
            "--slo",
            "p99_ms<0.000001",
        )

    assert code == 1
    assert "SLO missed: p99_ms" in output
    assert "FAIL" in (out / "summary.md").read_text(encoding="utf-8")


async def test_deliberately_slow_clients_are_closed_and_nobody_else(
    tmp_path: Path, secret: Path
) -> None:
    out = tmp_path / "slow"
    settings = make_settings(
        tmp_path,
        simulator={"tick_rate_per_s": 20_000.0},
        fanout={
            "slow_consumer_grace_ms": 300,
            "socket_send_buffer_bytes": 4096,
            "write_buffer_high_bytes": 8192,
            "write_buffer_low_bytes": 2048,
        },
    )
    async with running_gateway(settings) as gw:
        code, output = await load(
            "fanout",
            *common(gw.ws_url, out, secret, clients=4),
            # Long enough for the server to give up on the slow one: over its
            # bound, the grace, then the close timeout (5 s) for its reply.
            "--duration-s",
            "10",
            "--slow-clients",
            "1",
            "--slo",
            "closes=0,gaps=0",
        )

    assert code == 0, output
    result = read_result(out)
    # The slow one was closed (4008, or dropped after the close timeout if it
    # had not read that far), nobody else; and it did not come back.
    assert sum(result["slow_closes"].values()) == 1
    assert set(result["slow_closes"]) <= {"4008", "1006"}
    assert result["closes"] == {}
    assert result["gaps"] == 0
    assert result["reconnects"] == 0


def orders_args(api_url: str, out: Path, secret: Path, *extra: str) -> list[str]:
    return [
        "orders",
        "--api-url",
        api_url,
        "--rate",
        "40",
        "--duration-s",
        "2",
        "--accounts",
        "5",
        "--connections",
        "4",
        "--out",
        str(out),
        "--jwt-secret-file",
        str(secret),
        *extra,
    ]


async def test_an_order_storm_accepts_fresh_keys_and_replays_duplicates(
    tmp_path: Path, secret: Path
) -> None:
    out = tmp_path / "orders"
    async with running_gateway(make_settings(tmp_path)) as gw:
        code, output = await load(
            *orders_args(gw.api_url, out, secret, "--slo", "errors=0,accepted_per_s>=1")
        )

    assert code == 0, output
    result = orjson.loads((out / "result.json").read_bytes())
    outcomes = result["outcomes"]
    # Every request got an answer, and only those the storm expects.
    assert sum(outcomes.values()) == result["offered"] == 80
    assert set(outcomes) <= {"accepted", "replayed", "in_progress"}
    assert outcomes["accepted"] > 0
    assert outcomes.get("replayed", 0) + outcomes.get("in_progress", 0) > 0
    assert result["latency_ms"]["count"] == result["answered"]
    assert all(check["ok"] for check in result["slo"])
    assert "PASS" in (out / "summary.md").read_text(encoding="utf-8")


async def test_an_order_storm_during_a_spike_spikes_the_simulator(
    tmp_path: Path, secret: Path
) -> None:
    out = tmp_path / "orders-spike"
    async with running_gateway(make_settings(tmp_path)) as gw:
        code, output = await load(
            *orders_args(
                gw.api_url,
                out,
                secret,
                "--spike",
                "--http-url",
                gw.url,
                "--spike-at-s",
                "0.5",
                "--spike-s",
                "1",
            )
        )

    assert code == 0, output
    result = orjson.loads((out / "result.json").read_bytes())
    assert result["spike"]["error"] is None
    assert result["spike"]["spike"]["rate_multiplier"] == 10.0


async def test_a_missed_order_objective_exits_1(tmp_path: Path, secret: Path) -> None:
    out = tmp_path / "orders-missed"
    async with running_gateway(make_settings(tmp_path)) as gw:
        code, output = await load(*orders_args(gw.api_url, out, secret, "--slo", "p99_ms<0.000001"))

    assert code == 1
    assert "SLO missed: p99_ms" in output
    assert "FAIL" in (out / "summary.md").read_text(encoding="utf-8")


async def test_an_unreachable_order_api_exits_3(tmp_path: Path, secret: Path) -> None:
    code, output = await load(
        *orders_args(f"http://127.0.0.1:{free_port()}", tmp_path / "none", secret)
    )

    assert code == 3, output
    assert "the run failed" in output


async def test_a_spike_without_the_gateways_url_is_a_usage_error(
    tmp_path: Path, secret: Path
) -> None:
    code, output = await load(
        *orders_args("http://127.0.0.1:1", tmp_path / "none", secret, "--spike")
    )

    assert code == 2
    assert "--spike needs --http-url" in output


@pytest.mark.timeout(300)
async def test_the_churn_bench_measures_a_real_gateways_memory_through_its_phases() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "load_tests.bench",
        "churn",
        *("--cycles", "60", "--concurrency", "6", "--watchers", "3", "--watch-s", "1"),
        *("--warm-up-s", "0", "--settle-s", "0", "--runs", "1", "--demo-accounts", "5", "--json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 240)

    assert process.returncode == 0, output.decode(errors="replace")[-2000:]
    result = orjson.loads(output.splitlines()[-1])
    (run,) = result["runs"]
    assert run["failed_cycles"] == 0
    assert run["cycles_per_s"] > 0
    assert run["start_mb"] > 0  # RSS may fall as well as rise between readings
    assert run["churn_peak_mb"] > 0
    assert run["watching_mb"] > 0
    assert run["after_watchers_mb"] > 0
    assert result["summary"]["after_churn_pct"]["median"] == pytest.approx(run["after_churn_pct"])
