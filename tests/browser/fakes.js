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
