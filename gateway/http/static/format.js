// Number and time formats shared by the panels. `null` (a value the server
// could not compute) is shown as an em dash, never as zero.

const DASH = "\u2014";
const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const whole = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const compact = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 6 });

export function price(value) {
  if (value === null || value === undefined) {
    return DASH;
  }
  return compact.format(value);
}

export function amount(value) {
  return value === null || value === undefined ? DASH : money.format(value);
}

export function integer(value) {
  return value === null || value === undefined ? DASH : whole.format(value);
}

export function ratio(value, digits = 2) {
  return value === null || value === undefined ? DASH : value.toFixed(digits);
}

export function percent(value) {
  return value === null || value === undefined ? DASH : `${(value * 100).toFixed(0)}%`;
}

// A signed amount's CSS class: gains and losses are coloured, zero is not.
export function signClass(value) {
  if (value === null || value === undefined || value === 0) {
    return "";
  }
  return value > 0 ? "gain" : "loss";
}

// An age in milliseconds as "0.4 s", "12 s" or "3 min".
export function age(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) {
    return DASH;
  }
  const seconds = Math.max(0, ms) / 1000;
  if (seconds < 10) {
    return `${seconds.toFixed(1)} s`;
  }
  if (seconds < 120) {
    return `${seconds.toFixed(0)} s`;
  }
  return `${(seconds / 60).toFixed(0)} min`;
}

export function millis(ms) {
  if (ms === null || ms === undefined) {
    return DASH;
  }
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${ms.toFixed(0)} ms`;
}

export function clock(epochMs) {
  return new Date(epochMs).toLocaleTimeString("en-GB", { hour12: false });
}

// Protocol times are UNIX nanoseconds; as milliseconds they fit a double
// to well under a microsecond.
export function nsToMs(ns) {
  return ns / 1e6;
}

// Replace an element's text only when it changed (cheap on hot paths).
export function setText(element, text) {
  if (element.textContent !== text) {
    element.textContent = text;
  }
}
