"""The dashboard in headless Chromium against a real gateway with its simulator.

Each test serves a gateway on a free port, opens ``/`` in a fresh browser
profile and waits, with deadlines, for what a person would see: quotes
that change, a portfolio whose P&L moves, a badge that comes back after the
server drops the connection, a spike that starts. Every test also checks
that the page logged no console error (a CSP violation would be one).
"""

from __future__ import annotations

import re

import orjson
import pytest
from playwright.async_api import Page

from gateway.marketdata.simulator import SimulatorSource
from gateway.ws import closecodes
from tests.browser.live import dashboard_settings, open_dashboard, wait_live
from tests.builders import make_token
from tests.harness import http, running_gateway
from tests.servers import free_port

# Each test takes a few seconds (a browser, a gateway, and live data to wait for).
pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]


async def displayed_bids(page: Page) -> dict[str, str]:
    result: dict[str, str] = await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll("#quotes tbody tr")]
             .map((tr) => [tr.dataset.symbol,
                           tr.querySelector("[data-field=bid]").dataset.value ?? ""]))"""
    )
    return result


async def wait_quotes_change(page: Page, before: dict[str, str], rows: int = 10) -> None:
    """Wait until at least ``rows`` rows show a bid other than in ``before``."""
    await page.wait_for_function(
        """([before, rows]) => [...document.querySelectorAll("#quotes tbody tr")]
             .filter((tr) => {
               const bid = tr.querySelector("[data-field=bid]").dataset.value;
               return bid !== undefined && bid !== before[tr.dataset.symbol];
             }).length >= rows""",
        arg=[before, rows],
    )


async def total_pnl(page: Page) -> str:
    value = await page.get_attribute("dd[data-total='total_pnl']", "data-value")
    return value or ""


async def test_page_loads_without_console_errors_and_quotes_update(tmp_path):
    async with (
        running_gateway(dashboard_settings(tmp_path)) as gw,
        open_dashboard(gw, tmp_path) as opened,
    ):
        page = opened.page
        await wait_live(page)
        first = await displayed_bids(page)
        await wait_quotes_change(page, first)
        await page.wait_for_function(
            "() => Number(document.querySelector('#badge').dataset.latencySamples) > 0"
        )
        rows = await page.locator("#quotes tbody tr").count()
        p50 = await page.text_content("[data-part=p50]")
        count = await page.text_content("#quote-count")
        clients = len(gw.gateway.hub.connections)

    assert rows == 100
    assert count == f"100 of {len(gw.gateway.master)} instruments"
    assert p50 is not None
    assert p50.endswith(" ms")
    assert clients == 1
    assert opened.errors.messages == []


async def test_search_shows_and_subscribes_only_the_matching_symbols(tmp_path):
    async with (
        running_gateway(dashboard_settings(tmp_path)) as gw,
        open_dashboard(gw, tmp_path) as opened,
    ):
        page = opened.page
        await wait_live(page)
        await page.fill("#search", "USD")
        await page.wait_for_function(
            """() => [...document.querySelectorAll("#quotes tbody tr")]
                 .every((tr) => tr.dataset.symbol.includes("USD"))"""
        )
        # The FX pairs are priced by the simulator: each row gets its snapshot.
        await page.wait_for_function(
            """() => [...document.querySelectorAll("#quotes tbody [data-field=bid]")]
                 .every((td) => td.dataset.value !== undefined)"""
        )
        symbols = await page.eval_on_selector_all(
            "#quotes tbody tr", "rows => rows.map(r => r.dataset.symbol)"
        )
        subscribed = await page.evaluate("() => [...tickgate.client.wanted.get('quotes')]")

    expected = sorted(s for s in gw.gateway.master.symbols if "USD" in s)
    assert sorted(symbols) == expected
    assert set(subscribed) == set(expected)
    assert opened.errors.messages == []


async def test_portfolio_shows_the_accounts_positions_moving_pnl_and_named_risk(tmp_path):
    async with (
        running_gateway(dashboard_settings(tmp_path)) as gw,
        open_dashboard(gw, tmp_path) as opened,
    ):
        page = opened.page
        await wait_live(page)
        await page.wait_for_function(
            "() => document.querySelector(\"dd[data-total='total_pnl']\").dataset.value"
        )
        first = await total_pnl(page)
        await page.wait_for_function(
            """(first) => {
                 const v = document.querySelector("dd[data-total='total_pnl']").dataset.value;
                 return v && v !== first;
               }""",
            arg=first,
        )
        await page.wait_for_function(
            "() => Number(document.querySelector('#pnl-chart').dataset.points) >= 3"
        )
        await page.wait_for_selector("#risk-meta[data-status='ok']")
        methods = await page.eval_on_selector_all(
            "#var tbody tr", "rows => rows.map(r => r.cells[0].textContent)"
        )
        stress_rows = await page.locator("#stress tbody tr").count()
        shown = await page.eval_on_selector_all(
            "#positions tbody tr", "rows => rows.map(r => r.cells[0].textContent)"
        )
        await page.screenshot(path=str(tmp_path / "dashboard.png"))
        token = make_token(accounts=["DEMO-0001"])
        _, body = await http("GET", f"{gw.url}/v1/accounts/DEMO-0001", token=token)

    held = sorted(row["symbol"] for row in orjson.loads(body)["positions"])
    assert sorted(shown) == held
    # Each VaR row names its method and its parameters.
    parametric, historical = (
        "parametric (EWMA, sector factor, \u03bb 0.94",
        "historical (window 250",
    )
    assert [m[: len(parametric)] for m in methods[:2]] == [parametric] * 2
    assert [m[: len(historical)] for m in methods[2:]] == [historical] * 2
    assert stress_rows == len(orjson.loads(body)["risk"]["stress"])
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    assert opened.errors.messages == []


async def test_choosing_another_demo_account_moves_the_portfolio_to_it(tmp_path):
    async with (
        running_gateway(dashboard_settings(tmp_path)) as gw,
        open_dashboard(gw, tmp_path) as opened,
    ):
        page = opened.page
        await page.wait_for_selector("#portfolio[data-account='DEMO-0001'] #positions tbody tr")
        await page.fill("#account", "DEMO-0007")
        await page.click("#account-form button")
        await page.wait_for_function(
            """() => document.querySelector("#portfolio").dataset.account === "DEMO-0007"
                 && document.querySelector("#portfolio").dataset.seq !== "" """
        )
        shown = await page.eval_on_selector_all(
            "#positions tbody tr", "rows => rows.map(r => r.cells[0].textContent)"
        )
        subscribed = await page.evaluate("() => [...tickgate.client.wanted.get('portfolio')]")
        token = make_token(accounts=["DEMO-0007"])
        _, body = await http("GET", f"{gw.url}/v1/accounts/DEMO-0007", token=token)

    assert sorted(shown) == sorted(row["symbol"] for row in orjson.loads(body)["positions"])
    assert subscribed == ["DEMO-0007"]
    assert opened.errors.messages == []


async def test_badge_recovers_after_the_server_closes_every_connection(tmp_path):
    async with (
        running_gateway(dashboard_settings(tmp_path)) as gw,
        open_dashboard(gw, tmp_path) as opened,
    ):
        page = opened.page
        await wait_live(page)
        await page.wait_for_selector("#portfolio #positions tbody tr")
        for connection in list(gw.gateway.hub.connections):
            connection.close(closecodes.GOING_AWAY, "server closing")
        await page.wait_for_selector("#badge[data-reconnects='1'][data-state='live']")
        before = await displayed_bids(page)
        await wait_quotes_change(page, before)
        status = await page.evaluate("() => tickgate.client.status()")

    assert status["lastClose"]["code"] == 1001
    assert status["gaps"] == 0
    # The quotes' missed updates were still in the server's history.
    assert status["recovered"] >= 100
    assert opened.errors.messages == []


async def test_badge_recovers_after_a_gateway_restart_with_the_new_epoch(tmp_path):
    settings = dashboard_settings(tmp_path)
    port = free_port()
    async with running_gateway(settings, port=port) as first:
        old_epoch = first.gateway.epoch
        async with open_dashboard(first, tmp_path) as opened:
            page = opened.page
            await page.wait_for_selector(f"[data-part=epoch]:has-text('{old_epoch}')")
            await first.server.shutdown()
            await page.wait_for_selector("#badge[data-state='reconnecting']")
            async with running_gateway(settings, port=port) as second:
                await page.wait_for_selector(
                    f"[data-part=epoch]:has-text('{second.gateway.epoch}')"
                )
                await wait_live(page)
                before = await displayed_bids(page)
                await wait_quotes_change(page, before)
                await page.wait_for_function(
                    """(epoch) => tickgate.client.trackers.get("portfolio")
                         .keys.get("DEMO-0001")?.epoch === epoch""",
                    arg=second.gateway.epoch,
                )
                status = await page.evaluate("() => tickgate.client.status()")

    assert second.gateway.epoch != old_epoch
    assert status["reconnects"] >= 1
    assert status["gaps"] == 0
    # While the server stopped and no server listened, Chromium itself logged
    # each failed attempt (refused, or answered 503 while shutting down).
    failed = re.compile(r"console: WebSocket connection to 'ws://[^']+' failed: ")
    assert [m for m in opened.errors.messages if not failed.match(m)] == []


async def test_spike_button_starts_a_simulator_spike(tmp_path):
    async with (
        running_gateway(dashboard_settings(tmp_path)) as gw,
        open_dashboard(gw, tmp_path) as opened,
    ):
        page = opened.page
        await wait_live(page)
        await page.click("#spike")
        await page.wait_for_selector("#spike-status:has-text('spike:')")
        status = await page.text_content("#spike-status")
        is_disabled = await page.is_disabled("#spike")
        source = gw.gateway.source
        assert isinstance(source, SimulatorSource)
        regime = source.model.regime

    assert status == "spike: ticks \u00d710, volatility \u00d75 for 30 s"
    assert regime.name == "spike"
    assert is_disabled
    assert opened.errors.messages == []


async def test_outside_demo_mode_a_pasted_token_shows_its_account(tmp_path):
    settings = dashboard_settings(tmp_path, dashboard={"demo": False})
    async with running_gateway(settings) as gw, open_dashboard(gw, tmp_path) as opened:
        page = opened.page
        await wait_live(page)
        spike_hidden = await page.is_hidden("#spike")
        await page.fill("#token", make_token(subject="alice", accounts=["DEMO-0002"]))
        await page.click("#token-form button")
        await page.wait_for_selector("#portfolio[data-account='DEMO-0002'] #positions tbody tr")
        await page.wait_for_function(
            "() => document.querySelector(\"dd[data-total='equity']\").dataset.value"
        )
        token_status, _ = await http(
            "POST", f"{gw.url}/dashboard/token", body=b'{"account":"DEMO-0002"}'
        )

    assert spike_hidden
    assert token_status == 404
    assert opened.errors.messages == []
