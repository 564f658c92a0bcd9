"""The dashboard in Chromium against a live gateway: settings, opening the page, waits.

Shared by the browser tests that serve a real gateway with its simulator.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

from playwright.async_api import BrowserContext, Page

from gateway.settings import Settings
from tests.browser.chromium import PageErrors, chromium
from tests.builders import make_settings
from tests.harness import RunningGateway

__all__ = ["TICK_RATE_PER_S", "OpenPage", "dashboard_settings", "open_dashboard", "wait_live"]

# Each of the 100 default rows ticks about once a second at this rate: enough
# to watch, and light on a loaded machine. Risk samples ten times a second,
# so its model warms up within seconds.
TICK_RATE_PER_S: Final = 500.0


def dashboard_settings(tmp_path: Path, **sections: Any) -> Settings:
    return make_settings(
        tmp_path,
        simulator={"tick_rate_per_s": TICK_RATE_PER_S},
        risk={"interval_ms": 100},
        **sections,
    )


@dataclasses.dataclass
class OpenPage:
    page: Page
    errors: PageErrors
    context: BrowserContext


@contextlib.asynccontextmanager
async def open_dashboard(gw: RunningGateway, tmp_path: Path) -> AsyncIterator[OpenPage]:
    async with chromium(tmp_path / "chromium-profile") as context:
        page = await context.new_page()
        errors = PageErrors(page)
        await page.goto(f"{gw.url}/")
        yield OpenPage(page, errors, context)


async def wait_live(page: Page) -> None:
    await page.wait_for_selector("#badge[data-state='live']")
