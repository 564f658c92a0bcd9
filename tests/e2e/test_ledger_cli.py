"""``tickgate ledger verify | dlq | reconcile`` on the store of a gateway that ran."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from gateway.settings import Settings
from ledger.inbox import InboxBus
from orders.commands import SubmitPayment
from orders.types import AccountId, PaymentId, PaymentKind, PrincipalId, TraceId, TransferId
from portfolio.redis import RedisPositionStore
from tests.builders import make_settings, make_token
from tests.harness import ScriptedSource, poll_until, request, running_gateway
from tests.ledger_harness import SqliteHarness
from tests.servers import RedisServer

pytestmark = pytest.mark.e2e


def tickgate(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TICKGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=clean | {"TICKGATE_DATA_DIR": str(data_dir)} | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def small_settings(tmp_path: Path, **sections: object) -> Settings:
    return make_settings(
        tmp_path, portfolio={"demo_accounts": 5}, risk={"interval_ms": 60_000}, **sections
    )


async def deposit(api_url: str, account: str, amount: str) -> None:
    token = make_token(subject="oms", accounts=(account,), scopes=("orders:write",))
    answer = await request(
        "POST",
        api_url + "/v1/payments",
        body=orjson.dumps(
            {"account_id": account, "kind": "deposit", "amount": amount, "currency": "USD"}
        ),
        token=token,
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert answer.status == 202, answer.body


async def test_verify_is_clean_after_a_run_and_names_a_tampered_entry(tmp_path):
    async with running_gateway(small_settings(tmp_path), source=ScriptedSource()) as gw:
        await deposit(gw.api_url, "DEMO-0001", "100.00")
        await poll_until(
            lambda: (
                gw.gateway.trading.service is not None
                and gw.gateway.trading.service.commands_processed >= 1
            ),
            what="the deposit to be posted",
        )

    clean = tickgate(tmp_path, "ledger", "verify")
    await SqliteHarness(tmp_path / "ledger.db").tamper(
        "UPDATE entries SET amount = amount + 1 WHERE seq = (SELECT max(seq) FROM entries)"
    )
    tampered = tickgate(tmp_path, "ledger", "verify")

    assert (clean.returncode, clean.stdout.count("\n")) == (0, 1), clean.stderr
    assert clean.stdout.startswith("ledger verify: clean")
    assert tampered.returncode == 1
    assert "problem" in tampered.stdout
    assert tampered.stdout.count("\n") == 1


async def test_a_command_for_an_unknown_account_is_listed_and_redriven(tmp_path):
    transfer = TransferId(str(uuid.uuid4()))
    command = SubmitPayment(
        transfer_id=transfer,
        trace_id=TraceId("0" * 32),
        principal=PrincipalId("back-office"),
        account_id=AccountId("NO-SUCH"),
        ts_accepted=1,
        payment_id=PaymentId(f"pay_{transfer}"),
        kind=PaymentKind.DEPOSIT,
        amount=Decimal("5.00"),
        currency="USD",
    )
    async with running_gateway(small_settings(tmp_path), source=ScriptedSource()) as gw:
        trading = gw.gateway.trading
        await InboxBus(trading.store, gw.gateway.clock.now_ns).submit(command)
        await poll_until(
            lambda: trading.store.dead_letters(include_redriven=False, limit=10),
            what="the command to be dead-lettered",
        )

    listed = tickgate(tmp_path, "ledger", "dlq", "list")
    (letter,) = [orjson.loads(line) for line in listed.stdout.splitlines()]
    audit_file = tmp_path / "audit" / "audit.jsonl"
    redriven = tickgate(
        tmp_path,
        "ledger",
        "dlq",
        "redrive",
        "--id",
        str(letter["dlq_id"]),
        "--actor",
        "alice",
        TICKGATE_AUDIT_FILE=str(audit_file),
    )
    after = tickgate(tmp_path, "ledger", "dlq", "list")
    everything = tickgate(tmp_path, "ledger", "dlq", "list", "--all")

    assert (letter["reason"], letter["transfer_id"]) == ("unknown_account", transfer)
    assert redriven.returncode == 0, redriven.stderr
    assert redriven.stdout.strip() == "ledger dlq: 1 dead letter(s) redriven by alice"
    assert "redriven by alice" in redriven.stderr  # the audit line
    (event,) = [orjson.loads(line) for line in audit_file.read_text().splitlines()]
    assert event["event"] == "ledger.dlq_redrive"
    assert (event["actor"], event["outcome"]) == ("alice", "redriven")
    assert (event["dlq_ids"], event["transfer_ids"]) == ([letter["dlq_id"]], [transfer])
    assert audit_file.stat().st_mode & 0o777 == 0o600
    assert after.stdout == ""
    assert len(everything.stdout.splitlines()) == 1


@pytest.mark.integration
async def test_reconcile_repairs_a_cached_account_that_differs_from_the_ledger(
    tmp_path, redis_server: RedisServer
):
    prefix = f"tg-{uuid.uuid4().hex[:8]}"
    settings = small_settings(tmp_path, redis={"url": redis_server.url, "key_prefix": prefix})
    # The gateway writes every account to the cache, at the latest as it stops.
    async with running_gateway(settings, source=ScriptedSource()):
        pass
    cache = RedisPositionStore(redis_server.url, key_prefix=prefix, timeout_s=2)
    await cache.start()
    records = await cache.load()
    wrong = records[AccountId("DEMO-0002")]
    await cache.save([dataclasses.replace(wrong, cash={"USD": 1.0})])
    env = {"TICKGATE_REDIS_URL": redis_server.url, "TICKGATE_REDIS_KEY_PREFIX": prefix}

    dry = tickgate(tmp_path, "ledger", "reconcile", "--dry-run", **env)
    repaired = tickgate(tmp_path, "ledger", "reconcile", **env)
    again = tickgate(tmp_path, "ledger", "reconcile", **env)
    fixed = (await cache.load())[AccountId("DEMO-0002")]
    await cache.stop()

    assert dry.returncode == 0, dry.stderr
    assert "1 cached record(s) repaired" in dry.stdout
    assert "1 cached record(s) repaired" in repaired.stdout
    assert "0 cached record(s) repaired" in again.stdout
    assert fixed.cash == records[AccountId("DEMO-0002")].cash
