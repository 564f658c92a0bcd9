// A line chart of one series over time, on a canvas: the account's total
// P&L over the session. Redrawn at most once per animation frame.

const MAX_POINTS = 4000;
const PAD = { left: 78, right: 12, top: 12, bottom: 22 };

export class PnlChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.times = []; // ms since the epoch
    this.values = [];
    this.frameRequested = false;
    new ResizeObserver(() => this.requestDraw()).observe(canvas);
  }

  clear() {
    this.times = [];
    this.values = [];
    this.canvas.dataset.points = "0";
    this.requestDraw();
  }

  push(timeMs, value) {
    if (value === null || value === undefined) {
      return;
    }
    const last = this.times.length - 1;
    if (last >= 0 && timeMs <= this.times[last]) {
      this.values[last] = value; // the same instant, revalued
    } else {
      this.times.push(timeMs);
      this.values.push(value);
    }
    if (this.times.length > MAX_POINTS) {
      // Keep the whole session at half the resolution.
      this.times = this.times.filter((_, i) => i % 2 === 0);
      this.values = this.values.filter((_, i) => i % 2 === 0);
    }
    this.canvas.dataset.points = String(this.times.length);
    this.requestDraw();
  }

  requestDraw() {
    if (!this.frameRequested) {
      this.frameRequested = true;
      requestAnimationFrame(() => this.draw());
    }
  }

  draw() {
    this.frameRequested = false;
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (width === 0 || height === 0) {
      return;
    }
    if (canvas.width !== Math.round(width * ratio)) {
      canvas.width = Math.round(width * ratio);
    }
    if (canvas.height !== Math.round(height * ratio)) {
      canvas.height = Math.round(height * ratio);
    }
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const style = getComputedStyle(canvas);
    g.font = `11px ${style.fontFamily}`;
    g.fillStyle = style.color;
    if (this.times.length < 2) {
      g.fillText("waiting for the account's P&L\u2026", PAD.left, height / 2);
      return;
    }
    // The range of the series itself (the zero line is drawn when it falls
    // inside), so that moves of a large P&L stay visible.
    let low = Math.min(...this.values);
    let high = Math.max(...this.values);
    if (high - low < 1e-9) {
      high += 1;
      low -= 1;
    }
    const span = high - low;
    low -= span * 0.08;
    high += span * 0.08;
    const t0 = this.times[0];
    const t1 = this.times[this.times.length - 1];
    const plotW = width - PAD.left - PAD.right;
    const plotH = height - PAD.top - PAD.bottom;
    const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * plotW;
    const y = (v) => PAD.top + (1 - (v - low) / (high - low)) * plotH;

    // Axes: the zero line when in range, and the range labels.
    g.strokeStyle = style.getPropertyValue("--grid").trim() || "#888";
    g.lineWidth = 1;
    g.strokeRect(PAD.left, PAD.top, plotW, plotH);
    const labels = [high, (high + low) / 2, low];
    if (low < 0 && high > 0) {
      g.beginPath();
      g.moveTo(PAD.left, y(0));
      g.lineTo(width - PAD.right, y(0));
      g.stroke();
      labels.push(0);
    }
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (const v of labels) {
      g.fillText(axisLabel(v), PAD.left - 6, y(v));
    }
    g.textBaseline = "top";
    g.textAlign = "left";
    g.fillText(timeLabel(t0), PAD.left, height - PAD.bottom + 6);
    g.textAlign = "right";
    g.fillText(timeLabel(t1), width - PAD.right, height - PAD.bottom + 6);

    // The series, coloured by the sign of its latest value.
    const latest = this.values[this.values.length - 1];
    const colour = latest >= 0 ? "--gain" : "--loss";
    g.strokeStyle = style.getPropertyValue(colour).trim() || "#4a4";
    g.lineWidth = 1.5;
    g.beginPath();
    for (let i = 0; i < this.times.length; i += 1) {
      const px = x(this.times[i]);
      const py = y(this.values[i]);
      if (i === 0) {
        g.moveTo(px, py);
      } else {
        g.lineTo(px, py);
      }
    }
    g.stroke();
  }
}

function axisLabel(value) {
  const magnitude = Math.abs(value);
  if (magnitude >= 1e6) {
    return `${(value / 1e6).toFixed(2)}M`;
  }
  if (magnitude >= 1e4) {
    return `${(value / 1e3).toFixed(1)}k`;
  }
  if (magnitude >= 1e3) {
    return `${(value / 1e3).toFixed(2)}k`;
  }
  return value.toFixed(0);
}

function timeLabel(ms) {
  return new Date(ms).toLocaleTimeString("en-GB", { hour12: false });
}
