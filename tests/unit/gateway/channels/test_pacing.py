"""The revaluation pacer and the portfolio channel: no revaluation while no account is watched.

Ticks of an unwatched portfolio only mark instruments; whatever reads the
engine's values first (a subscribe, the account endpoint, a fill, a risk
sample) brings them current. A recovering client then gets the latest state.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson

from gateway.channels.pacing import RevaluationPacer
from gateway.channels.portfolio import PortfolioChannel
from gateway.channels.portfoliowire import PortfolioEncoder
from gateway.metrics import Metrics
from gateway.refdata import load_master
from gateway.settings import RiskSettings
from gateway.ws.outbox import Outbox
from gateway.ws.session import Recovery, Subscribe
from portfolio.demo import demo_records
from portfolio.engine import PortfolioChange, PortfolioEngine
from portfolio.fx import FxTable
from portfolio.positions import PositionBook
from portfolio.records import load_records
from portfolio.valuation import InstrumentTerms
from pricing.pricebook import PriceBook
from tests.builders import NS, ManualClock, make_batch

MASTER = load_master(None)
RATES = {"USD": 0.04, "EUR": 0.02, "GBP": 0.04, "JPY": 0.005}
EPOCH = "e"
Message = dict[str, Any]


class Subscriber:
    def __init__(self) -> None:
        self.outbox = Outbox()

    def flush(self) -> None:
        """Frames are taken by ``take``."""

    def take(self) -> list[Message]:
        frame = self.outbox.take_frame(0)
        return [] if frame is None else json.loads(frame)


class CountingEngine(PortfolioEngine):
    """The engine, counting revaluations on ticks."""

    revaluations = 0

    def on_prices_changed(self, changed_ix: np.ndarray, now_ns: int) -> PortfolioChange:
        self.revaluations += 1
        return super().on_prices_changed(changed_ix, now_ns)


class Portfolio:
    def __init__(self, accounts: int) -> None:
        self.clock = ManualClock()
        fx = FxTable(MASTER)
        terms = InstrumentTerms.from_master(MASTER, fx.currencies, RATES)
        book = PositionBook(
            fx.currencies,
            currency_ix=terms.currency_ix,
            multiplier=terms.multiplier,
            is_margined=terms.is_margined,
        )
        load_records(book, demo_records(MASTER, count=accounts, seed=3), MASTER.symbol_index)
        self.prices = PriceBook(MASTER.ref_price, stale_after_ns=10 * NS)
        self.engine = CountingEngine(
            self.prices, book, fx, terms, max_leverage=2.0, now_ns=self.clock.now
        )
        self.channel = PortfolioChannel(
            self.engine,
            PortfolioEncoder(self.engine, MASTER, RiskSettings()),
            epoch=EPOCH,
            clock=self.clock,
        )
        self.pacer = RevaluationPacer(
            self.engine, self.channel, max_loop_share=1.0, clock=self.clock, metrics=Metrics()
        )

    def tick(self, symbol: str, price: float) -> None:
        ix = MASTER.symbol_index[symbol]
        self.clock.advance_s(0.01)
        batch = make_batch([ix], bid=[price], ask=[price], ts_event=self.clock.now)
        self.pacer.on_book_changed(self.prices.apply(batch).changed_ix, self.clock.now)

    def account_holding(self, symbol: str) -> str:
        book = self.engine.book
        rows = book.positions_of_instruments(np.array([MASTER.symbol_index[symbol]]))
        return book.accounts[int(book.pos_account[rows[0]])]


def price_of(message: Message, symbol: str) -> float:
    return next(float(r["price"]) for r in message["positions"] if r["symbol"] == symbol)


async def test_ticks_are_not_revalued_while_no_account_is_watched() -> None:
    portfolio = Portfolio(accounts=20)

    for price in (100.0, 101.0, 102.0):
        portfolio.tick("AAPL", price)

    assert portfolio.engine.revaluations == 0


async def test_ticks_are_not_revalued_without_accounts() -> None:
    portfolio = Portfolio(accounts=0)

    for price in (100.0, 101.0):
        portfolio.tick("AAPL", price)
    portfolio.channel.bring_current()

    assert portfolio.engine.revaluations == 1  # once, when read, not per batch


async def test_a_subscribe_brings_the_marked_ticks_current_in_one_revaluation() -> None:
    portfolio = Portfolio(accounts=20)
    account = portfolio.account_holding("AAPL")
    for price in (100.0, 101.0, 123.0):
        portfolio.tick("AAPL", price)
    subscriber = Subscriber()

    portfolio.channel.subscribe(subscriber, Subscribe("portfolio", (account,), 1, None))
    snapshot = subscriber.take()[1]

    assert portfolio.engine.revaluations == 1
    assert price_of(snapshot, "AAPL") == 123.0
    assert snapshot["seq"] == 1  # the one revaluation advanced the account's seq


async def test_ticks_of_a_watched_account_are_revalued_as_they_come() -> None:
    portfolio = Portfolio(accounts=20)
    account = portfolio.account_holding("AAPL")
    subscriber = Subscriber()
    portfolio.channel.subscribe(subscriber, Subscribe("portfolio", (account,), 1, None))
    subscriber.take()

    portfolio.tick("AAPL", 150.0)
    portfolio.pacer.revalue_pending()  # the step the pacer scheduled

    (update,) = subscriber.take()
    assert (portfolio.engine.revaluations, update["seq"]) == (1, 1)
    assert price_of(update, "AAPL") == 150.0
    portfolio.pacer.close()


async def test_recovery_after_the_last_watcher_left_sends_the_latest_state() -> None:
    portfolio = Portfolio(accounts=20)
    account = portfolio.account_holding("AAPL")
    first = Subscriber()
    portfolio.channel.subscribe(first, Subscribe("portfolio", (account,), 1, None))
    last_seq = first.take()[1]["seq"]
    portfolio.channel.remove(first)  # the connection dropped
    for price in (140.0, 141.0):
        portfolio.tick("AAPL", price)
        portfolio.channel.bring_current()  # a reader each time: two updates
    second = Subscriber()

    recovery = Recovery(EPOCH, {account: last_seq})
    portfolio.channel.subscribe(second, Subscribe("portfolio", (account,), 2, recovery))
    ack, latest = second.take()

    assert ack["recovered"] is True
    assert (latest["type"], latest["seq_from"], latest["seq"]) == ("update", 1, 2)
    assert price_of(latest, "AAPL") == 141.0
    fields = portfolio.channel.account_fields(portfolio.engine.book.account_ix(account))
    assert latest["positions"] == json.loads(orjson.dumps(fields["positions"]))  # every row
    assert {"totals", "risk", "currency"} <= set(latest)
