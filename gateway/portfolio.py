"""The ``portfolio`` channel: an account's positions, totals and risk, pushed live.

Tick batches mark the instruments they changed; the engine revalues them
(``PortfolioEngine``) in the next loop step, and each watched account whose
values changed gets one ``update`` with the changed position rows and the
new totals, as absolute values. Revaluation takes at most
``max_loop_share`` of the event loop: after one that took ``t`` the next
waits ``t x (1 - share) / share``, and every batch of the meantime is
revalued in one go. Values are absolute, so nothing is lost, and under a
tick storm the portfolio refresh rate drops instead of the quote latency
growing. A move of an FX rate also resends the rows of the watched accounts
holding that currency, as their ``fx_rate`` and status moved. Risk reports arrive on their own
cadence as updates carrying ``risk``. Updates that queue up for a lagging
client merge per account (rows by symbol, the latest totals and risk), so
conflation never loses a row.

Only watched accounts are encoded; the seq of the others still advances, and
their recovery history is dropped while nobody watches (``Topic``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Final

import numpy as np
import orjson

from gateway.channels import PORTFOLIO
from gateway.clock import Clock
from gateway.fanout import KeyState, Subscriber, Topic
from gateway.metrics import Metrics
from gateway.outbox import Delta
from gateway.session import Message, Subscribe, Unsubscribe
from gateway.settings import RiskSettings
from portfolio.engine import TOTAL_FIELDS, AccountTotals, PortfolioChange, PortfolioEngine
from portfolio.risk import QUANTILE_METHOD
from portfolio.riskrun import RiskReport
from portfolio.types import Fill, Status
from pricing.instruments import InstrumentMaster
from pricing.types import I64Array1D

__all__ = ["PortfolioChannel", "PortfolioDelta", "seconds_until_utc"]

_DAY_S: Final = 86_400


def seconds_until_utc(minute_of_day: int, now_ns: int) -> float:
    """Seconds from ``now_ns`` to the next ``minute_of_day`` (UTC), in (0, 1 day]."""
    now_s = now_ns / 1e9
    wait = (minute_of_day * 60 - now_s) % _DAY_S
    return wait if wait > 0 else float(_DAY_S)


_STATUS: Final = tuple(s.label for s in Status)

logger = logging.getLogger(__name__)


class PortfolioDelta:
    """An update of one account: rows by symbol, totals and risk, each optional."""

    __slots__ = ("_body", "head", "risk", "rows", "totals")

    def __init__(
        self, head: bytes, rows: dict[str, bytes], totals: bytes | None, risk: bytes | None
    ) -> None:
        self.head = head
        self.rows = rows
        self.totals = totals
        self.risk = risk
        self._body: bytes | None = None

    def merged_with(self, newer: Delta) -> PortfolioDelta:
        """Rows of both (the newer wins per symbol), the newer totals and risk."""
        assert isinstance(newer, PortfolioDelta)
        return PortfolioDelta(
            newer.head,
            {**self.rows, **newer.rows},
            newer.totals if newer.totals is not None else self.totals,
            newer.risk if newer.risk is not None else self.risk,
        )

    def body(self) -> bytes:
        """The update's JSON body, without its closing brace."""
        if self._body is None:
            parts = [self.head]
            if self.rows:
                parts += [b',"positions":[', b",".join(self.rows.values()), b"]"]
            if self.totals is not None:
                parts += [b',"totals":', self.totals]
            if self.risk is not None:
                parts += [b',"risk":', self.risk]
            self._body = b"".join(parts)
        return self._body


class PortfolioChannel:
    """Fan-out of the portfolio engine to ``portfolio`` subscribers."""

    name = PORTFOLIO

    def __init__(
        self,
        engine: PortfolioEngine,
        master: InstrumentMaster,
        *,
        epoch: str,
        history: int,
        risk: RiskSettings,
        clock: Clock,
        metrics: Metrics,
        max_loop_share: float = 0.5,
    ) -> None:
        self.engine = engine
        self._clock = clock
        self._pause_factor = (1.0 - max_loop_share) / max_loop_share
        self._pending = np.zeros(engine.terms.multiplier.shape[0], dtype=np.bool_)
        self._scheduled: asyncio.TimerHandle | None = None
        self.valued_at_ns = clock.now_ns()
        self._not_before = 0.0
        self.revaluation_seconds = metrics.histogram(
            "portfolio_revaluation_seconds",
            "Time of one revaluation on ticks (the batches since the last one).",
            (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
        )
        self._symbols = master.symbols
        self._kinds = tuple(i.type.value for i in master)
        self._currencies = engine.book.currencies
        self._risk = risk
        n = engine.book.size_n
        self._seq = np.zeros(n, dtype=np.int64)
        self._is_watched = np.zeros(n, dtype=np.bool_)
        self._epoch = epoch
        self.latest_risk: RiskReport | None = None
        self.topic = Topic(
            PORTFOLIO,
            epoch=epoch,
            history=history,
            snapshot=self._snapshot_fields,
            initial_seq=self._start_watching,
            on_idle=self._stop_watching,
        )

    # --- Channel ------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber, command: Subscribe) -> None:
        """See ``Channel.subscribe``."""
        self.topic.subscribe(subscriber, command)

    def unsubscribe(self, subscriber: Subscriber, command: Unsubscribe) -> None:
        """See ``Channel.unsubscribe``."""
        self.topic.unsubscribe(subscriber, command)

    def remove(self, subscriber: Subscriber) -> None:
        """See ``Channel.remove``."""
        self.topic.remove(subscriber)

    # --- updates ------------------------------------------------------------------

    def on_book_changed(self, changed_ix: I64Array1D, now_ns: int) -> None:
        """Mark what the batch touched; it is revalued in a later loop step."""
        self._pending[changed_ix] = True
        if self._scheduled is None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, self._not_before - loop.time())
            self._scheduled = loop.call_later(delay, self.revalue_pending)

    def revalue_pending(self) -> None:
        """Revalue every instrument marked since the last time and push the accounts."""
        self._scheduled = None
        changed = np.flatnonzero(self._pending).astype(np.int64)
        if changed.size == 0:
            return
        self._pending[changed] = False
        started = time.perf_counter()
        now_ns = self._clock.now_ns()
        try:
            self.publish(self.engine.on_prices_changed(changed, now_ns), now_ns)
        except Exception:
            # A loop callback: nothing above would log it. The next
            # revaluation (or the day roll's) recomputes these instruments.
            logger.exception("portfolio revaluation of %d instruments failed", changed.size)
        took = time.perf_counter() - started
        self.revaluation_seconds.observe(took)
        self._not_before = asyncio.get_running_loop().time() + took * self._pause_factor

    def roll_day(self, now_ns: int) -> None:
        """Start a new trading day and push every watched account.

        Current mids become the previous closes, today's opening quantities
        the current ones; day P&L starts again from zero.
        """
        self.engine.prices.roll_close()
        self.engine.start_day(now_ns)
        book = self.engine.book
        every = PortfolioChange(
            np.arange(book.size_n, dtype=np.int64), np.arange(book.size_p, dtype=np.int64)
        )
        self.publish(every, now_ns)

    async def run_day_rolls(
        self, minute_of_day: int, on_roll: Callable[[], None] = lambda: None
    ) -> None:
        """Roll the day every day at ``minute_of_day`` (UTC), then call ``on_roll``."""
        while True:
            await asyncio.sleep(seconds_until_utc(minute_of_day, self._clock.now_ns()))
            self.roll_day(self._clock.now_ns())
            on_roll()
            await asyncio.sleep(60)  # past the minute, even if the timer fired early

    def close(self) -> None:
        """Drop a scheduled revaluation (at shutdown)."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None

    def apply_fills(self, fills: list[Fill], now_ns: int) -> PortfolioChange:
        """Apply fills to the engine and push the accounts they changed."""
        change = self.engine.apply_fills(fills)
        self._grow()
        self.publish(change, now_ns)
        return change

    def publish(self, change: PortfolioChange, now_ns: int) -> None:
        """Advance the changed accounts' seqs; send rows and totals to watched ones."""
        self.valued_at_ns = max(self.valued_at_ns, now_ns)
        accounts = change.accounts
        if accounts.size == 0:
            return
        watched = self._is_watched[accounts]
        self._seq[accounts[~watched]] += 1
        live = accounts[watched]
        if live.size == 0:
            return
        book = self.engine.book
        positions = change.positions[self._is_watched[book.pos_account[change.positions]]]
        if change.currencies.size:
            # Rows whose rate to the base moved: their fx_rate and status did.
            held = book.positions_of_accounts(np.sort(live))
            moved = np.zeros(len(self._currencies), dtype=np.bool_)
            moved[change.currencies] = True
            ccy = self.engine.terms.currency_ix[book.pos_instrument[held]]
            base = book.base_ix[book.pos_account[held]]
            hit = held[(moved[ccy] | moved[base]) & (ccy != base)]
            positions = np.union1d(positions, hit)
        rows_of = _group(book.pos_account[positions], positions)
        totals = self.engine.totals(live)
        touched: set[Subscriber] = set()
        for i, a in enumerate(live.tolist()):
            st = self.topic.live_state(book.accounts[a])
            assert st is not None  # watched accounts have a live state
            delta = PortfolioDelta(
                self._head(st),
                self._rows(rows_of.get(a, ())),
                orjson.dumps(self.totals_fields(totals, i, now_ns)),
                None,
            )
            Topic.publish(st, delta)
            touched.update(st.subscribers)
        for subscriber in touched:
            subscriber.flush()

    def publish_risk(self, report: RiskReport) -> None:
        """Keep the report for snapshots and push it to the watched accounts."""
        self.latest_risk = report
        accounts = report.accounts
        watched = self._is_watched[accounts]
        self._seq[accounts[~watched]] += 1
        touched: set[Subscriber] = set()
        book = self.engine.book
        for i in np.flatnonzero(watched).tolist():
            st = self.topic.live_state(book.accounts[int(accounts[i])])
            assert st is not None
            risk = orjson.dumps(self._risk_fields(report, i))
            Topic.publish(st, PortfolioDelta(self._head(st), {}, None, risk))
            touched.update(st.subscribers)
        for subscriber in touched:
            subscriber.flush()

    # --- encoding -------------------------------------------------------------------

    def _start_watching(self, key: str) -> int:
        a = self.engine.book.account_ix(key)
        self._is_watched[a] = True
        return int(self._seq[a])

    def _stop_watching(self, st: KeyState) -> None:
        a = self.engine.book.account_ix(st.key)
        self._is_watched[a] = False
        self._seq[a] = st.seq

    def _grow(self) -> None:
        n = self.engine.book.size_n
        if self._seq.shape[0] < n:
            extra = n - self._seq.shape[0]
            self._seq = np.concatenate([self._seq, np.zeros(extra, dtype=np.int64)])
            self._is_watched = np.concatenate([self._is_watched, np.zeros(extra, dtype=np.bool_)])

    def _head(self, st: KeyState) -> bytes:
        head = {
            "type": "update",
            "channel": PORTFOLIO,
            "key": st.key,
            "seq": st.seq + 1,
            "epoch": self._epoch,
        }
        return orjson.dumps(head)[:-1]

    def _rows(self, positions: Sequence[int]) -> dict[str, bytes]:
        return {str(row["symbol"]): orjson.dumps(row) for row in self.position_rows(positions)}

    def position_rows(self, positions: Sequence[int]) -> list[Message]:
        """The wire rows of some positions (instrument currency, see docs/protocol.md)."""
        if not positions:
            return []
        engine, book = self.engine, self.engine.book
        p = np.asarray(positions, dtype=np.int64)
        ix = book.pos_instrument[p]
        values = engine.position_values(p)
        columns = {
            "quantity": book.column("quantity")[p],
            "avg_cost": book.column("avg_cost")[p],
            "price": values.mark,
            "market_value": values.market_value,
            "unrealised_pnl": values.unrealised_pnl,
            "realised_pnl": book.column("realised_pnl")[p],
            "day_pnl": values.day_pnl,
            "commission": book.column("commission")[p],
            "exposure": values.exposure,
            "delta": values.delta,
            "gamma": values.gamma,
            "vega": values.vega,
            "theta": values.theta,
            "rho": values.rho,
            "fx_rate": engine.fx_to_base(p)[0],
        }
        lists = {name: column.tolist() for name, column in columns.items()}
        status = engine.position_status(p).tolist()
        currency = engine.terms.currency_ix[ix].tolist()
        rows = []
        for j, i in enumerate(ix.tolist()):
            row: Message = {
                "symbol": self._symbols[i],
                "instrument_type": self._kinds[i],
                "currency": self._currencies[currency[j]],
            }
            for name, values_list in lists.items():
                row[name] = values_list[j]
            row["status"] = _STATUS[status[j]]
            rows.append(row)
        return rows

    def totals_fields(self, totals: AccountTotals, i: int, now_ns: int) -> Message:
        """The wire form of row ``i`` of some accounts' totals (base currency)."""
        fields: Message = dict(zip(TOTAL_FIELDS, totals.values[i].tolist(), strict=True))
        fields["currency"] = self._currencies[int(totals.base_ix[i])]
        fields["status"] = _STATUS[int(totals.status[i])]
        fields["unpriced_positions"] = int(totals.unpriced[i])
        fields["stale_positions"] = int(totals.stale[i])
        fields["as_of"] = now_ns
        return fields

    def risk_report_fields(self, report: RiskReport, i: int) -> Message:
        """The wire form of row ``i`` of a risk report."""
        return self._risk_fields(report, i)

    def _risk_fields(self, report: RiskReport, i: int) -> Message:
        a = int(report.accounts[i])
        risk = self._risk
        var: list[Message] = []
        for c, confidence in enumerate(report.confidences):
            var.append(
                {
                    "method": "parametric",
                    "model": "ewma_sector_factor",
                    "returns": "daily",
                    "lambda": risk.ewma_lambda,
                    "confidence": confidence,
                    "value": float(report.parametric[i, c]),
                }
            )
        for c, confidence in enumerate(report.confidences):
            var.append(
                {
                    "method": "historical",
                    "returns": "daily",
                    "window": risk.window,
                    "scenarios": report.scenario_count,
                    "quantile": QUANTILE_METHOD,
                    "options": "full_revaluation",
                    "confidence": confidence,
                    "value": float(report.historical[i, c]),
                }
            )
        intraday = float(report.intraday_volatility[i])
        daily = float(report.daily_volatility[i])
        return {
            "as_of": report.as_of_ns,
            "currency": self._currencies[int(self.engine.book.base_ix[a])],
            "horizon_days": risk.horizon_days,
            "status": "ok" if report.is_ready else "warming_up",
            "days": report.days,
            "excluded_positions": int(report.excluded[i]),
            "var": var,
            "intraday": {
                "measure": "realised_volatility",
                "model": "ewma_sector_factor",
                "sample_interval_ms": risk.interval_ms,
                "half_life_s": risk.intraday_half_life_s,
                "status": "ok" if report.intraday_ready else "warming_up",
                "samples": report.intraday_samples,
                "pnl_volatility": intraday,
                "ratio_to_daily": intraday / daily if daily > 0 else math.nan,
            },
            "stress": [
                {"scenario": name, "pnl": float(report.stress[i, z])}
                for z, name in enumerate(report.scenarios)
            ],
        }

    def risk_fields(self, a: int) -> Message | None:
        """The latest risk of account row ``a``, if a report covers it."""
        report = self.latest_risk
        if report is None:
            return None
        i = int(np.searchsorted(report.accounts, a))
        if i >= report.accounts.size or report.accounts[i] != a:
            return None
        return self._risk_fields(report, i)

    def _snapshot_fields(self, st: KeyState) -> Message:
        engine = self.engine
        a = engine.book.account_ix(st.key)
        return self.account_fields(a)

    def account_fields(self, a: int) -> Message:
        """Everything about account row ``a``: positions, totals and the latest risk.

        The totals' ``as_of`` is when the engine last revalued, not now:
        ticks of the last few milliseconds may still be pending.
        """
        now_ns = self.valued_at_ns
        engine = self.engine
        accounts = np.array([a], dtype=np.int64)
        positions = engine.book.positions_of_accounts(accounts).tolist()
        return {
            "currency": self._currencies[int(engine.book.base_ix[a])],
            "positions": self.position_rows(positions),
            "totals": self.totals_fields(engine.totals(accounts), 0, now_ns),
            "risk": self.risk_fields(a),
        }


def _group(keys: I64Array1D, items: I64Array1D) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for key, item in zip(keys.tolist(), items.tolist(), strict=True):
        groups.setdefault(key, []).append(item)
    return groups
