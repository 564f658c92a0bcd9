// The order API (docs/api.md), reached through the gateway's same-origin
// route /dashboard/api (demo mode only), with the page's demo token. An
// answer keeps its status, the headers that matter and its exact text, so
// the page can show a replay and compare it byte for byte with the first.

export const PROXY = "/dashboard/api";

// A fresh Idempotency-Key: a random UUID (version 4). getRandomValues works
// on plain http:// too, where crypto.randomUUID does not exist.
export function newIdempotencyKey(random = globalThis.crypto) {
  const bytes = random.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  const parts = [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20)];
  return [...parts, hex.slice(20)].join("-");
}

// One answer of the API: `problem` is the problem+json body of an error
// ({code, detail, ...}), else null.
export class ApiAnswer {
  constructor(status, headers, text) {
    this.status = status;
    this.text = text;
    this.contentType = headers.get("content-type") ?? "";
    this.replayed = headers.get("idempotent-replayed") === "true";
    this.location = headers.get("location");
    this.retryAfter = headers.get("retry-after");
    let parsed = null;
    try {
      parsed = text === "" ? null : JSON.parse(text);
    } catch {
      parsed = null;
    }
    this.body = parsed;
    this.problem =
      this.contentType.startsWith("application/problem+json") && parsed !== null ? parsed : null;
  }

  get ok() {
    return this.status >= 200 && this.status < 300;
  }

  // "422 price_off_tick: limit_price must be ..." for an error; "" otherwise.
  describeProblem() {
    if (this.ok) {
      return "";
    }
    if (this.problem === null) {
      return `${this.status}: ${this.text.slice(0, 200)}`;
    }
    return `${this.status} ${this.problem.code}: ${this.problem.detail}`;
  }
}

// A request the API refused, as an exception (for the reads of the blotter).
export class ApiProblem extends Error {
  constructor(answer) {
    super(answer.describeProblem());
    this.answer = answer;
    this.code = answer.problem?.code ?? "http_error";
  }
}

export class OrderApi {
  // tokenProvider: async () => the demo token of the chosen account, or null.
  constructor(tokenProvider, { fetch = (...args) => globalThis.fetch(...args) } = {}) {
    this.tokenProvider = tokenProvider;
    this.fetch = fetch;
  }

  // Send one request; `body` is the exact text to send (a resend sends the
  // same text). Resolves with the answer whatever its status; rejects only
  // when no answer came (the network).
  async send({ method, path, body = null, key = null }) {
    const headers = { Accept: "application/json" };
    const token = await this.tokenProvider();
    if (token !== null) {
      headers.Authorization = `Bearer ${token}`;
    }
    if (body !== null) {
      headers["Content-Type"] = "application/json";
    }
    if (key !== null) {
      headers["Idempotency-Key"] = key;
    }
    const response = await this.fetch(PROXY + path, {
      method,
      headers,
      body: body ?? undefined,
      cache: "no-store",
    });
    return new ApiAnswer(response.status, response.headers, await response.text());
  }

  // GET and parse, or throw ApiProblem.
  async read(path) {
    const answer = await this.send({ method: "GET", path });
    if (!answer.ok || answer.body === null) {
      throw new ApiProblem(answer);
    }
    return answer.body;
  }

  // One page of an account's orders, newest first: {data, next_cursor}.
  listOrders(account, { cursor = null, limit = 50 } = {}) {
    const query = new URLSearchParams({ account_id: account, limit: String(limit) });
    if (cursor !== null) {
      query.set("cursor", cursor);
    }
    return this.read(`/v1/orders?${query}`);
  }

  getOrder(orderId) {
    return this.read(`/v1/orders/${encodeURIComponent(orderId)}`);
  }

  getPayment(paymentId) {
    return this.read(`/v1/payments/${encodeURIComponent(paymentId)}`);
  }
}
