"""Pages in a real browser: Debian's Chromium driven by Playwright, checked by axe-core.

Nothing is downloaded when the tests run: Chromium comes from Debian (`.ci/run` installs it),
Playwright from the lock file, axe-core from npm by `make test` (`package-lock.json`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
# Each page's screenshot, for a person to look at after the run (not kept in git).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
# WCAG 2.2 AA, as axe-core tags its rules; what must not be found at these impacts.
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
BLOCKING = ("serious", "critical")


def require_browser() -> None:
    """Required on CI (CI=true): fail there; elsewhere skip, saying what is missing."""
    missing = [what for what, there in ((f"Chromium at {CHROMIUM} (apt-get install chromium)", CHROMIUM.exists()),
                                         ("axe-core (make test installs it)", AXE.exists())) if not there]
    if not missing:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{'; '.join(missing)}: the browser tests are required on CI")
    pytest.skip(f"{'; '.join(missing)}")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    require_browser()
    async with async_playwright() as p:
        # No sandbox: CI runs as root, where Chromium's own sandbox refuses to start.
        b = await p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        await b.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    p = await context.new_page()
    yield p
    await context.close()


async def accessibility_faults(page: Page) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.2 AA violations of serious or critical impact on the page as it is now."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG)
    return [{"rule": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
            for v in result["violations"] if v["impact"] in BLOCKING]


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


def describe(faults: list[dict[str, Any]]) -> str:
    return json.dumps(faults, indent=1)
