// The HTTP side of the page: the gateway's configuration, the instrument
// master, demo tokens and the spike. Every request goes to this origin.

export class HttpError extends Error {
  constructor(status, code, message) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

async function request(path, { method = "GET", body = undefined, token = null } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
  }
  if (token !== null) {
    headers.Authorization = `Bearer ${token}`;
  }
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const error = parsed?.error ?? {};
    throw new HttpError(response.status, error.code ?? "http_error", error.message ?? text);
  }
  return parsed;
}

export function fetchConfig() {
  return request("/dashboard/config");
}

export function fetchInstruments() {
  return request("/v1/instruments");
}

// Demo mode: tokens from POST /dashboard/token, one account at a time. The
// page asks again when the token is about to expire, or when told to.
export class DemoTokens {
  constructor({ now = () => Date.now() } = {}) {
    this.now = now;
    this.account = null;
    this.current = null; // {token, exp}
  }

  setAccount(account) {
    if (account !== this.account) {
      this.account = account;
      this.current = null;
    }
  }

  // A token for the chosen account, or null while no account is chosen.
  async token({ fresh = false } = {}) {
    if (this.account === null) {
      return null;
    }
    const current = this.current;
    if (!fresh && current !== null && current.exp * 1000 - this.now() > 30_000) {
      return current.token;
    }
    const issued = await request("/dashboard/token", {
      method: "POST",
      body: { account: this.account },
    });
    this.current = { token: issued.token, exp: issued.exp };
    return issued.token;
  }
}

// Outside demo mode: a token the person pasted, kept in memory only.
export class PastedToken {
  constructor(token, { now = () => Date.now() } = {}) {
    this.value = token.trim();
    this.now = now;
    this.exp = jwtExpiry(this.value);
  }

  // The token, or null once it has expired (it cannot be renewed from here).
  async token() {
    if (this.value === "" || (this.exp !== null && this.exp * 1000 <= this.now())) {
      return null;
    }
    return this.value;
  }
}

// The `exp` claim of a JWT, unverified (the server verifies); null if absent.
export function jwtExpiry(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, "=")));
    return typeof claims.exp === "number" ? claims.exp : null;
  } catch {
    return null;
  }
}

// Demo mode: a 30-second admin token, then the simulator spike with defaults.
export async function triggerSpike() {
  const issued = await request("/dashboard/token", { method: "POST", body: { scope: "admin" } });
  return request("/admin/spike", { method: "POST", body: {}, token: issued.token });
}
