"""The simulated bank's own behaviour: dedupe by transfer id, persistence, and its resources."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

from gateway.app import create_app
from gateway.settings import Settings
from ledger.bank import BankSettings, SimulatedBank
from ledger.rail import RailStatus


async def test_a_transfer_sent_twice_is_taken_once(tmp_path: Path) -> None:
    bank = SimulatedBank(BankSettings(), str(tmp_path / "bank.db"))
    try:
        assert await bank.send("t-1", "ACC-1", 2_500, "USD") is RailStatus.SETTLED
        assert await bank.send("t-1", "ACC-1", 2_500, "USD") is RailStatus.SETTLED
        assert bank.payouts() == {"t-1": (2_500, "USD")}
    finally:
        bank.close()


async def test_the_bank_remembers_transfers_across_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "bank.db")
    bank = SimulatedBank(BankSettings(), path)
    await bank.send("t-1", "ACC-1", 100, "EUR")
    bank.close()
    again = SimulatedBank(BankSettings(), path)
    try:
        assert await again.status("t-1") is RailStatus.SETTLED
        assert await again.status("t-2") is RailStatus.NOT_FOUND
    finally:
        again.close()


def test_a_bank_never_used_opens_no_database(tmp_path: Path) -> None:
    path = tmp_path / "bank.db"
    bank = SimulatedBank(BankSettings(), str(path))
    bank.close()
    assert not path.exists()


def test_an_app_built_but_never_started_leaves_no_database_open(tmp_path: Path) -> None:
    # Python 3.13 warns about an sqlite3 connection collected unclosed; an app
    # that a test builds only to read its routes must not hold one.
    app = create_app(
        Settings.from_env(
            {"TICKGATE_DATA_DIR": str(tmp_path), "TICKGATE_AUTH_JWT_SECRET": "s" * 32}
        )
    )
    del app
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        gc.collect()
    assert not (tmp_path / "bank.db").exists()
