// The order ticket and the payments form (demo mode): each submit gets a
// fresh Idempotency-Key; "Send again" re-sends the last request with the
// same key and the same body text, and shows whether the API replayed the
// first answer (`Idempotent-Replayed: true`, the same bytes). Refusals are
// shown by their problem `code` and `detail` (docs/api.md, "Problem codes").

import { newIdempotencyKey } from "./orderapi.js";
import { setText } from "./format.js";

// The last request sent, its first answer, and its resends.
export class LastRequest {
  constructor(elements, api, { newKey = newIdempotencyKey } = {}) {
    const { root, what, key, answer, replay, again } = elements;
    this.el = { root, what, key, answer, replay, again };
    this.api = api;
    this.newKey = newKey;
    this.request = null; // {label, method, path, key, body}
    this.first = null; // the first ApiAnswer of that request
    this.sends = 0;
    this.busy = false;
    again.addEventListener("click", () => this.again());
    this.render();
  }

  // Send a new request under a fresh key.
  async send({ label, method = "POST", path, body }) {
    this.request = { label, method, path, key: this.newKey(), body };
    this.first = null;
    this.sends = 0;
    setText(this.el.replay, "");
    this.el.root.dataset.replayed = "";
    this.el.root.dataset.identical = "";
    return this.transmit();
  }

  // Send the same key and body text again.
  async again() {
    if (this.request !== null && !this.busy) {
      return this.transmit();
    }
    return null;
  }

  async transmit() {
    const request = this.request;
    this.busy = true;
    this.render();
    let answer;
    try {
      answer = await this.api.send(request);
    } catch (e) {
      this.show({ failed: `no answer: ${e.message}` });
      return null;
    } finally {
      this.busy = false;
      this.render();
    }
    if (request !== this.request) {
      return answer; // a newer request was sent meanwhile
    }
    this.sends += 1;
    if (this.first === null) {
      this.first = answer;
      this.show({ answer });
    } else {
      this.show({ answer, resend: true });
    }
    return answer;
  }

  show({ answer = null, resend = false, failed = null }) {
    const root = this.el.root;
    root.dataset.sends = String(this.sends);
    if (failed !== null) {
      root.dataset.status = "";
      setText(this.el.answer, failed);
      return;
    }
    root.dataset.status = String(answer.status);
    root.dataset.code = answer.problem?.code ?? "";
    if (!resend) {
      setText(this.el.answer, describe(answer));
      return;
    }
    const identical = this.first.status === answer.status && this.first.text === answer.text;
    root.dataset.replayed = String(answer.replayed);
    root.dataset.identical = String(identical);
    const header = answer.replayed ? "Idempotent-Replayed: true" : "not replayed";
    const same = identical
      ? `the same ${answer.status} and body, byte for byte (${byteLength(answer.text)} bytes)`
      : `a different answer: ${describe(answer)}`;
    const why =
      !answer.replayed && !this.first.ok
        ? " (a refusal before execution is not stored: the key was free again)"
        : "";
    setText(this.el.replay, `send again #${this.sends - 1}: ${header}, ${same}${why}`);
  }

  render() {
    const request = this.request;
    this.el.root.dataset.busy = String(this.busy);
    this.el.again.disabled = request === null || this.busy;
    if (request === null) {
      setText(this.el.what, "nothing sent yet");
      setText(this.el.key, "");
      return;
    }
    setText(this.el.what, `${request.label}: ${request.method} ${request.path}`);
    setText(this.el.key, `Idempotency-Key ${request.key}`);
  }
}

// An answer in one line: the created resource, or the problem.
export function describe(answer) {
  if (!answer.ok) {
    return answer.describeProblem();
  }
  const body = answer.body ?? {};
  const id = body.order_id ?? body.payment_id ?? "";
  return `${answer.status} ${body.status ?? ""} ${id}`.replace(/\s+/g, " ").trim();
}

function byteLength(text) {
  return new TextEncoder().encode(text).length;
}

export class OrderTicket {
  // account: () => the chosen account (or null).
  constructor(elements, lastRequest, { instruments, account }) {
    this.el = elements;
    this.last = lastRequest;
    this.account = account;
    this.instruments = new Map(instruments.map((i) => [i.symbol, i]));
    elements.symbols.replaceChildren(...instruments.map((i) => new Option(i.symbol, i.symbol)));
    elements.type.addEventListener("change", () => this.typeChanged());
    elements.symbol.addEventListener("change", () => this.symbolChanged());
    elements.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.typeChanged();
    this.symbolChanged();
  }

  typeChanged() {
    const isLimit = this.el.type.value === "limit";
    this.el.limit.disabled = !isLimit;
    this.el.limit.required = isLimit;
  }

  symbolChanged() {
    const i = this.instruments.get(this.el.symbol.value.trim().toUpperCase());
    setText(
      this.el.hint,
      i === undefined ? "" : `${i.currency} \u00b7 lot ${i.lot_size} \u00b7 tick ${i.tick_size}`,
    );
  }

  // The order as the API takes it (docs/api.md, POST /v1/orders): decimals
  // are sent as typed, for the API to validate.
  order() {
    const el = this.el;
    const order = {
      account_id: this.account(),
      symbol: el.symbol.value.trim().toUpperCase(),
      side: el.form.querySelector("input[name=side]:checked").value,
      quantity: el.quantity.value.trim(),
      type: el.type.value,
      time_in_force: el.tif.value,
    };
    if (order.type === "limit") {
      order.limit_price = el.limit.value.trim();
    }
    return order;
  }

  submit() {
    const order = this.order();
    if (order.account_id === null) {
      return null;
    }
    const label = `${order.side} ${order.quantity} ${order.symbol} ${order.type}`;
    return this.last.send({ label, path: "/v1/orders", body: JSON.stringify(order) });
  }
}

export class PaymentForm {
  constructor(elements, lastRequest, { account, currency }) {
    this.el = elements;
    this.last = lastRequest;
    this.account = account;
    this.currency = currency;
    elements.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  payment() {
    const el = this.el;
    const payment = {
      account_id: this.account(),
      kind: el.kind.value,
      amount: el.amount.value.trim(),
      currency: (el.currency.value.trim() || this.currency() || "").toUpperCase(),
    };
    const reference = el.reference.value.trim();
    if (reference !== "") {
      payment.reference = reference;
    }
    return payment;
  }

  submit() {
    const payment = this.payment();
    if (payment.account_id === null) {
      return null;
    }
    const label = `${payment.kind} ${payment.amount} ${payment.currency}`;
    return this.last.send({ label, path: "/v1/payments", body: JSON.stringify(payment) });
  }
}
