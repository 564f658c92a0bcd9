"""A client's view of the ``portfolio`` channel, rebuilt from the published messages only.

The packaged master and seeded demo accounts, ticks from the seeded market
model in batches from one step to hundreds (the large ones touch enough
positions for the engine to revalue everything at once), time passing with
the options repriced for it as the risk cadence does, staleness flips, fills
and day rolls. A subscriber with a real outbox takes each frame; the test
applies snapshots and updates as docs/protocol.md tells a client to, and on
every update checks that the account's totals are the sums of the rows it
holds: the promise of protocol.md's totals table.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from gateway.channels.pacing import RevaluationPacer
from gateway.channels.portfolio import PortfolioChannel
from gateway.channels.portfoliowire import PortfolioEncoder
from gateway.metrics import Metrics
from gateway.refdata import load_master
from gateway.settings import RiskSettings
from gateway.ws.outbox import Outbox
from gateway.ws.session import Subscribe
from portfolio.demo import demo_records
from portfolio.engine import PortfolioChange, PortfolioEngine
from portfolio.fx import FxTable
from portfolio.positions import PositionBook
from portfolio.records import load_records
from portfolio.types import AccountId, Fill
from portfolio.valuation import InstrumentTerms
from pricing.pricebook import PriceBook
from pricing.simulator import MarketModel, ModelParams
from tests.builders import NS, ManualClock

MASTER = load_master(None)
RATES = {"USD": 0.04, "EUR": 0.02, "GBP": 0.04, "JPY": 0.005}
ACCOUNTS = 60
STEP_S = 0.005
# A decoded wire message: JSON values, whatever each field holds.
Message = dict[str, Any]
# Totals that are sums of the rows (protocol.md): total field, row field, transform.
SUMS = (
    ("market_value", "market_value", None),
    ("unrealised_pnl", "unrealised_pnl", None),
    ("realised_pnl", "realised_pnl", None),
    ("commission", "commission", None),
    ("day_pnl", "day_pnl", None),
    ("net_exposure", "exposure", None),
    ("gross_exposure", "exposure", abs),
    ("gamma", "gamma", None),
    ("vega", "vega", None),
    ("theta", "theta", None),
    ("rho", "rho", None),
)


class Client:
    """A subscriber with a real outbox that applies what it receives, as a client would."""

    def __init__(self) -> None:
        self.outbox = Outbox()
        self.rows: dict[str, dict[str, Message]] = {}
        self.totals: dict[str, Message] = {}
        self.seq: dict[str, int] = {}
        self.updates_checked = 0

    def flush(self) -> None:
        """Frames are taken by ``receive``."""

    def receive(self) -> None:
        frame = self.outbox.take_frame(0)
        for message in [] if frame is None else json.loads(frame):
            if message["type"] == "snapshot":
                key = message["key"]
                self.rows[key] = {row["symbol"]: row for row in message["positions"]}
                self.totals[key] = message["totals"]
                self.seq[key] = message["seq"]
            elif message["type"] == "update":
                self.apply(message)

    def apply(self, update: Message) -> None:
        key = update["key"]
        first = update.get("seq_from", update["seq"])
        assert first == self.seq[key] + 1, f"{key}: gap before seq {first}"
        self.seq[key] = update["seq"]
        for row in update.get("positions", []):
            self.rows[key][row["symbol"]] = row
        if "totals" in update:
            self.totals[key] = update["totals"]
            self.check(key)

    def check(self, key: str) -> None:
        # Each row converts at its own fx_rate; null values (no price, no rate)
        # are left out of the totals, as protocol.md says. Day P&L and the
        # others are differences of sums as large as the account's market
        # value, so they round to about 1e-15 of the largest total (x the
        # number of updates summed since the last exact re-sum): 1e-12 of it.
        totals, rows = self.totals[key], self.rows[key].values()
        largest = max(abs(v) for v in totals.values() if isinstance(v, float) and math.isfinite(v))
        for total, field, transform in SUMS:
            terms = []
            for row in rows:
                value, rate = row[field], row["fx_rate"]
                if value is None or rate is None:
                    continue
                term = float(value) * float(rate)
                terms.append(transform(term) if transform else term)
            expected = math.fsum(terms)
            assert totals[total] == pytest.approx(expected, rel=1e-9, abs=1e-12 * largest), (
                f"{key} {total}: totals say {totals[total]}, the rows sum to {expected}"
            )
        self.updates_checked += 1


class Session:
    """The channel over the packaged master, driven by one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.clock = ManualClock()
        fx = FxTable(MASTER)
        terms = InstrumentTerms.from_master(MASTER, fx.currencies, RATES)
        book = PositionBook(
            fx.currencies,
            currency_ix=terms.currency_ix,
            multiplier=terms.multiplier,
            is_margined=terms.is_margined,
        )
        load_records(book, demo_records(MASTER, count=ACCOUNTS, seed=seed), MASTER.symbol_index)
        self.prices = PriceBook(MASTER.ref_price, stale_after_ns=10 * NS)
        # 400 ticks/s: a one-step batch is a couple of ticks (the incremental
        # path), a 2,000-step one thousands (a full revaluation).
        self.market = MarketModel(
            MASTER, ModelParams(tick_rate_per_s=400.0, step_s=STEP_S), seed=seed
        )
        self.apply_ticks(1)
        engine = PortfolioEngine(
            self.prices, book, fx, terms, max_leverage=2.0, now_ns=self.clock.now
        )
        self.engine = engine
        self.channel = PortfolioChannel(
            engine,
            PortfolioEncoder(engine, MASTER, RiskSettings()),
            epoch="e",
            clock=self.clock,
        )
        self.pacer = RevaluationPacer(
            engine, self.channel, max_loop_share=0.5, clock=self.clock, metrics=Metrics()
        )
        self.client = Client()
        keys = tuple(book.accounts)
        self.channel.subscribe(self.client, Subscribe("portfolio", keys, "s", None))
        self.client.receive()
        self.ledger_seq = 0

    def apply_ticks(self, steps: int) -> np.ndarray:
        self.clock.advance_s(steps * STEP_S)
        batch = self.market.advance(self.clock.now, steps)
        return self.prices.apply(batch).changed_ix

    def step(self) -> None:
        rng, channel, pacer, engine = self.rng, self.channel, self.pacer, self.engine
        action = rng.random()
        if action < 0.55:  # a batch of ticks: one step up to seconds of them
            steps = int(rng.choice([1, 3, 20, 200, 2_000]))
            pacer.on_book_changed(self.apply_ticks(steps), self.clock.now)
            pacer.revalue_pending()
        elif action < 0.7:  # time passes; the risk cadence reprices options for it
            self.clock.advance_s(float(rng.choice([1.0, 60.0, 3_600.0, 6 * 3_600.0])))
            now = self.clock.now
            channel.publish(engine.revalue_options(now), now)
        elif action < 0.8:  # staleness flips, with the feed up or down
            is_up = bool(rng.random() < 0.8)
            self.clock.advance_s(float(rng.choice([0.5, 15.0])))
            flipped = self.prices.refresh_staleness(self.clock.now, is_feed_up=is_up)
            pacer.on_book_changed(flipped, self.clock.now)
            pacer.revalue_pending()
        elif action < 0.95:
            fills = [self.fill() for _ in range(int(rng.integers(1, 4)))]
            channel.publish(engine.apply_fills(fills), self.clock.now)
        else:  # the day roll, as gateway.accounts.runtime.Accounts.roll_day does it
            self.prices.roll_close()
            engine.start_day(self.clock.now)
            book = engine.book
            every = PortfolioChange(
                np.arange(book.size_n, dtype=np.int64), np.arange(book.size_p, dtype=np.int64)
            )
            channel.publish(every, self.clock.now)
        self.client.receive()

    def fill(self) -> Fill:
        rng = self.rng
        self.ledger_seq += 1
        book = self.engine.book
        account = book.accounts[int(rng.integers(0, book.size_n))]
        ix = int(rng.integers(0, len(MASTER)))
        return Fill(
            AccountId(account),
            ix,
            float(rng.integers(1, 20)) * float(rng.choice([-1, 1])),
            float(MASTER.ref_price[ix]),
            ledger_seq=self.ledger_seq,
            commission=float(rng.uniform(0, 5)),
        )


@pytest.mark.parametrize("seed", [1, 2])
async def test_rows_a_client_holds_always_sum_to_the_totals_it_was_sent(seed: int) -> None:
    session = Session(seed)

    for _ in range(400):
        session.step()

    session.pacer.close()
    # Every account was checked, many times over.
    assert session.client.updates_checked > 2_000
