"""The ``portfolio`` channel's wire form: position rows, totals, risk, and update deltas.

Rows are in the instrument's currency and totals in the account's base
currency (docs/protocol.md#portfolio). An update of one account is a
``PortfolioDelta``: its changed rows by symbol, the new totals and the new
risk, each optional. Updates that queue up for a lagging client merge per
account (rows by symbol, the latest totals and risk), so conflation never
loses a row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import orjson

from gateway.settings import RiskSettings
from gateway.ws.channelspecs import PORTFOLIO
from gateway.ws.outbox import Delta
from gateway.ws.session import Message
from portfolio.engine import TOTAL_FIELDS, AccountTotals, PortfolioEngine
from portfolio.risk import QUANTILE_METHOD
from portfolio.riskrun import RiskReport
from portfolio.types import Status
from pricing.instruments import InstrumentMaster

__all__ = ["PortfolioDelta", "PortfolioEncoder"]

_STATUS: Final = tuple(s.label for s in Status)


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


class PortfolioEncoder:
    """Encodes the engine's accounts, positions and risk reports for the wire."""

    def __init__(
        self, engine: PortfolioEngine, master: InstrumentMaster, risk: RiskSettings
    ) -> None:
        self.engine = engine
        self._symbols = master.symbols
        self._kinds = tuple(i.type.value for i in master)
        self._currencies = engine.book.currencies
        self._risk = risk

    def head(self, key: str, seq: int, epoch: str) -> bytes:
        """The start of an update body: type, channel, key, seq and epoch."""
        head = {
            "type": "update",
            "channel": PORTFOLIO,
            "key": key,
            "seq": seq,
            "epoch": epoch,
        }
        return orjson.dumps(head)[:-1]

    def rows(self, positions: Sequence[int]) -> dict[str, bytes]:
        """Encoded wire rows of some positions, by symbol."""
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

    def risk_fields(self, report: RiskReport, i: int) -> Message:
        """The wire form of row ``i`` of a risk report."""
        risk = self._risk
        a = int(report.accounts[i])
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

    def account_risk_fields(self, report: RiskReport | None, a: int) -> Message | None:
        """The risk of account row ``a`` in ``report``, if the report covers it."""
        if report is None:
            return None
        i = int(np.searchsorted(report.accounts, a))
        if i >= report.accounts.size or report.accounts[i] != a:
            return None
        return self.risk_fields(report, i)

    def account_fields(self, a: int, *, as_of_ns: int, report: RiskReport | None) -> Message:
        """Everything about account row ``a``: positions, totals (as of ``as_of_ns``) and risk."""
        engine = self.engine
        accounts = np.array([a], dtype=np.int64)
        positions = engine.book.positions_of_accounts(accounts).tolist()
        return {
            "currency": self._currencies[int(engine.book.base_ix[a])],
            "positions": self.position_rows(positions),
            "totals": self.totals_fields(engine.totals(accounts), 0, as_of_ns),
            "risk": self.account_risk_fields(report, a),
        }
