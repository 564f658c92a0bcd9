// The orders and fills blotter of one account, fed by the lossless `orders`
// channel (docs/protocol.md, "orders"): its snapshot (the open orders), then
// every event in order: `order` (an order's whole state), `fill`, `payment`.
//
// Events are never conflated, so a gap is a loss the page must repair, not
// skip. The client resubscribes a key on a gap (and after a reconnect whose
// recovery the server could not serve); either way a fresh snapshot comes,
// and a snapshot brings only the open orders. So on every snapshot after
// the first, the blotter re-reads what it may have missed through the
// order API (GET /v1/orders?account_id=, newest first, page by page back to
// a minute before the last event it saw; GET /v1/orders/{id} for orders it
// knew open that are no longer; GET /v1/payments/{id} for payments it knew
// unsettled), and
// marks the gap in the activity list: fills that happened in it cannot be
// re-read one by one (the API has no fills route), but each order's filled
// quantity and average price are the ledger's. An order's state only moves
// forward (accepted < reserved < partially filled by quantity < final), so
// a re-read answer and a live event can arrive in either order. Every
// event carries `event_id`; a repeat (after a server restart) is dropped.

import { clock, nsToMs, setText } from "./format.js";

const STATUS_RANK = {
  accepted: 0,
  reserved: 1,
  partially_filled: 2,
  filled: 3,
  rejected: 3,
  cancelled: 3,
  expired: 3,
};
const FINAL_PAYMENT = new Set(["settled", "rejected"]);
const HISTORY_PAGE = 50; // orders read when the page first subscribes
const RECOVERY_PAGE = 200; // the API's largest page
const MAX_RECOVERY_PAGES = 10;
// Orders reach the ledger a little after the API accepts them: the re-read
// goes back this far before the last event the page saw.
const ACCEPT_LAG_MS = 60_000;
const SHOWN_ROWS = 200;
const KEPT_EVENT_IDS = 4096;
const RETRY_DELAYS_MS = [1_000, 2_000, 4_000];

// An order as the blotter keeps it, from the channel (`order_type`,
// `ts_accepted` in ns) or from the API (`type`, `accepted_at` in RFC 3339).
export function normalOrder(order) {
  return {
    order_id: order.order_id,
    symbol: order.symbol,
    side: order.side,
    quantity: order.quantity,
    type: order.order_type ?? order.type,
    limit_price: order.limit_price ?? null,
    time_in_force: order.time_in_force,
    status: order.status,
    filled_quantity: order.filled_quantity ?? "0",
    average_price: order.average_price ?? null,
    reason: order.reason ?? null,
    acceptedMs:
      order.ts_accepted !== undefined ? nsToMs(order.ts_accepted) : rfc3339Ms(order.accepted_at),
    updatedMs:
      order.ts_event !== undefined
        ? nsToMs(order.ts_event)
        : rfc3339Ms(order.updated_at ?? order.accepted_at),
  };
}

// An RFC 3339 time with nine fraction digits, as milliseconds since the epoch
// (Date.parse is only specified for three).
export function rfc3339Ms(text) {
  return Date.parse(text.replace(/(\.\d{3})\d+/, "$1"));
}

// Whether `candidate` is a later state of the order than `known`.
export function isLater(candidate, known) {
  const a = STATUS_RANK[candidate.status] ?? 0;
  const b = STATUS_RANK[known.status] ?? 0;
  if (a !== b) {
    return a > b;
  }
  return Number(candidate.filled_quantity) > Number(known.filled_quantity);
}

// The blotter's model of one account: no DOM, no network.
export class BlotterState {
  constructor(account) {
    this.account = account;
    this.orders = new Map(); // order_id -> normal order (+ reread: true when a re-read moved it)
    this.activity = []; // fills, payments and gap marks, oldest first
    this.payments = new Map(); // payment_id -> its activity entry
    this.eventIds = new Set();
    this.snapshots = 0;
    this.lastSeenMs = null; // the time of the latest event or snapshot
  }

  // Returns the ids of the orders it held as open that the snapshot lacks
  // (they ended while the page was not listening).
  applySnapshot(message) {
    this.snapshots += 1;
    const open = new Set();
    for (const order of message.orders ?? []) {
      open.add(order.order_id);
      this.mergeOrder(normalOrder(order));
    }
    const ended = [];
    for (const [id, order] of this.orders) {
      if ((STATUS_RANK[order.status] ?? 0) < 3 && !open.has(id)) {
        ended.push(id);
      }
    }
    this.seen(message.ts_sent);
    return ended;
  }

  // Apply one event; false for a repeat.
  applyUpdate(message) {
    if (message.event_id !== undefined) {
      if (this.eventIds.has(message.event_id)) {
        return false;
      }
      this.eventIds.add(message.event_id);
      if (this.eventIds.size > KEPT_EVENT_IDS) {
        this.eventIds.delete(this.eventIds.values().next().value);
      }
    }
    this.seen(message.ts_event ?? message.ts_sent);
    if (message.event === "order") {
      this.mergeOrder({ ...normalOrder(message), cause: message.cause ?? null });
    } else if (message.event === "fill") {
      this.activity.push({
        kind: "fill",
        id: message.fill_id,
        order_id: message.order_id,
        symbol: message.symbol,
        side: message.side,
        quantity: message.quantity,
        price: message.price,
        fee: message.fee,
        currency: message.currency,
        realised_pnl: message.realised_pnl,
        atMs: nsToMs(message.ts_event),
      });
    } else if (message.event === "payment") {
      this.mergePayment(message, nsToMs(message.ts_event));
    }
    return true;
  }

  // Keep `order` if it is new or later than what is held; true if it changed.
  mergeOrder(order, { reread = false } = {}) {
    const known = this.orders.get(order.order_id);
    if (known !== undefined && !isLater(order, known)) {
      return false;
    }
    this.orders.set(order.order_id, {
      ...order,
      cause: order.cause ?? null,
      reread: reread && known !== undefined,
    });
    return true;
  }

  mergePayment(payment, atMs) {
    const known = this.payments.get(payment.payment_id);
    if (known !== undefined) {
      if (FINAL_PAYMENT.has(known.status)) {
        return false;
      }
      known.status = payment.status;
      known.reason = payment.reason ?? null;
      return true;
    }
    const entry = {
      kind: "payment",
      id: payment.payment_id,
      payment_kind: payment.kind,
      amount: payment.amount,
      currency: payment.currency,
      status: payment.status,
      reason: payment.reason ?? null,
      atMs,
    };
    this.payments.set(payment.payment_id, entry);
    this.activity.push(entry);
    return true;
  }

  // A gap the blotter repaired by a re-read (or could not).
  mark(entry) {
    this.activity.push({ kind: "gap", ...entry });
  }

  seen(tsNs) {
    if (typeof tsNs === "number") {
      const ms = nsToMs(tsNs);
      this.lastSeenMs = this.lastSeenMs === null ? ms : Math.max(this.lastSeenMs, ms);
    }
  }

  unsettledPayments() {
    return [...this.payments.values()].filter((p) => !FINAL_PAYMENT.has(p.status)).map((p) => p.id);
  }
}

export class Blotter {
  // api: an OrderApi (demo mode), or null when the page cannot reach the API.
  constructor(elements, client, api, options = {}) {
    const { setTimeout = (fn, ms) => globalThis.setTimeout(fn, ms) } = options;
    this.el = elements;
    this.api = api;
    this.setTimeout = setTimeout;
    this.state = null;
    this.recovered = 0;
    this.rereads = 0;
    this.running = null; // the re-read in progress (a promise)
    this.queued = null; // the re-read asked while one ran
    this.frameRequested = false;
    client.on("orders", (message) => this.onMessage(message));
  }

  get account() {
    return this.state?.account ?? null;
  }

  // Start showing `account` (null: none); the caller subscribes it.
  show(account) {
    this.state = account === null ? null : new BlotterState(account);
    this.queued = null;
    this.el.root.dataset.account = account ?? "";
    this.el.root.dataset.seq = "";
    this.notice(account === null ? "" : `subscribing to ${account}\u2026`);
    this.paint();
  }

  notice(text) {
    setText(this.el.notice, text);
  }

  onMessage(message) {
    const state = this.state;
    if (state === null) {
      return;
    }
    if (message.type === "snapshot" && message.key === state.account) {
      const isRecovery = state.snapshots > 0;
      const sinceMs = state.lastSeenMs;
      const ended = state.applySnapshot(message);
      this.el.root.dataset.seq = String(message.seq);
      this.notice("");
      this.reread({ isRecovery, sinceMs, untilMs: nsToMs(message.ts_sent), ended });
    } else if (message.type === "update" && message.key === state.account) {
      state.applyUpdate(message);
      this.el.root.dataset.seq = String(message.seq);
    } else if (message.type === "subscribed" && message.recovered === true) {
      if (message.keys.includes(state.account)) {
        this.recovered += 1;
        this.el.root.dataset.recovered = String(this.recovered);
      }
      return;
    } else if (message.type === "error" && message.keys?.includes(state.account)) {
      this.notice(`${message.code}: ${message.message}`);
      return;
    } else {
      return;
    }
    this.requestFrame();
  }

  // --- re-reading what a snapshot does not show ----------------------------

  reread(request) {
    if (this.running !== null) {
      // One at a time; a later snapshot widens the pending one.
      const queued = this.queued;
      this.queued =
        queued === null
          ? request
          : {
              isRecovery: queued.isRecovery || request.isRecovery,
              sinceMs: queued.sinceMs ?? request.sinceMs,
              untilMs: request.untilMs,
              ended: [...queued.ended, ...request.ended],
            };
      return;
    }
    this.running = this.rereadWithRetries(this.state, request).finally(() => {
      this.running = null;
      const next = this.queued;
      this.queued = null;
      if (next !== null && this.state !== null) {
        this.reread(next);
      }
    });
  }

  async rereadWithRetries(state, request) {
    if (this.api === null) {
      if (request.isRecovery) {
        state.mark({
          fromMs: request.sinceMs,
          toMs: request.untilMs,
          text: "events missed; the order API cannot be reached from this page outside demo mode",
          failed: true,
        });
        this.requestFrame();
      }
      return;
    }
    for (let attempt = 0; ; attempt += 1) {
      try {
        const result = await this.rereadOnce(state, request);
        if (state !== this.state) {
          return;
        }
        this.rereads += 1;
        this.el.root.dataset.rereads = String(this.rereads);
        if (request.isRecovery) {
          state.mark({
            fromMs: request.sinceMs,
            toMs: request.untilMs,
            text: recoveryText(result),
            failed: false,
          });
        }
        this.notice("");
        this.requestFrame();
        return;
      } catch (e) {
        if (state !== this.state) {
          return;
        }
        if (attempt >= RETRY_DELAYS_MS.length) {
          const what = request.isRecovery
            ? "events missed; re-reading them failed"
            : "recent orders could not be read";
          state.mark({
            fromMs: request.sinceMs,
            toMs: request.untilMs,
            text: `${what}: ${e.message}`,
            failed: true,
          });
          this.notice(`${what}: ${e.message}`);
          this.requestFrame();
          return;
        }
        this.notice(`re-reading orders failed (${e.message}); trying again`);
        await new Promise((resolve) => this.setTimeout(resolve, RETRY_DELAYS_MS[attempt]));
        if (state !== this.state) {
          return;
        }
      }
    }
  }

  // Read the account's orders back to `sinceMs` (one page of history on the
  // first snapshot), then the orders and payments it knew unfinished.
  async rereadOnce(state, { isRecovery, sinceMs, ended }) {
    const doing = isRecovery ? "re-reading what the snapshot lacks" : "reading recent orders";
    this.notice(`${doing}\u2026`);
    // moved: orders the page knew whose state moved on; fresh: orders accepted
    // since the gap began that it did not know. Older unknown orders are history.
    const result = { read: 0, moved: 0, fresh: 0, pages: 0, truncated: false };
    const learn = (order) => {
      result.read += 1;
      const normal = normalOrder(order);
      const isKnown = state.orders.has(normal.order_id);
      if (state.mergeOrder(normal, { reread: isRecovery })) {
        if (isKnown) {
          result.moved += 1;
        } else if (sinceMs === null || normal.acceptedMs >= sinceMs - ACCEPT_LAG_MS) {
          result.fresh += 1;
        }
      }
    };
    let cursor = null;
    for (;;) {
      const page = await this.api.listOrders(state.account, {
        cursor,
        limit: isRecovery ? RECOVERY_PAGE : HISTORY_PAGE,
      });
      result.pages += 1;
      page.data.forEach(learn);
      cursor = page.next_cursor;
      // Newest first: a page that reaches back before the gap is the last one.
      const oldest = page.data.at(-1);
      const reachedGap =
        sinceMs === null ||
        (oldest !== undefined && rfc3339Ms(oldest.accepted_at) < sinceMs - ACCEPT_LAG_MS);
      if (!isRecovery || cursor === null || reachedGap) {
        break;
      }
      if (result.pages >= MAX_RECOVERY_PAGES) {
        result.truncated = true;
        break;
      }
    }
    for (const id of ended) {
      const known = state.orders.get(id);
      if (known !== undefined && (STATUS_RANK[known.status] ?? 0) < 3) {
        learn(await this.api.getOrder(id));
      }
    }
    for (const id of state.unsettledPayments()) {
      const payment = await this.api.getPayment(id);
      state.mergePayment(payment, null);
    }
    return result;
  }

  // --- painting ------------------------------------------------------------

  requestFrame() {
    if (!this.frameRequested) {
      this.frameRequested = true;
      requestAnimationFrame(() => {
        this.frameRequested = false;
        this.paint();
      });
    }
  }

  paint() {
    const state = this.state;
    // The latest change first: an old resting order that just filled comes to the top.
    const orders = state === null ? [] : [...state.orders.values()];
    orders.sort((a, b) => b.updatedMs - a.updatedMs);
    this.el.orders.tBodies[0].replaceChildren(...orders.slice(0, SHOWN_ROWS).map(orderRow));
    const activity = state === null ? [] : state.activity.slice(-SHOWN_ROWS).reverse();
    this.el.activity.tBodies[0].replaceChildren(...activity.map(activityRow));
    const open = orders.filter((o) => (STATUS_RANK[o.status] ?? 0) < 3).length;
    setText(this.el.count, state === null ? "" : `${open} open \u00b7 ${orders.length} shown`);
  }
}

function recoveryText({ read, moved, fresh, pages, truncated }) {
  const more = truncated ? ` (stopped after ${pages} pages: older orders were not re-read)` : "";
  return (
    `events missed: ${read} order${read === 1 ? "" : "s"} re-read from GET /v1/orders, ` +
    `${moved} moved on, ${fresh} new${more}; fills in this gap are counted in the orders' ` +
    "filled quantities, not listed one by one"
  );
}

const ORDER_CELLS = [
  ["time", (o) => clock(o.updatedMs)],
  ["symbol", (o) => o.symbol],
  ["side", (o) => o.side],
  ["quantity", (o) => o.quantity],
  ["type", (o) => (o.type === "limit" ? `limit ${o.limit_price}` : o.type)],
  ["time_in_force", (o) => o.time_in_force],
  ["status", (o) => o.status.replace("_", " ") + (o.reason === null ? "" : ` (${o.reason})`)],
  ["filled_quantity", (o) => o.filled_quantity],
  ["average_price", (o) => o.average_price ?? "\u2014"],
];

function orderRow(order) {
  const tr = row(ORDER_CELLS.map(([field, text]) => [field, text(order)]));
  tr.dataset.orderId = order.order_id;
  tr.dataset.status = order.status;
  tr.dataset.side = order.side;
  if (order.reread) {
    tr.dataset.reread = "true";
    tr.title = "state re-read from GET /v1/orders after a gap";
  }
  return tr;
}

function activityRow(entry) {
  let tr;
  if (entry.kind === "fill") {
    tr = row([
      ["time", clock(entry.atMs)],
      ["what", "fill"],
      ["symbol", entry.symbol],
      ["side", entry.side],
      ["quantity", entry.quantity],
      ["price", entry.price],
      ["detail", fillDetail(entry)],
    ]);
    tr.dataset.orderId = entry.order_id;
    tr.dataset.side = entry.side;
  } else if (entry.kind === "payment") {
    tr = row([
      ["time", entry.atMs === null ? "" : clock(entry.atMs)],
      ["what", entry.payment_kind],
      ["symbol", entry.currency],
      ["side", ""],
      ["quantity", entry.amount],
      ["price", ""],
      ["detail", entry.reason === null ? entry.status : `${entry.status}: ${entry.reason}`],
    ]);
    tr.dataset.paymentId = entry.id;
    tr.dataset.status = entry.status;
  } else {
    const from = entry.fromMs === null ? "start" : clock(entry.fromMs);
    tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 7;
    td.textContent = `gap ${from}\u2013${clock(entry.toMs)}: ${entry.text}`;
    tr.appendChild(td);
    tr.dataset.failed = String(entry.failed);
  }
  tr.dataset.kind = entry.kind;
  return tr;
}

function fillDetail(fill) {
  const realised = Number(fill.realised_pnl) === 0 ? "" : ` \u00b7 realised ${fill.realised_pnl}`;
  return `fee ${fill.fee} ${fill.currency}${realised}`;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const [field, text] of cells) {
    const td = document.createElement("td");
    td.dataset.field = field;
    td.textContent = text;
    tr.appendChild(td);
  }
  return tr;
}
