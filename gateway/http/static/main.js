// The dashboard page: reads the gateway's configuration and instruments,
// then wires the client, the badge and the panels together.

import { DemoTokens, PastedToken, fetchConfig, fetchInstruments, triggerSpike } from "./api.js";
import { ConnectionBadge, LatencyMeter } from "./badge.js";
import { Blotter } from "./blotter.js";
import { PnlChart } from "./chart.js";
import { GatewayClient } from "./client.js";
import { OrderApi } from "./orderapi.js";
import { PortfolioView } from "./portfolio.js";
import { QuotesGrid } from "./quotes.js";
import { LastRequest, OrderTicket, PaymentForm } from "./ticket.js";

const $ = (id) => document.getElementById(id);

async function main() {
  const [config, instruments] = await Promise.all([fetchConfig(), fetchInstruments()]);
  const tokens = config.demo ? new DemoTokens() : null;
  let pasted = null;
  const tokenProvider = async (options) => {
    if (tokens !== null) {
      return tokens.token(options);
    }
    return pasted === null ? null : pasted.token();
  };
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const client = new GatewayClient(`${scheme}//${location.host}/ws`, {
    heartbeatIntervalS: config.heartbeat_interval_s,
    tokenProvider,
  });
  const latency = new LatencyMeter();
  new ConnectionBadge($("badge"), client, latency);
  new QuotesGrid(
    { table: $("quotes"), search: $("search"), count: $("quote-count") },
    client,
    latency,
    instruments,
  );
  const portfolio = new PortfolioView(
    {
      root: $("portfolio"),
      notice: $("portfolio-notice"),
      flags: $("portfolio-flags"),
      currency: $("portfolio-currency"),
      totals: $("totals"),
      positions: $("positions"),
      var: $("var"),
      stress: $("stress"),
      riskMeta: $("risk-meta"),
    },
    client,
    new PnlChart($("pnl-chart")),
  );
  // The order API through /dashboard/api (demo mode, with the account's
  // demo token); outside demo mode the page cannot reach it.
  const api = config.orders ? new OrderApi(() => tokens.token()) : null;
  const blotter = new Blotter(
    {
      root: $("blotter"),
      orders: $("blotter-orders"),
      activity: $("blotter-activity"),
      count: $("blotter-count"),
      notice: $("blotter-notice"),
    },
    client,
    api,
  );
  if (api !== null) {
    wireTicket(api, instruments, () => portfolio.account, () => portfolio.currency ?? null);
  }

  // The account: in demo mode any demo account, with a demo token for it;
  // otherwise an account of the token the person pastes.
  async function watch(account) {
    if (account === portfolio.account) {
      return;
    }
    if (portfolio.account !== null) {
      client.unsubscribe("portfolio", [portfolio.account]);
      client.unsubscribe("orders", [portfolio.account]);
    }
    portfolio.show(account);
    blotter.show(account);
    setText($("ticket-account"), account ?? "");
    if (account === null) {
      return;
    }
    if (tokens !== null) {
      tokens.setAccount(account);
      try {
        await tokens.token();
      } catch (e) {
        portfolio.notice(e.message);
        return;
      }
    }
    await client.reauthenticate();
    // Another account may have been chosen while this one's token came.
    if (portfolio.account === account) {
      client.subscribe("portfolio", [account]);
      client.subscribe("orders", [account]);
    }
  }

  const accountInput = $("account");
  $("accounts").replaceChildren(
    ...config.accounts.map((account) => new Option(account, account)),
  );
  $("account-form").addEventListener("submit", (event) => {
    event.preventDefault();
    watch(accountInput.value.trim() || null);
  });
  if (tokens !== null) {
    setText($("account-hint"), `${config.accounts_total} demo accounts`);
    accountInput.value = config.accounts[0] ?? "";
    watch(config.accounts[0] ?? null);
  } else {
    $("token-form").hidden = false;
    setText($("account-hint"), "paste a token that reads an account");
    $("token-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      pasted = new PastedToken($("token").value);
      $("token").value = "";
      await client.reauthenticate();
    });
    client.onChange((status) => {
      const granted = status.auth?.accounts ?? [];
      if (granted.length > 0 && portfolio.account === null) {
        $("accounts").replaceChildren(...granted.map((a) => new Option(a, a)));
        accountInput.value = granted[0];
        watch(granted[0]);
      }
    });
  }

  if (config.spike) {
    wireSpike($("spike"), $("spike-status"));
  }
  client.start();
  globalThis.tickgate = { client, latency, portfolio, blotter };
}

// Demo mode: the order ticket and the payments form, sharing the last
// request and its "Send again".
function wireTicket(api, instruments, account, currency) {
  $("ticket").hidden = false;
  const last = new LastRequest(
    {
      root: $("last-request"),
      what: $("last-request").querySelector("[data-part=what]"),
      key: $("last-request").querySelector("[data-part=key]"),
      answer: $("last-request").querySelector("[data-part=answer]"),
      replay: $("last-request").querySelector("[data-part=replay]"),
      again: $("send-again"),
    },
    api,
  );
  new OrderTicket(
    {
      form: $("order-form"),
      symbol: $("order-symbol"),
      symbols: $("symbols"),
      quantity: $("order-quantity"),
      type: $("order-type"),
      limit: $("order-limit"),
      tif: $("order-tif"),
      hint: $("order-hint"),
    },
    last,
    { instruments, account },
  );
  new PaymentForm(
    {
      form: $("payment-form"),
      kind: $("payment-kind"),
      amount: $("payment-amount"),
      currency: $("payment-currency"),
      reference: $("payment-reference"),
    },
    last,
    { account, currency },
  );
}

// Demo mode: the button starts a simulator spike (the defaults of
// POST /admin/spike) and stays disabled while it lasts.
function wireSpike(button, status) {
  button.hidden = false;
  button.addEventListener("click", async () => {
    button.disabled = true;
    setText(status, "starting\u2026");
    try {
      const spike = await triggerSpike();
      setText(
        status,
        `spike: ticks \u00d7${spike.rate_multiplier}, volatility \u00d7${spike.vol_multiplier}` +
          ` for ${spike.duration_s} s`,
      );
      setTimeout(() => {
        button.disabled = false;
        setText(status, "");
      }, spike.duration_s * 1000);
    } catch (e) {
      setText(status, e.message);
      button.disabled = false;
    }
  });
}

function setText(element, text) {
  element.textContent = text;
}

main().catch((e) => {
  const banner = $("fatal");
  banner.hidden = false;
  banner.textContent = `The dashboard could not start: ${e.message}`;
});
