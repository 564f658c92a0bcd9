"""Builders shared by tests: settings, tokens, tick batches, a manual clock."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gateway.auth import issue_token
from gateway.settings import Secret, Settings
from pricing.pricebook import TickBatch

TEST_SECRET = "test-secret-" + "x" * 40
NS = 1_000_000_000


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self, now_ns: int = 1_800_000_000 * NS) -> None:
        self.now = now_ns

    def now_ns(self) -> int:
        return self.now

    def advance_s(self, seconds: float) -> None:
        self.now += int(seconds * NS)


def make_settings(tmp_path: Path, **sections: Any) -> Settings:
    """Default settings with a test secret, a private data dir and section overrides.

    ``make_settings(tmp_path, ws={"max_subscriptions": 3}, port=0)``.
    """
    base = Settings()
    top: dict[str, Any] = {
        "data_dir": tmp_path,
        "auth": dataclasses.replace(base.auth, jwt_secret=Secret(TEST_SECRET)),
        # A small demo book keeps every test gateway quick; tests that need
        # more accounts say so.
        "portfolio": dataclasses.replace(base.portfolio, demo_accounts=50),
    }
    for name, value in sections.items():
        if isinstance(value, dict):
            top[name] = dataclasses.replace(top.get(name, getattr(base, name)), **value)
        else:
            top[name] = value
    return dataclasses.replace(base, **top)


def make_token(
    *,
    subject: str = "trader-1",
    accounts: Sequence[str] = ("ACC-1",),
    scopes: Sequence[str] = ("read",),
    ttl_s: float = 3600,
    now_s: float | None = None,
    secret: str = TEST_SECRET,
) -> str:
    """A token signed with the test secret (or ``secret``)."""
    return issue_token(
        secret,
        subject=subject,
        accounts=accounts,
        scopes=scopes,
        ttl_s=ttl_s,
        now_s=time.time() if now_s is None else now_s,
        issuer="tickgate",
    )


def make_batch(
    ix: Sequence[int],
    *,
    bid: Sequence[float] | None = None,
    ask: Sequence[float] | None = None,
    last: Sequence[float] | None = None,
    size: Sequence[float] | None = None,
    ts_event: Sequence[int] | int = 1_000,
    ts_recv: int = 2_000,
) -> TickBatch:
    """A batch where omitted columns are absent (NaN) and timestamps default."""
    n = len(ix)
    nan = [np.nan] * n
    ts = [ts_event] * n if isinstance(ts_event, int) else list(ts_event)
    return TickBatch.from_columns(
        instrument_ix=list(ix),
        bid=nan if bid is None else list(bid),
        ask=nan if ask is None else list(ask),
        last=nan if last is None else list(last),
        size=nan if size is None else list(size),
        ts_event=ts,
        ts_recv=[ts_recv] * n,
    )
