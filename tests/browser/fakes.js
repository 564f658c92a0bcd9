// Test doubles for driving the dashboard's client module with scripted
// frames: a WebSocket the test opens, feeds and closes, and a manual clock
// with timers the test advances.

export class FakeSocket {
  static all = [];

  constructor(url) {
    this.url = url;
    this.readyState = 0; // CONNECTING
    this.sent = [];
    this.sentWhileNotOpen = 0;
    this.closedWith = null;
    FakeSocket.all.push(this);
  }

  static last() {
    return FakeSocket.all[FakeSocket.all.length - 1];
  }

  send(text) {
    if (this.readyState !== 1) {
      this.sentWhileNotOpen += 1; // a browser drops it and logs an error
      return;
    }
    this.sent.push(JSON.parse(text));
  }

  close(code, reason) {
    this.closedWith = { code, reason };
    this.readyState = 2; // CLOSING
  }

  // --- the server's side, driven by the test ---

  open() {
    this.readyState = 1;
    this.onopen();
  }

  // The server's close frame arrived; the close event comes later.
  closing() {
    this.readyState = 2;
  }

  deliver(...messages) {
    this.onmessage?.({ data: JSON.stringify(messages) });
  }

  drop(code, reason = "") {
    this.readyState = 3; // CLOSED
    this.onclose?.({ code, reason });
  }
}

export class ManualTimers {
  constructor(startMs = 1_800_000_000_000) {
    this.t = startMs;
    this.queue = [];
    this.nextId = 1;
    this.now = () => this.t;
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.queue.push({ id, at: this.t + ms, fn });
      return id;
    };
    this.clearTimeout = (id) => {
      this.queue = this.queue.filter((timer) => timer.id !== id);
    };
  }

  // Run every timer due within `ms`, in order, moving the clock to each.
  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at);
      const next = this.queue[0];
      if (next === undefined || next.at > end) {
        break;
      }
      this.queue.shift();
      this.t = next.at;
      next.fn();
      await settle();
    }
    this.t = end;
  }

  pendingDelays() {
    return this.queue.map((timer) => timer.at - this.t).sort((a, b) => a - b);
  }
}

// Let pending promise callbacks (the client's async token fetches) run.
export async function settle() {
  for (let i = 0; i < 5; i += 1) {
    await Promise.resolve();
  }
}

export const EPOCH = "e-1";
const TS = 1_800_000_000_000_000_000;

export function snapshot(channel, key, seq, fields = {}) {
  return { type: "snapshot", channel, key, seq, epoch: EPOCH, ts_sent: TS, ...fields };
}

export function update(channel, key, seq, fields = {}) {
  return { type: "update", channel, key, seq, epoch: EPOCH, ts_sent: TS, ...fields };
}

// A client wired to fakes, whose every emitted message is recorded.
export async function harness(GatewayClient, { tokens = ["T1"], heartbeatIntervalS = 5 } = {}) {
  FakeSocket.all = [];
  const timers = new ManualTimers();
  const asked = [];
  let issued = 0;
  const client = new GatewayClient("ws://gateway.test/ws", {
    heartbeatIntervalS,
    tokenProvider: async (options) => {
      asked.push(options);
      return tokens[Math.min(issued++, tokens.length - 1)];
    },
    deps: {
      WebSocket: FakeSocket,
      now: timers.now,
      setTimeout: timers.setTimeout,
      clearTimeout: timers.clearTimeout,
      random: () => 0.5,
    },
  });
  const seen = [];
  for (const channel of ["quotes", "portfolio"]) {
    client.on(channel, (message) => seen.push(message));
  }
  return { client, timers, asked, seen };
}

// --- the order panels ------------------------------------------------------------

// The client as a panel sees it: handlers per channel, fed by the test.
export class FakeClient {
  constructor() {
    this.handlers = new Map();
  }

  on(channel, handler) {
    this.handlers.set(channel, [...(this.handlers.get(channel) ?? []), handler]);
  }

  emit(channel, ...messages) {
    for (const message of messages) {
      for (const handler of this.handlers.get(channel) ?? []) {
        handler(message);
      }
    }
  }
}

// The reads of OrderApi, answered from a script: `orders` (newest first) is
// served in pages by an index cursor; `fail` makes the next n calls throw.
export class FakeOrderApi {
  constructor({ orders = [], payments = {}, fail = 0 } = {}) {
    this.orders = orders;
    this.payments = payments;
    this.fail = fail;
    this.calls = [];
  }

  _call(call) {
    this.calls.push(call);
    if (this.fail > 0) {
      this.fail -= 1;
      throw new Error("503 state_unavailable: scripted");
    }
  }

  async listOrders(account, { cursor = null, limit = 50 } = {}) {
    this._call(["list", account, cursor, limit]);
    const start = cursor === null ? 0 : Number(cursor);
    const data = this.orders.slice(start, start + limit);
    const next = start + limit < this.orders.length ? String(start + limit) : null;
    return { data, next_cursor: next };
  }

  async getOrder(id) {
    this._call(["order", id]);
    return this.orders.find((o) => o.order_id === id);
  }

  async getPayment(id) {
    this._call(["payment", id]);
    return this.payments[id];
  }
}

// An order as GET /v1/orders answers it.
export function apiOrder(id, fields = {}) {
  return {
    order_id: id,
    status: "filled",
    account_id: "DEMO-0001",
    symbol: "AAPL",
    side: "buy",
    quantity: "10",
    type: "market",
    limit_price: null,
    time_in_force: "day",
    client_order_id: null,
    transfer_id: id.slice(4),
    filled_quantity: "10",
    average_price: "100.02",
    reason: null,
    accepted_at: "2027-01-15T08:00:00.123456789Z",
    updated_at: fields.accepted_at ?? "2027-01-15T08:00:00.223456789Z",
    ...fields,
  };
}

// An `order` event of the orders channel.
export function orderEvent(seq, id, fields = {}) {
  return update("orders", "DEMO-0001", seq, {
    event: "order",
    event_id: `ev-${seq}`,
    event_seq: 1000 + seq,
    ledger_seq: 500 + seq,
    order_id: id,
    transfer_id: id.slice(4),
    client_order_id: null,
    symbol: "AAPL",
    side: "buy",
    quantity: "10",
    order_type: "market",
    limit_price: null,
    time_in_force: "day",
    status: "accepted",
    filled_quantity: "0",
    average_price: null,
    reason: null,
    cause: "submitted",
    ts_accepted: 1_800_000_000_000_000_000,
    ts_event: 1_800_000_000_000_000_000 + seq * 1_000_000,
    ...fields,
  });
}

// A `fill` event of the orders channel.
export function fillEvent(seq, id, fields = {}) {
  return update("orders", "DEMO-0001", seq, {
    event: "fill",
    event_id: `ev-${seq}`,
    event_seq: 1000 + seq,
    ledger_seq: 500 + seq,
    fill_id: `fill_${id.slice(4)}_1`,
    order_id: id,
    symbol: "AAPL",
    side: "buy",
    quantity: "10",
    price: "100.02",
    fee: "0",
    currency: "USD",
    realised_pnl: "0",
    ts_event: 1_800_000_000_000_000_000 + seq * 1_000_000,
    ...fields,
  });
}

// A blotter over fresh table elements, with manual timers for its retries.
export function blotterHarness(Blotter, api) {
  const table = () => {
    const t = document.createElement("table");
    t.appendChild(document.createElement("tbody"));
    return t;
  };
  const elements = {
    root: document.createElement("section"),
    orders: table(),
    activity: table(),
    count: document.createElement("span"),
    notice: document.createElement("span"),
  };
  const client = new FakeClient();
  const timers = new ManualTimers();
  const blotter = new Blotter(elements, client, api, { setTimeout: timers.setTimeout });
  const rows = () => ({
    orders: [...elements.orders.tBodies[0].rows].map((tr) => ({ ...tr.dataset })),
    activity: [...elements.activity.tBodies[0].rows].map((tr) => ({
      ...tr.dataset,
      text: tr.textContent,
    })),
  });
  return { blotter, client, timers, elements, rows };
}
