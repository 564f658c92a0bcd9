// The live quotes grid: the instruments that match the search (at most
// MAX_ROWS, within the per-connection subscription limit), each subscribed
// while shown. Cells flash on a change, rows flag stale quotes, and each
// row's age counts from its last tick.

import { age, nsToMs, price, setText } from "./format.js";

const MAX_ROWS = 100;
const FIELDS = ["bid", "ask", "last", "size"];
const SEARCH_DEBOUNCE_MS = 250;
const AGE_REFRESH_MS = 500;

function now() {
  return performance.timeOrigin + performance.now();
}

export class QuotesGrid {
  constructor({ table, search, count }, client, latency, instruments) {
    this.body = table.tBodies[0];
    this.count = count;
    this.client = client;
    this.latency = latency;
    this.instruments = instruments;
    this.types = new Map(instruments.map((i) => [i.symbol, i.type]));
    this.rows = new Map(); // symbol -> row
    this.dirty = new Set();
    this.frameRequested = false;
    client.on("quotes", (message) => this.onMessage(message));
    let timer = null;
    search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.show(search.value), SEARCH_DEBOUNCE_MS);
    });
    document.addEventListener("visibilitychange", () => this.forgetPendingLatency());
    setInterval(() => this.refreshAges(), AGE_REFRESH_MS);
    this.show(search.value);
  }

  // The symbols to show for `query`: by default the FX pairs, the first
  // futures and the largest equities; else exact, then prefix, then
  // substring matches of the whole master (listed options included).
  matches(query) {
    const q = query.trim().toUpperCase();
    if (q === "") {
      const of = (type, n) => this.instruments.filter((i) => i.type === type).slice(0, n);
      return [...of("equity", 80), ...of("future", 12), ...of("fx", 8)].map((i) => i.symbol);
    }
    const rank = (symbol) => (symbol === q ? 0 : symbol.startsWith(q) ? 1 : 2);
    return this.instruments
      .map((i) => i.symbol)
      .filter((symbol) => symbol.includes(q))
      .sort((a, b) => rank(a) - rank(b))
      .slice(0, MAX_ROWS);
  }

  show(query) {
    const symbols = this.matches(query);
    const next = new Set(symbols);
    const removed = [...this.rows.keys()].filter((symbol) => !next.has(symbol));
    for (const symbol of removed) {
      this.rows.get(symbol).tr.remove();
      this.rows.delete(symbol);
      this.dirty.delete(symbol);
    }
    this.client.unsubscribe("quotes", removed);
    const added = symbols.filter((symbol) => !this.rows.has(symbol));
    for (const symbol of added) {
      this.rows.set(symbol, this.makeRow(symbol));
    }
    const fragment = document.createDocumentFragment();
    for (const symbol of symbols) {
      fragment.appendChild(this.rows.get(symbol).tr);
    }
    this.body.appendChild(fragment);
    this.client.subscribe("quotes", added);
    setText(this.count, `${symbols.length} of ${this.instruments.length} instruments`);
  }

  makeRow(symbol) {
    const tr = document.createElement("tr");
    tr.dataset.symbol = symbol;
    const cells = {};
    for (const field of ["symbol", "type", ...FIELDS, "age", "flag"]) {
      const td = document.createElement("td");
      td.dataset.field = field;
      tr.appendChild(td);
      cells[field] = td;
    }
    cells.symbol.textContent = symbol;
    cells.type.textContent = this.types.get(symbol) ?? "";
    for (const field of [...FIELDS, "age"]) {
      cells[field].textContent = "\u2014";
    }
    return { tr, cells, quote: null, tickAt: null, latencyFrom: null };
  }

  onMessage(message) {
    if (message.type === "snapshot" || message.type === "update") {
      const row = this.rows.get(message.key);
      if (row === undefined) {
        return;
      }
      const receivedAt = now();
      row.quote = message;
      if (message.ts_recv > 0) {
        // The tick's time on this page's clock: when the frame arrived, less
        // how long the gateway held the tick before sending it. Both
        // differences are on one clock each, so clock skew does not enter.
        row.tickAt = receivedAt - nsToMs(message.ts_sent - message.ts_recv);
        if (message.type === "update" && document.visibilityState === "visible") {
          row.latencyFrom = nsToMs(message.ts_recv);
        }
      }
      this.dirty.add(message.key);
      this.requestFrame();
    } else if (message.type === "error" && message.keys !== undefined) {
      for (const key of message.keys) {
        this.rows.get(key)?.tr.classList.add("refused");
      }
    }
  }

  requestFrame() {
    if (!this.frameRequested) {
      this.frameRequested = true;
      requestAnimationFrame(() => this.paint());
    }
  }

  // One DOM pass per animation frame, however many updates came in between.
  paint() {
    this.frameRequested = false;
    const paintedAt = now();
    for (const symbol of this.dirty) {
      const row = this.rows.get(symbol);
      if (row !== undefined) {
        this.paintRow(row);
        if (row.latencyFrom !== null) {
          this.latency.record(paintedAt - row.latencyFrom);
          row.latencyFrom = null;
        }
      }
    }
    this.dirty.clear();
  }

  paintRow(row) {
    const quote = row.quote;
    for (const field of FIELDS) {
      const cell = row.cells[field];
      const value = quote[field];
      const before = cell.dataset.value === undefined ? null : Number(cell.dataset.value);
      if (value === before) {
        continue;
      }
      cell.textContent = price(value);
      if (value === null) {
        delete cell.dataset.value;
        continue;
      }
      cell.dataset.value = String(value);
      if (before !== null && field !== "size") {
        // Two animation names per direction: switching between them restarts
        // the flash without forcing a layout.
        const direction = value > before ? "up" : "down";
        const phase = cell.dataset.flash === `${direction}-a` ? "b" : "a";
        cell.dataset.flash = `${direction}-${phase}`;
      }
    }
    row.tr.classList.toggle("stale", quote.stale);
    setText(row.cells.flag, quote.stale ? "stale" : "");
  }

  refreshAges() {
    const t = now();
    for (const row of this.rows.values()) {
      setText(row.cells.age, row.tickAt === null ? "\u2014" : age(t - row.tickAt));
    }
  }

  forgetPendingLatency() {
    // Frames are not painted while the page is hidden: a sample taken across
    // that pause would measure the pause.
    for (const row of this.rows.values()) {
      row.latencyFrom = null;
    }
  }
}
