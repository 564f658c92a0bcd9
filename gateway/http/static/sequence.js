// Sequence numbers, epochs and reconnect backoff: the pure rules of
// docs/protocol.md ("Sequence numbers, epochs and gaps", "Client checklist"),
// with no socket and no clock, so a test can drive them with scripted messages.

// Where a key stands.
//   pending: a subscribe without recovery was sent; updates wait for its snapshot
//   live:    seq and epoch are known; each update must follow on
//   resync:  a gap was seen; the key was resubscribed and waits for a snapshot
export const PENDING = "pending";
export const LIVE = "live";
export const RESYNC = "resync";

// What the caller does with an update: apply it, resubscribe the key, or drop it.
export const APPLY = "apply";
export const GAP = "gap";
export const DROP = "drop";

// The last seq and epoch of every key of one channel.
export class SeqTracker {
  constructor() {
    this.keys = new Map(); // key -> {seq, epoch, mode}
  }

  // A subscribe without recovery was sent for `key`.
  expect(key) {
    const state = this.keys.get(key);
    if (state === undefined) {
      this.keys.set(key, { seq: null, epoch: null, mode: PENDING });
    } else if (state.mode !== RESYNC) {
      state.mode = PENDING;
    }
  }

  // A snapshot states the key's whole state at `seq`: the next update follows it.
  snapshot(key, seq, epoch) {
    this.keys.set(key, { seq, epoch, mode: LIVE });
  }

  // The gap rule: `(seq_from ?? seq) == last_seq + 1`, in the same epoch.
  // Anything else is a loss, repaired by resubscribing the key (a fresh snapshot).
  update(message) {
    const state = this.keys.get(message.key);
    if (state === undefined || state.mode !== LIVE) {
      return DROP;
    }
    const first = message.seq_from ?? message.seq;
    if (message.epoch !== state.epoch || first !== state.seq + 1) {
      state.mode = RESYNC;
      return GAP;
    }
    state.seq = message.seq;
    return APPLY;
  }

  forget(key) {
    this.keys.delete(key);
  }

  has(key) {
    return this.keys.has(key);
  }

  // The keys a reconnect may recover, grouped by epoch: {epoch: {key: last_seq}}.
  // Keys without a seq of their own (pending, resync) get a fresh snapshot instead.
  recoverable() {
    const byEpoch = new Map();
    for (const [key, state] of this.keys) {
      if (state.mode !== LIVE) {
        continue;
      }
      if (!byEpoch.has(state.epoch)) {
        byEpoch.set(state.epoch, {});
      }
      byEpoch.get(state.epoch)[key] = state.seq;
    }
    return byEpoch;
  }
}

// Exponential backoff with jitter: the n-th delay is drawn from
// [ceiling / 2, ceiling], ceiling = min(max_ms, initial_ms * 2^n), so a fleet
// of pages that lost the same server does not come back in step, and no
// delay collapses to zero.
export class Backoff {
  constructor({ initialMs = 250, maxMs = 30_000, random = Math.random } = {}) {
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.random = random;
    this.attempt = 0;
  }

  next() {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    this.attempt += 1;
    return ceiling / 2 + (this.random() * ceiling) / 2;
  }

  reset() {
    this.attempt = 0;
  }
}

// The q-quantile (0..1) of `values` by nearest rank; null when empty.
export function quantile(values, q) {
  if (values.length === 0) {
    return null;
  }
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}
