// The portfolio of one account: positions, totals, risk and the P&L chart,
// kept from the `portfolio` channel. A snapshot replaces everything; an
// update replaces the rows (by symbol), the totals and the risk it carries
// (docs/protocol.md, "portfolio").

import { amount, clock, integer, nsToMs, percent, price, ratio, setText, signClass } from "./format.js";

const ROW_FIELDS = [
  ["symbol", (r) => r.symbol],
  ["instrument_type", (r) => r.instrument_type],
  ["currency", (r) => r.currency],
  ["quantity", (r) => integer(r.quantity)],
  ["avg_cost", (r) => price(r.avg_cost)],
  ["price", (r) => price(r.price)],
  ["market_value", (r) => amount(r.market_value)],
  ["unrealised_pnl", (r) => amount(r.unrealised_pnl)],
  ["day_pnl", (r) => amount(r.day_pnl)],
  ["realised_pnl", (r) => amount(r.realised_pnl)],
  ["delta", (r) => amount(r.delta)],
  ["gamma", (r) => amount(r.gamma)],
  ["vega", (r) => amount(r.vega)],
  ["theta", (r) => amount(r.theta)],
  ["status", (r) => (r.status === "ok" ? "" : r.status)],
];
const SIGNED = new Set(["unrealised_pnl", "day_pnl", "realised_pnl", "total_pnl"]);

export class PortfolioView {
  constructor(elements, client, chart) {
    this.el = elements;
    this.client = client;
    this.chart = chart;
    this.account = null;
    this.rows = new Map(); // symbol -> {tr, cells}
    this.pending = null; // parts received since the last paint
    this.frameRequested = false;
    this.totalFields = new Map();
    for (const element of elements.totals.querySelectorAll("[data-total]")) {
      this.totalFields.set(element.dataset.total, element);
    }
    client.on("portfolio", (message) => this.onMessage(message));
  }

  // Start showing `account` (null: none); the caller subscribes it.
  show(account) {
    this.account = account;
    this.rows.clear();
    this.el.positions.tBodies[0].replaceChildren();
    this.el.var.tBodies[0].replaceChildren();
    this.el.stress.tBodies[0].replaceChildren();
    this.chart.clear();
    this.pending = null;
    setText(this.el.riskMeta, "");
    this.notice(account === null ? "choose an account" : `subscribing to ${account}\u2026`);
    this.el.root.dataset.account = account ?? "";
    this.el.root.dataset.seq = "";
  }

  notice(text) {
    setText(this.el.notice, text);
  }

  onMessage(message) {
    if (message.key !== undefined && message.key !== this.account) {
      return;
    }
    if (message.type === "snapshot") {
      this.rows.clear();
      this.el.positions.tBodies[0].replaceChildren();
      this.pending = { positions: message.positions, totals: message.totals, risk: message.risk };
      this.currency = message.currency;
      this.notice("");
    } else if (message.type === "update") {
      this.merge(message);
    } else if (message.type === "unsubscribed" && message.id === undefined) {
      if (message.keys.includes(this.account)) {
        this.notice(`the token no longer grants ${this.account}`);
      }
      return;
    } else if (message.type === "error") {
      if (message.keys?.includes(this.account)) {
        this.notice(`${message.code}: ${message.message}`);
      }
      return;
    } else {
      return;
    }
    this.el.root.dataset.seq = String(message.seq);
    if (message.totals !== undefined) {
      this.chart.push(nsToMs(message.totals.as_of), message.totals.total_pnl);
    }
    this.requestFrame();
  }

  merge(update) {
    const pending = this.pending ?? {};
    if (update.positions !== undefined) {
      const bySymbol = new Map((pending.positions ?? []).map((row) => [row.symbol, row]));
      for (const row of update.positions) {
        bySymbol.set(row.symbol, row);
      }
      pending.positions = [...bySymbol.values()];
    }
    if (update.totals !== undefined) {
      pending.totals = update.totals;
    }
    if (update.risk !== undefined) {
      pending.risk = update.risk;
    }
    this.pending = pending;
  }

  requestFrame() {
    if (!this.frameRequested) {
      this.frameRequested = true;
      requestAnimationFrame(() => this.paint());
    }
  }

  paint() {
    this.frameRequested = false;
    const parts = this.pending;
    this.pending = null;
    if (parts === null) {
      return;
    }
    if (parts.positions !== undefined) {
      this.paintRows(parts.positions);
    }
    if (parts.totals !== undefined) {
      this.paintTotals(parts.totals);
    }
    if (parts.risk !== undefined) {
      this.paintRisk(parts.risk);
    }
  }

  paintRows(positions) {
    let added = false;
    for (const position of positions) {
      let row = this.rows.get(position.symbol);
      if (row === undefined) {
        row = makeRow();
        this.rows.set(position.symbol, row);
        added = true;
      }
      for (const [field, format] of ROW_FIELDS) {
        const cell = row.cells[field];
        setText(cell, format(position));
        if (SIGNED.has(field)) {
          cell.className = signClass(position[field]);
        }
      }
      row.tr.dataset.status = position.status;
      row.tr.classList.toggle("closed", position.quantity === 0);
    }
    if (added) {
      const sorted = [...this.rows.entries()].sort(([a], [b]) => a.localeCompare(b));
      this.el.positions.tBodies[0].replaceChildren(...sorted.map(([, row]) => row.tr));
    }
  }

  paintTotals(totals) {
    for (const [field, element] of this.totalFields) {
      const value = totals[field];
      let text;
      if (field === "leverage") {
        text = ratio(value);
      } else if (field === "status") {
        text = value;
      } else if (field === "unpriced_positions" || field === "stale_positions") {
        text = integer(value);
      } else {
        text = amount(value);
      }
      setText(element, text);
      element.dataset.value = value === null ? "" : String(value);
      if (SIGNED.has(field)) {
        element.className = signClass(value);
      }
    }
    setText(this.el.currency, totals.currency);
    this.el.totals.dataset.status = totals.status;
    const flags = [];
    if (totals.unpriced_positions > 0) {
      flags.push(`${totals.unpriced_positions} unpriced, left out of the totals`);
    }
    if (totals.stale_positions > 0) {
      flags.push(`${totals.stale_positions} valued from stale prices`);
    }
    setText(this.el.flags, flags.join(" \u00b7 "));
  }

  paintRisk(risk) {
    if (risk === null) {
      setText(this.el.riskMeta, "no risk run yet");
      return;
    }
    const horizon = `${risk.horizon_days} day${risk.horizon_days === 1 ? "" : "s"}`;
    const status = risk.status === "ok" ? "" : ` \u00b7 ${risk.status.replace("_", " ")}`;
    const excluded = risk.excluded_positions > 0 ? ` \u00b7 ${risk.excluded_positions} excluded` : "";
    const history = risk.days !== undefined ? `${risk.days} days` : `${risk.samples} samples`;
    const intraday = risk.intraday;
    const fast =
      intraday?.status === "ok" && intraday.pnl_volatility !== null
        ? ` \u00b7 intraday P&L volatility ${amount(intraday.pnl_volatility)}`
        : "";
    setText(
      this.el.riskMeta,
      `horizon ${horizon} \u00b7 ${risk.currency} \u00b7 ${history} \u00b7 ` +
        `as of ${clock(nsToMs(risk.as_of))}${status}${excluded}${fast}`,
    );
    this.el.riskMeta.dataset.status = risk.status;
    this.el.var.tBodies[0].replaceChildren(
      ...risk.var.map((entry) =>
        tableRow([methodName(entry), percent(entry.confidence), amount(entry.value)], {
          method: entry.method,
        }),
      ),
    );
    this.el.stress.tBodies[0].replaceChildren(
      ...risk.stress.map((entry) => {
        const tr = tableRow([entry.scenario, amount(entry.pnl)], { scenario: entry.scenario });
        tr.lastChild.className = signClass(entry.pnl);
        return tr;
      }),
    );
  }
}

// The VaR method as the risk report names it, with its parameters (and the
// return basis and option treatment, when the report states them).
export function methodName(entry) {
  const details = [];
  if (entry.method === "parametric") {
    details.push(entry.model === "ewma_sector_factor" ? "EWMA, sector factor" : entry.model);
    details.push(`\u03bb ${entry.lambda}`);
  } else if (entry.method === "historical") {
    details.push(`window ${entry.window}`);
    if (entry.options === "full_revaluation") {
      details.push("full revaluation");
    }
  } else {
    return entry.method;
  }
  if (entry.returns !== undefined) {
    details.push(`${entry.returns} returns`);
  }
  return `${entry.method} (${details.join(", ")})`;
}

function makeRow() {
  const tr = document.createElement("tr");
  const cells = {};
  for (const [field] of ROW_FIELDS) {
    const td = document.createElement("td");
    td.dataset.field = field;
    tr.appendChild(td);
    cells[field] = td;
  }
  return { tr, cells };
}

function tableRow(texts, data) {
  const tr = document.createElement("tr");
  Object.assign(tr.dataset, data);
  for (const text of texts) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.appendChild(td);
  }
  return tr;
}
