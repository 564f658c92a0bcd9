"""The ``portfolio`` channel: an account's positions, totals and risk, pushed live.

Each ``PortfolioChange`` (from a revaluation on ticks, the risk cadence's
option repricing, fills or the day roll) becomes, for each watched account
whose values changed, one ``update`` with the changed position rows and the
new totals, as absolute values. A move of an FX rate also resends the rows
of the watched accounts holding that currency, as their ``fx_rate`` and
status moved. Risk reports arrive on their own cadence as updates carrying
``risk``. The wire form is ``portfoliowire``'s; when the engine revalues is
``pacing``'s.

Only watched accounts are encoded; the seq of the others still advances.
While no account is watched, ticks are not revalued at all: whoever reads
the engine's values first brings them current (``bring_current``, which
the revaluation pacer provides).
Nothing is recorded for recovery: a recovering client gets the account's
latest state as one update (``Topic``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import orjson

from gateway.channels.portfoliowire import PortfolioDelta, PortfolioEncoder
from gateway.clock import Clock
from gateway.ws.channelspecs import PORTFOLIO
from gateway.ws.encoding import encode_body
from gateway.ws.session import Message, Subscribe, Unsubscribe
from gateway.ws.topic import KeyState, Subscriber, Topic
from portfolio.engine import PortfolioChange, PortfolioEngine
from portfolio.riskrun import RiskReport
from pricing.types import I64Array1D

__all__ = ["PortfolioChannel"]


class PortfolioChannel:
    """Fan-out of the portfolio engine to ``portfolio`` subscribers."""

    name = PORTFOLIO

    def __init__(
        self,
        engine: PortfolioEngine,
        encoder: PortfolioEncoder,
        *,
        epoch: str,
        clock: Clock,
    ) -> None:
        self.engine = engine
        self.encoder = encoder
        self.valued_at_ns = clock.now_ns()
        n = engine.book.size_n
        self._seq = np.zeros(n, dtype=np.int64)
        self._is_watched = np.zeros(n, dtype=np.bool_)
        self._watched = 0  # accounts with a live key state
        self._bring_current: Callable[[], None] = _nothing
        self._epoch = epoch
        self.latest_risk: RiskReport | None = None
        self.topic = Topic(
            PORTFOLIO,
            epoch=epoch,
            snapshot=self._snapshot_fields,
            encode=encode_body,
            initial_seq=self._start_watching,
            on_idle=self._stop_watching,
        )

    @property
    def is_watched(self) -> bool:
        """Whether any account has a subscriber."""
        return self._watched > 0

    def set_bring_current(self, bring_current: Callable[[], None]) -> None:
        """Use ``bring_current`` to revalue what is pending before values are read."""
        self._bring_current = bring_current

    def bring_current(self) -> None:
        """Revalue what ticks marked while no account was watched, publishing the changes."""
        self._bring_current()

    # --- Channel ------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber, command: Subscribe) -> None:
        """See ``Channel.subscribe``; the snapshot or recovery shows current values."""
        self._bring_current()
        self.topic.subscribe(subscriber, command)

    def unsubscribe(self, subscriber: Subscriber, command: Unsubscribe) -> None:
        """See ``Channel.unsubscribe``."""
        self.topic.unsubscribe(subscriber, command)

    def remove(self, subscriber: Subscriber) -> None:
        """See ``Channel.remove``."""
        self.topic.remove(subscriber)

    # --- updates ------------------------------------------------------------------

    def publish(self, change: PortfolioChange, now_ns: int) -> None:
        """Advance the changed accounts' seqs; send rows and totals to watched ones."""
        self._grow()
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
            moved = np.zeros(len(book.currencies), dtype=np.bool_)
            moved[change.currencies] = True
            ccy = self.engine.terms.currency_ix[book.pos_instrument[held]]
            base = book.base_ix[book.pos_account[held]]
            hit = held[(moved[ccy] | moved[base]) & (ccy != base)]
            positions = np.union1d(positions, hit)
        rows_of = _group(book.pos_account[positions], positions)
        totals = self.engine.totals(live)
        encoder = self.encoder
        touched: set[Subscriber] = set()
        for i, a in enumerate(live.tolist()):
            st = self.topic.live_state(book.accounts[a])
            assert st is not None  # watched accounts have a live state
            delta = PortfolioDelta(
                encoder.head(st.key, st.seq + 1, self._epoch),
                encoder.rows(rows_of.get(a, ())),
                orjson.dumps(encoder.totals_fields(totals, i, now_ns)),
                None,
            )
            Topic.publish(st, delta)
            touched.update(st.subscribers)
        for subscriber in touched:
            subscriber.flush()

    def publish_risk(self, report: RiskReport) -> None:
        """Keep the report for snapshots and push it to the watched accounts."""
        self._grow()
        self.latest_risk = report
        accounts = report.accounts
        watched = self._is_watched[accounts]
        self._seq[accounts[~watched]] += 1
        touched: set[Subscriber] = set()
        book = self.engine.book
        for i in np.flatnonzero(watched).tolist():
            st = self.topic.live_state(book.accounts[int(accounts[i])])
            assert st is not None
            risk = orjson.dumps(self.encoder.risk_fields(report, i))
            head = self.encoder.head(st.key, st.seq + 1, self._epoch)
            Topic.publish(st, PortfolioDelta(head, {}, None, risk))
            touched.update(st.subscribers)
        for subscriber in touched:
            subscriber.flush()

    def account_fields(self, a: int) -> Message:
        """Everything about account row ``a``: positions, totals and the latest risk.

        The totals' ``as_of`` is when the engine last revalued, not now:
        ticks of the last few milliseconds may still be pending.
        """
        self._bring_current()
        return self.encoder.account_fields(a, as_of_ns=self.valued_at_ns, report=self.latest_risk)

    # --- watched accounts -----------------------------------------------------------

    def _start_watching(self, key: str) -> int:
        a = self.engine.book.account_ix(key)
        self._is_watched[a] = True
        self._watched += 1
        return int(self._seq[a])

    def _stop_watching(self, st: KeyState) -> None:
        a = self.engine.book.account_ix(st.key)
        self._is_watched[a] = False
        self._watched -= 1
        self._seq[a] = st.seq

    def _grow(self) -> None:
        # Accounts that fills added since the last publish get a seq and a flag.
        n = self.engine.book.size_n
        if self._seq.shape[0] < n:
            extra = n - self._seq.shape[0]
            self._seq = np.concatenate([self._seq, np.zeros(extra, dtype=np.int64)])
            self._is_watched = np.concatenate([self._is_watched, np.zeros(extra, dtype=np.bool_)])

    def _snapshot_fields(self, st: KeyState) -> Message:
        return self.account_fields(self.engine.book.account_ix(st.key))


def _group(keys: I64Array1D, items: I64Array1D) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for key, item in zip(keys.tolist(), items.tolist(), strict=True):
        groups.setdefault(key, []).append(item)
    return groups


def _nothing() -> None:
    pass
