"""Open a page in headless Chromium (Debian's `chromium`, driven by Playwright) and record it.

What a person would check by eye: the page renders something (the screenshot is not blank),
the console shows no error, and nothing is fetched from another origin.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image
from playwright.async_api import ConsoleMessage, Request, async_playwright

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageVisit:
    """What happened while a page loaded."""

    screenshot: Path
    title: str
    text: str
    console_errors: list[tuple[str, str]] = field(default_factory=list)
    """(message, url of the resource or script it came from) of every console error."""
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(url, resource type) of every request, e.g. ("http://.../app.js", "script")."""

    def foreign_requests(self, origin: str, ignore_types: tuple[str, ...] = ()) -> list[str]:
        """Requests to anything but `origin` (scheme://host[:port]), inline data or blobs."""
        allowed = urlsplit(origin)
        return [
            url
            for url, kind in self.requests
            if kind not in ignore_types
            and not url.startswith(("data:", "about:", "blob:"))
            and (urlsplit(url).scheme, urlsplit(url).netloc) != (allowed.scheme, allowed.netloc)
        ]

    def distinct_colours(self) -> int:
        """How many colours the screenshot uses (a blank page has one)."""
        with Image.open(self.screenshot) as image:
            colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        return len(colours or [])


async def visit(
    url: str,
    screenshot: Path,
    *,
    wait_for: str | None = None,
    width: int = 1000,
    height: int = 1400,
) -> PageVisit:
    """Load `url` in headless Chromium; record console errors and every request made.

    `wait_for` is a CSS selector that appears once a script-rendered page is drawn.
    """
    if CHROMIUM is None:
        raise RuntimeError("Debian's chromium is not installed (`make test` installs it)")
    errors: list[tuple[str, str]] = []
    requests: list[tuple[str, str]] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append((message.text, str(message.location.get("url", ""))))

    def on_request(request: Request) -> None:
        requests.append((request.url, request.resource_type))

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            page.on("console", on_console)
            page.on("pageerror", lambda exc: errors.append((str(exc), url)))
            page.on("request", on_request)
            await page.goto(url, wait_until="networkidle")
            if wait_for is not None:
                await page.wait_for_selector(wait_for, timeout=20_000)
            await page.screenshot(path=str(screenshot), full_page=True)
            title = await page.title()
            text = await page.inner_text("body")
        finally:
            await browser.close()
    return PageVisit(screenshot, title, text, errors, requests)
