"""A page for driving the dashboard's modules with scripted input: no gateway.

Playwright serves a fake origin from the package's static directory (the
modules as the page loads them) and ``fakes.js``; a test imports the modules
it needs in ``page.evaluate`` and drives them with fakes.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

from playwright.async_api import Page, Route

from gateway.http.dashboard import STATIC_DIR
from tests.browser.chromium import PageErrors, chromium

__all__ = ["ORIGIN", "scripted_page"]

ORIGIN: Final = "http://tickgate.test"
FAKES: Final = Path(__file__).with_name("fakes.js")


async def _serve(route: Route) -> None:
    path = urllib.parse.urlsplit(route.request.url).path
    if path == "/":
        await route.fulfill(body="<!doctype html><title>t</title>", content_type="text/html")
    elif path == "/fakes.js":
        await route.fulfill(path=FAKES, content_type="text/javascript")
    elif path.startswith("/static/") and (STATIC_DIR / path.removeprefix("/static/")).is_file():
        file = STATIC_DIR / path.removeprefix("/static/")
        await route.fulfill(path=file, content_type="text/javascript")
    else:
        await route.fulfill(status=404, body="")


@contextlib.asynccontextmanager
async def scripted_page(profile_dir: Path) -> AsyncIterator[Page]:
    """The fake origin's empty page; fails at exit if the page logged an error."""
    async with chromium(profile_dir) as context:
        page = await context.new_page()
        errors = PageErrors(page)
        await page.route(f"{ORIGIN}/**", _serve)
        await page.goto(f"{ORIGIN}/")
        yield page
        assert errors.messages == []
