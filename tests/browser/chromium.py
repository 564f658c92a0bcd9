"""Headless Chromium for the dashboard tests: Debian's /usr/bin/chromium under Playwright.

Playwright never downloads a browser here: it launches the Debian package's
binary (``executable_path``), headless, with a fresh profile directory per
launch. With ``CI=true`` a missing binary fails the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

from playwright.async_api import BrowserContext, ConsoleMessage, Error, Page, async_playwright

from tests.servers import require_binary

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "PageErrors", "chromium"]

CHROMIUM: Final = "/usr/bin/chromium"
CHROMIUM_ARGS: Final = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Every wait of a test is bounded; the slowest (a reconnect after a restart)
# takes a few seconds.
DEFAULT_TIMEOUT_MS: Final = 20_000


@contextlib.asynccontextmanager
async def chromium(profile_dir: Path) -> AsyncIterator[BrowserContext]:
    """A headless Chromium context with its own profile in ``profile_dir``."""
    executable = require_binary(CHROMIUM, "chromium (the Debian package)")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile_dir),
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_ARGS),
            viewport={"width": 1600, "height": 1200},
        )
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        try:
            yield context
        finally:
            await context.close()


class PageErrors:
    """Every console error and uncaught exception of a page (CSP violations included)."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", self._page_error)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(f"console: {message.text}")

    def _page_error(self, error: Error) -> None:
        self.messages.append(f"uncaught: {error}")
