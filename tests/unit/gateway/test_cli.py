"""The tickgate command: token, instruments, settings errors and durations."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import pytest

from gateway.auth import TokenVerifier
from gateway.cli import main, parse_duration_s
from gateway.devsecret import load_or_create_dev_secret


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A clean TICKGATE_* environment whose data dir (and dev secret) is tmp_path."""
    for key in list(os.environ):
        if key.startswith("TICKGATE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TICKGATE_DATA_DIR", str(tmp_path))
    return tmp_path


def test_token_prints_only_a_token(data_dir, capsys):
    code = main(["token", "--account", "A", "--scope", "read", "--ttl", "1h"])

    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    assert out.endswith("\n")
    assert len(out.split()) == 1
    assert out.count(".") == 2  # header.payload.signature


def test_token_verifies_with_the_dev_secret_and_lives_for_the_ttl(data_dir, capsys):
    before_s = time.time()
    main(["token", "--account", "A", "--scope", "read", "--ttl", "1h"])
    after_s = time.time()
    token = capsys.readouterr().out.strip()
    verifier = TokenVerifier(load_or_create_dev_secret(data_dir), issuer="tickgate", leeway_s=0)

    principal = verifier.verify(token, after_s)

    assert principal.subject == "A"
    assert principal.accounts == {"A"}
    assert principal.scopes == {"read"}
    assert before_s + 3600 - 1 <= principal.expires_at_s <= after_s + 3600


def test_instruments_json_prints_an_array_of_instrument_objects(data_dir, capsys):
    code = main(["instruments", "--json"])

    rows = json.loads(capsys.readouterr().out)
    assert code == 0
    assert isinstance(rows, list)
    assert rows
    assert all({"symbol", "type", "currency"} <= row.keys() for row in rows)
    aapl = next(row for row in rows if row["symbol"] == "AAPL")
    assert (aapl["type"], aapl["currency"]) == ("equity", "USD")


def test_instruments_json_gives_equities_their_dividend_yield_and_others_null(data_dir, capsys):
    main(["instruments", "--json"])

    rows = {row["symbol"]: row for row in json.loads(capsys.readouterr().out)}
    # The packaged master's values: SPY 1.2%, AMZN pays none.
    assert (rows["SPY"]["dividend_yield"], rows["AMZN"]["dividend_yield"]) == (0.012, 0.0)
    assert rows["ESZ6"]["dividend_yield"] is None
    assert rows["SPY261218C670"]["dividend_yield"] is None


def test_invalid_setting_makes_main_return_2_naming_the_key(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("TICKGATE_NOT_A_SETTING", "1")

    code = main(["instruments", "--json"])

    out, err = capsys.readouterr()
    assert code == 2
    assert "TICKGATE_NOT_A_SETTING" in err
    assert out == ""


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("1h", 3600.0), ("2d", 172_800.0)],
)
def test_parse_duration_accepts_plain_seconds_and_units(text, seconds):
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1x", "-5", "0", "1h30m", "h", "1.5.2s"])
def test_parse_duration_rejects_junk(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration_s(text)


def test_unreadable_instruments_file_is_a_setting_error_naming_the_key(data_dir, tmp_path, capsys):
    missing = tmp_path / "nope.csv"

    status = main(["instruments", "--instruments", str(missing)])

    assert status == 2
    assert "TICKGATE_FEED_INSTRUMENTS_FILE" in capsys.readouterr().err


def test_malformed_instruments_file_is_a_setting_error_with_the_line(data_dir, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,type\nAAPL,equity\n", encoding="utf-8")

    status = main(["instruments", "--instruments", str(bad)])

    err = capsys.readouterr().err
    assert status == 2
    assert "TICKGATE_FEED_INSTRUMENTS_FILE" in err
    assert "line 1" in err


def test_kafka_and_upstream_together_are_refused(data_dir, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["run", "--kafka", "127.0.0.1:9092", "--upstream", "ws://127.0.0.1:1"])

    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# What `tickgate run` needs and `tickgate token` must not pay for at import.
HEAVY_MODULES = ("scipy", "numpy", "redis", "starlette", "uvicorn", "websockets", "aiokafka")


def test_token_command_loads_no_server_or_engine_module(data_dir):
    script = (
        "import sys\n"
        "from gateway.cli import main\n"
        "code = main(['token', '--account', 'A'])\n"
        f"loaded = [m for m in {HEAVY_MODULES!r} if m in sys.modules]\n"
        "print('loaded:', ','.join(loaded), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "loaded:"
    assert done.stdout.count(".") == 2  # it did print a token


def test_instruments_command_loads_the_master_but_not_the_server(data_dir):
    script = (
        "import sys\n"
        "from gateway.cli import main\n"
        "code = main(['instruments', '--json'])\n"
        "loaded = [m for m in ('numpy', 'starlette', 'uvicorn') if m in sys.modules]\n"
        "print('loaded:', ','.join(loaded), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "loaded: numpy"


def test_instruments_json_gives_expiring_instruments_their_utc_expiry_instant(data_dir, capsys):
    main(["instruments", "--json"])

    rows = {row["symbol"]: row for row in json.loads(capsys.readouterr().out)}
    # 16:00 New York: EST in December, EDT in March; 16:00 Chicago for CME.
    assert rows["SPY261218C670"]["expires_at"] == "2026-12-18T21:00:00Z"
    assert rows["SPY270319C670"]["expires_at"] == "2027-03-19T20:00:00Z"
    assert rows["ESZ6"]["expires_at"] == "2026-12-18T22:00:00Z"
    assert rows["SPY"]["expires_at"] is None


@pytest.mark.parametrize("argv", [["instruments"], ["instruments", "--json"]])
def test_a_closed_pipe_ends_the_listing_quietly(data_dir, argv):
    # `tickgate instruments | head`: the reader goes away before the listing is
    # written; closing the read end before the child writes makes that certain.
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", *argv], stdout=write_end, stderr=subprocess.PIPE
    )
    os.close(write_end)
    os.close(read_end)

    _, err_bytes = process.communicate(timeout=60)

    err = err_bytes.decode()
    code = process.returncode
    assert "Traceback" not in err
    assert "BrokenPipeError" not in err
    assert err == ""
    assert code == 141  # 128 + SIGPIPE, as a shell tool killed by the closed pipe


@pytest.mark.parametrize("argv", [[], ["run"], ["token"], ["instruments"], ["spike"]])
def test_help_shows_no_markup(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])

    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert "usage: tickgate" in out
    assert "``" not in out


def test_the_load_tools_default_output_directory_is_ignored_by_git():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    if not os.path.isdir(os.path.join(root, ".git")) and not os.path.isfile(
        os.path.join(root, ".git")
    ):
        pytest.skip("not a git checkout")

    done = subprocess.run(
        ["git", "check-ignore", "--no-index", "runs/fanout/result.json"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, "runs/ is not in .gitignore"


def test_token_refuses_an_unknown_scope_and_lists_the_known_ones(data_dir, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["token", "--account", "A", "--scope", "superuser"])

    out, err = capsys.readouterr()
    assert exited.value.code == 2
    assert out == ""
    assert "superuser" in err
    for scope in ("read", "trade", "admin", "orders:write", "orders:read"):
        assert scope in err


def test_token_accepts_the_order_api_scopes(data_dir, capsys):
    code = main(["token", "--account", "A", "--scope", "orders:write", "--scope", "orders:read"])
    token = capsys.readouterr().out.strip()
    verifier = TokenVerifier(load_or_create_dev_secret(data_dir), issuer="tickgate", leeway_s=0)

    assert code == 0
    assert verifier.verify(token, time.time()).scopes == {"orders:write", "orders:read"}
