// The reference browser client of /ws (docs/protocol.md): it authenticates,
// subscribes, checks every update against the gap rule, repairs a gap by
// resubscribing the key, watches heartbeats, renews its token before it
// expires, and after a dropped connection reconnects with exponential backoff
// and jitter and recovers each key from its epoch and last seq.
//
// The socket, the clock, the timers and the randomness are injected
// (`deps`), so a test can drive the client with scripted frames.

import { APPLY, Backoff, GAP, SeqTracker } from "./sequence.js";

// Connection states, shown by the badge.
export const CONNECTING = "connecting";
export const OPEN = "live";
export const RECONNECTING = "reconnecting";
export const FAILED = "failed";
export const STOPPED = "stopped";

// The field that names the keys of each channel in subscribe and unsubscribe.
const KEY_FIELD = { quotes: "symbols", portfolio: "accounts", orders: "accounts" };
// Keys per subscribe message, well within the 16 KiB inbound limit.
const CHUNK_KEYS = 64;
// A connection that stayed open this long was a success: the backoff restarts.
const STABLE_MS = 5_000;
const PING_INTERVAL_MS = 10_000;
const WATCHDOG_MS = 1_000;
// Silence for this many heartbeat intervals means the connection is dead
// (the server sends a heartbeat on every quiet interval).
const DEAD_AFTER_HEARTBEATS = 3;
const RENEW_RETRY_MS = 5_000;
// Close codes after which reconnecting cannot help: fix the client instead.
const DO_NOT_RETRY = new Set([1008, 1009]);
// WebSocket.readyState of an open socket. Between the server's close frame
// and the close event a socket is CLOSING, and a send then is lost (and
// logged by the browser): nothing is sent but on an open socket.
const SOCKET_OPEN = 1;

function defaultDeps() {
  return {
    WebSocket: globalThis.WebSocket,
    now: () => performance.timeOrigin + performance.now(),
    setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
    clearTimeout: (handle) => globalThis.clearTimeout(handle),
    random: Math.random,
  };
}

export class GatewayClient {
  // url: the ws:// URL of /ws. tokenProvider: async ({fresh}) => token or null.
  constructor(url, { heartbeatIntervalS = 5, tokenProvider = null, deps = {} } = {}) {
    this.url = url;
    this.deps = { ...defaultDeps(), ...deps };
    this.heartbeatMs = heartbeatIntervalS * 1000;
    this.tokenProvider = tokenProvider;
    this.backoff = new Backoff({ random: this.deps.random });
    this.trackers = new Map(); // channel -> SeqTracker
    this.wanted = new Map(); // channel -> Set of keys the page wants
    this.handlers = new Map(); // channel -> [fn(message)]
    this.listeners = new Set(); // fn(status) on every change of state or counters
    this.requests = new Map(); // id -> the message it was sent with
    this.pings = new Map(); // ping id -> sent at (ms)
    this.nextId = 1;
    this.ws = null;
    this.token = null;
    this.auth = null; // the last `authenticated` message
    this.state = CONNECTING;
    this.retryAt = null;
    this.timers = { watchdog: null, renew: null, reconnect: null };
    this.stats = {
      gaps: 0,
      reconnects: 0,
      recovered: 0,
      snapshots: 0,
      rttMs: null,
      epoch: null,
      lastClose: null,
      lastError: null,
    };
  }

  // --- the page's side ---------------------------------------------------

  on(channel, handler) {
    if (!this.handlers.has(channel)) {
      this.handlers.set(channel, []);
    }
    this.handlers.get(channel).push(handler);
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  start() {
    this._connect();
  }

  stop() {
    this.state = STOPPED;
    this._clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws !== null) {
      ws.close(1000, "page closed");
    }
    this._changed();
  }

  subscribe(channel, keys) {
    const wanted = this._wanted(channel);
    const fresh = keys.filter((key) => !wanted.has(key));
    for (const key of fresh) {
      wanted.add(key);
    }
    if (this._isOpen() && fresh.length > 0) {
      this._subscribePlain(channel, fresh);
    }
  }

  unsubscribe(channel, keys) {
    const wanted = this._wanted(channel);
    const gone = keys.filter((key) => wanted.has(key));
    const tracker = this._tracker(channel);
    for (const key of gone) {
      wanted.delete(key);
      tracker.forget(key);
    }
    if (this._isOpen() && gone.length > 0) {
      for (const chunk of chunks(gone)) {
        this._request({ op: "unsubscribe", channel, [KEY_FIELD[channel]]: chunk });
      }
    }
  }

  // Send `auth` with the provider's token now, if it changed (after the page
  // changed what it reads); the connection's subscriptions are then checked
  // against it.
  async reauthenticate() {
    const token = await this._token(false);
    if (token !== null && token !== this.token && this._isOpen()) {
      this.token = token;
      this._request({ op: "auth", token });
    }
  }

  status() {
    return { state: this.state, retryAt: this.retryAt, auth: this.auth, ...this.stats };
  }

  // --- the connection ----------------------------------------------------

  async _connect() {
    this.retryAt = null;
    this.state = this.stats.reconnects > 0 ? RECONNECTING : CONNECTING;
    this._changed();
    const token = await this._token(this.stats.lastClose?.code === 4001);
    if (this.state === STOPPED) {
      return;
    }
    const ws = new this.deps.WebSocket(this.url);
    this.ws = ws;
    this.openedAt = null;
    ws.onopen = () => this._opened(ws, token);
    ws.onmessage = (event) => this._frame(ws, event.data);
    ws.onclose = (event) => this._closed(ws, event.code, event.reason);
    ws.onerror = () => {}; // a close event always follows
  }

  _opened(ws, token) {
    if (ws !== this.ws) {
      return;
    }
    const now = this.deps.now();
    this.openedAt = now;
    this.lastReceivedAt = now;
    // The first ping goes out a second after opening, then every interval.
    this.lastPingAt = now - PING_INTERVAL_MS + WATCHDOG_MS;
    this.state = OPEN;
    this.token = token;
    // auth first: the server handles a connection's messages in order, so
    // the subscriptions below are checked against this token.
    if (token !== null) {
      this._request({ op: "auth", token });
    }
    for (const channel of this.wanted.keys()) {
      this._resubscribe(channel);
    }
    this._armWatchdog();
    this._changed();
  }

  _closed(ws, code, reason) {
    if (ws !== this.ws) {
      return;
    }
    this.ws = null;
    this.auth = null;
    this.requests.clear();
    this.pings.clear();
    this._clearTimers();
    this.stats.lastClose = { code, reason };
    if (this.state === STOPPED) {
      return;
    }
    if (DO_NOT_RETRY.has(code)) {
      this.state = FAILED;
      this._changed();
      return;
    }
    const now = this.deps.now();
    if (this.openedAt !== null && now - this.openedAt >= STABLE_MS) {
      this.backoff.reset();
    }
    const delayMs = this.backoff.next();
    this.state = RECONNECTING;
    this.retryAt = now + delayMs;
    this.timers.reconnect = this.deps.setTimeout(() => {
      this.timers.reconnect = null;
      this.stats.reconnects += 1;
      this._connect();
    }, delayMs);
    this._changed();
  }

  // Close a connection that went silent and reconnect without waiting for
  // a closing handshake that a dead peer will never finish.
  _drop(reason) {
    const ws = this.ws;
    ws.onclose = null;
    ws.onmessage = null;
    ws.close(1000, reason);
    this._closed(ws, 1006, reason);
  }

  _isOpen() {
    return this.ws !== null && this.state === OPEN && this.ws.readyState === SOCKET_OPEN;
  }

  async _token(fresh) {
    if (this.tokenProvider === null) {
      return null;
    }
    try {
      return await this.tokenProvider({ fresh });
    } catch (e) {
      this.stats.lastError = { code: "token_unavailable", message: String(e) };
      this._changed();
      return null;
    }
  }

  // --- subscriptions -----------------------------------------------------

  // After a (re)connect: recover every key whose seq is known, in one
  // subscribe per epoch (recovery is all or nothing per subscribe), and
  // subscribe the others plainly.
  _resubscribe(channel) {
    const wanted = this._wanted(channel);
    if (wanted.size === 0) {
      return;
    }
    const tracker = this._tracker(channel);
    const recovering = new Set();
    for (const [epoch, lastSeqs] of tracker.recoverable()) {
      const keys = Object.keys(lastSeqs).filter((key) => wanted.has(key));
      for (const chunk of chunks(keys)) {
        const lastSeq =
          chunk.length === 1
            ? lastSeqs[chunk[0]]
            : Object.fromEntries(chunk.map((key) => [key, lastSeqs[key]]));
        this._request({
          op: "subscribe",
          channel,
          [KEY_FIELD[channel]]: chunk,
          epoch,
          last_seq: lastSeq,
        });
        chunk.forEach((key) => recovering.add(key));
      }
    }
    const plain = [...wanted].filter((key) => !recovering.has(key));
    if (plain.length > 0) {
      this._subscribePlain(channel, plain);
    }
  }

  _subscribePlain(channel, keys) {
    const tracker = this._tracker(channel);
    for (const key of keys) {
      tracker.expect(key);
    }
    for (const chunk of chunks(keys)) {
      this._request({ op: "subscribe", channel, [KEY_FIELD[channel]]: chunk });
    }
  }

  // --- inbound -----------------------------------------------------------

  _frame(ws, data) {
    if (ws !== this.ws) {
      return;
    }
    this.lastReceivedAt = this.deps.now();
    const messages = JSON.parse(data); // every frame is a JSON array of messages
    for (const message of messages) {
      this._message(message);
    }
  }

  _message(message) {
    switch (message.type) {
      case "snapshot":
        this._tracker(message.channel).snapshot(message.key, message.seq, message.epoch);
        this.stats.snapshots += 1;
        this._emit(message.channel, message);
        break;
      case "update":
        this._update(message);
        break;
      case "subscribed":
        this._subscribed(message);
        break;
      case "unsubscribed":
        this._unsubscribed(message);
        break;
      case "authenticated":
        this.auth = message;
        this._scheduleRenewal(message.exp);
        this.requests.delete(message.id);
        this._changed();
        break;
      case "pong":
        this._pong(message);
        break;
      case "error":
        this._error(message);
        break;
      default:
        break; // heartbeat, and types a later server adds
    }
  }

  _update(message) {
    const result = this._tracker(message.channel).update(message);
    if (result === APPLY) {
      this._emit(message.channel, message);
    } else if (result === GAP) {
      this.stats.gaps += 1;
      this._changed();
      // A gap always means loss: a fresh snapshot of the key repairs it.
      this._subscribePlain(message.channel, [message.key]);
    }
  }

  _subscribed(message) {
    this.requests.delete(message.id);
    this.stats.epoch = message.epoch;
    if (message.recovered === true) {
      this.stats.recovered += message.keys.length;
    }
    this._emit(message.channel, message);
    this._changed();
  }

  _unsubscribed(message) {
    this.requests.delete(message.id);
    const tracker = this._tracker(message.channel);
    for (const key of message.keys) {
      tracker.forget(key);
      if (message.id === undefined) {
        // A renewed token no longer grants the key: the page no longer has it.
        this._wanted(message.channel).delete(key);
      }
    }
    this._emit(message.channel, message);
  }

  _pong(message) {
    const sentAt = this.pings.get(message.id);
    if (sentAt !== undefined) {
      this.pings.delete(message.id);
      this.stats.rttMs = this.deps.now() - sentAt;
      this._changed();
    }
  }

  _error(message) {
    this.stats.lastError = { code: message.code, message: message.message };
    const request = this.requests.get(message.id);
    this.requests.delete(message.id);
    if (request !== undefined && message.code === "rate_limited") {
      this.deps.setTimeout(() => this._isOpen() && this._request(request), message.retry_after_ms);
    } else if (request !== undefined && request.op === "subscribe") {
      // Nothing of a refused subscribe was subscribed: the page stops wanting it.
      const keys = request[KEY_FIELD[request.channel]];
      for (const key of keys) {
        this._wanted(request.channel).delete(key);
        this._tracker(request.channel).forget(key);
      }
      this._emit(request.channel, { ...message, keys });
    }
    this._changed();
  }

  // --- timers ------------------------------------------------------------

  _armWatchdog() {
    this.timers.watchdog = this.deps.setTimeout(() => {
      this.timers.watchdog = null;
      if (!this._isOpen()) {
        return;
      }
      const now = this.deps.now();
      if (now - this.lastReceivedAt > DEAD_AFTER_HEARTBEATS * this.heartbeatMs) {
        this._drop("heartbeat timeout");
        return;
      }
      if (now - this.lastPingAt >= PING_INTERVAL_MS) {
        this.lastPingAt = now;
        const id = `p-${this.nextId++}`;
        this.pings.set(id, now);
        this._send({ op: "ping", id });
      }
      this._armWatchdog();
    }, WATCHDOG_MS);
  }

  // Renew a quarter of the token's life before it expires (at most a minute
  // before), so a page left open never meets token_expired.
  _scheduleRenewal(expS) {
    this.deps.clearTimeout(this.timers.renew);
    this.timers.renew = null;
    if (this.tokenProvider === null || typeof expS !== "number") {
      return;
    }
    const lifeMs = expS * 1000 - this.deps.now();
    const marginMs = Math.min(60_000, Math.max(0, lifeMs / 4));
    this.timers.renew = this.deps.setTimeout(() => this._renew(), Math.max(0, lifeMs - marginMs));
  }

  async _renew() {
    this.timers.renew = null;
    const token = await this._token(true);
    if (!this._isOpen()) {
      return;
    }
    if (token === null) {
      this.timers.renew = this.deps.setTimeout(() => this._renew(), RENEW_RETRY_MS);
    } else if (token !== this.token) {
      this.token = token;
      this._request({ op: "auth", token });
    }
  }

  _clearTimers() {
    for (const name of Object.keys(this.timers)) {
      if (this.timers[name] !== null) {
        this.deps.clearTimeout(this.timers[name]);
        this.timers[name] = null;
      }
    }
  }

  // --- plumbing ----------------------------------------------------------

  _request(message) {
    const id = this.nextId++;
    this.requests.set(id, message);
    this._send({ ...message, id });
  }

  // Whatever a closing socket cannot take, the reconnect sends again.
  _send(message) {
    if (this.ws !== null && this.ws.readyState === SOCKET_OPEN) {
      this.ws.send(JSON.stringify(message));
    }
  }

  _tracker(channel) {
    if (!this.trackers.has(channel)) {
      this.trackers.set(channel, new SeqTracker());
    }
    return this.trackers.get(channel);
  }

  _wanted(channel) {
    if (!this.wanted.has(channel)) {
      this.wanted.set(channel, new Set());
    }
    return this.wanted.get(channel);
  }

  _emit(channel, message) {
    for (const handler of this.handlers.get(channel) ?? []) {
      handler(message);
    }
  }

  _changed() {
    const status = this.status();
    for (const listener of this.listeners) {
      listener(status);
    }
  }
}

function* chunks(keys) {
  for (let i = 0; i < keys.length; i += CHUNK_KEYS) {
    yield keys.slice(i, i + CHUNK_KEYS);
  }
}
