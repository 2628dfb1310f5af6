"""The console in Debian's headless Chromium, driven by Playwright, against the service as it runs
(gunicorn, workers, a private Redis, the sandbox peers). No browser is downloaded: without
/usr/bin/chromium these tests are skipped, except in CI (`CI` set), where they fail."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from sandbox.stack import LocalStack
from tests.integration.conftest import stack  # noqa: F401  (the running service, started once per session)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
# where the screenshots go: docs/screenshots when asked (SCREENSHOTS=docs/screenshots ./test.sh
# tests/browser), else a temporary folder, so a test run leaves the working tree as it was
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS") or tempfile.gettempdir() + "/console-screenshots")
WAIT_MS = 30_000

expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = "Debian's chromium is not installed (apt-get install -y chromium chromium-driver; .ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(reason + ", and CI must run the browser tests")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, stack: LocalStack) -> Iterator[Page]:  # noqa: F811
    """A fresh browser profile (no cookies) on a desktop-sized window."""
    context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page: Page, stack: LocalStack) -> None:  # noqa: F811
    """Sign in through the login form, as an operator does."""
    page.goto("/admin/login")
    page.fill("#token", stack.env["ADMIN_TOKEN"])
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.get_by_role("heading", name="Cửa hàng", exact=True)).to_be_visible()


def screenshot(page: Page, name: str) -> None:
    """A PNG of the whole page (for docs/screenshots, see SCREENSHOTS)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
