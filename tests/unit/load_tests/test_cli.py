"""tickgate-load's exit status for bad usage and an unreachable deployment."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from load_tests.cli import config_from, main
from tests.servers import free_port


def args(out: Path, *extra: str) -> list[str]:
    return [
        "fanout",
        "--url",
        f"ws://127.0.0.1:{free_port()}/ws",
        "--clients",
        "2",
        "--duration-s",
        "1",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_a_bad_objective_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(args(tmp_path, "--slo", "p98_ms=1"))

    assert code == 2
    assert "unknown objective 'p98_ms'" in capsys.readouterr().err


def test_a_missing_secret_file_is_a_usage_error(tmp_path: Path) -> None:
    assert main(args(tmp_path, "--jwt-secret-file", str(tmp_path / "nope"))) == 2


def test_an_unreachable_deployment_exits_3_without_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"

    code = main(args(out))

    assert code == 3
    assert "the run failed" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--clients=0", "--duration-s=-1", "--portfolio-share=1.5"])
def test_out_of_range_numbers_are_refused_by_the_parser(tmp_path: Path, flag: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main([*args(tmp_path), flag])

    assert caught.value.code == 2


def test_spike_defaults_to_the_admin_driver_and_a_middle_third(tmp_path: Path) -> None:
    namespace = argparse.Namespace(
        scenario="spike",
        url="ws://h:1/ws",
        clients=3,
        symbols_per_client=2,
        duration_s=30.0,
        out=tmp_path,
        slo="",
        http_url=None,
        workers=1,
        ramp_per_s=10.0,
        interval_s=1.0,
        zipf_s=1.0,
        portfolio_share=0.0,
        accounts=10,
        account_format="A-{}",
        jwt_secret_file=None,
        jwt_secret_env=None,
        issuer="tickgate",
        slow_clients=0,
        server_pid=None,
        driver=None,
        kafka_bootstrap=None,
        kafka_topic="md.ticks",
        tick_rate=100.0,
        seed=1,
        no_progress=True,
        spike_at_s=None,
        spike_s=None,
        rate_multiplier=10.0,
        vol_multiplier=5.0,
    )

    config = config_from(namespace)

    assert config.driver == "admin"
    assert config.spike_window() == (10.0, 20.0)
