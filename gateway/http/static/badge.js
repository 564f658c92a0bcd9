// The connection badge: state, seq gaps seen, recoveries, and measured
// latency, refreshed on every change of the client and once a second.

import { quantile } from "./sequence.js";
import { millis, setText } from "./format.js";

const SAMPLES = 1024;

// Tick-to-screen latency: from a quote's `ts_recv` (when the gateway took
// the tick) to the frame that painted it. Both clocks must agree: on one
// machine they do; across machines the figure includes their skew.
export class LatencyMeter {
  constructor() {
    this.samples = new Float64Array(SAMPLES);
    this.count = 0;
  }

  record(ms) {
    this.samples[this.count % SAMPLES] = ms;
    this.count += 1;
  }

  summary() {
    const held = this.samples.subarray(0, Math.min(this.count, SAMPLES));
    return { p50: quantile(held, 0.5), p99: quantile(held, 0.99), count: this.count };
  }
}

const LABELS = {
  connecting: "connecting",
  live: "live",
  reconnecting: "reconnecting",
  failed: "disconnected",
  stopped: "stopped",
};

export class ConnectionBadge {
  constructor(root, client, latency) {
    this.root = root;
    this.client = client;
    this.latency = latency;
    this.parts = {};
    for (const element of root.querySelectorAll("[data-part]")) {
      this.parts[element.dataset.part] = element;
    }
    client.onChange((status) => this.render(status));
    setInterval(() => this.render(client.status()), 1000);
    this.render(client.status());
  }

  render(status) {
    const root = this.root;
    root.dataset.state = status.state;
    root.dataset.gaps = String(status.gaps);
    root.dataset.reconnects = String(status.reconnects);
    let label = LABELS[status.state] ?? status.state;
    if (status.state === "reconnecting" && status.retryAt !== null) {
      const inS = Math.max(0, (status.retryAt - performance.timeOrigin - performance.now()) / 1000);
      label = `reconnecting in ${inS.toFixed(1)} s`;
    }
    if (status.state === "failed" && status.lastClose !== null) {
      label = `disconnected (${status.lastClose.code} ${status.lastClose.reason || ""})`.trim();
    }
    setText(this.parts.state, label);
    setText(this.parts.gaps, String(status.gaps));
    setText(this.parts.recovered, String(status.recovered));
    setText(this.parts.reconnects, String(status.reconnects));
    setText(this.parts.rtt, millis(status.rttMs));
    setText(this.parts.epoch, status.epoch ?? "\u2014");
    const { p50, p99, count } = this.latency.summary();
    root.dataset.latencySamples = String(count);
    setText(this.parts.p50, millis(p50));
    setText(this.parts.p99, millis(p99));
    const error = status.lastError;
    root.title = error ? `last error: ${error.code}: ${error.message}` : "";
  }
}
