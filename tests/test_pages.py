"""Pages people use, in a real browser: what they show, how they behave, and WCAG 2.2 AA."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page

import crypto
from workers._codec_server import COOKIE, start_codec_server

from .browser import accessibility_faults, describe, screenshot

ORIGIN = "http://127.0.0.1:8233"


@pytest.fixture
async def codec_site(tmp_path: Path, unused_tcp_port: int):
    vault = await crypto.HistoryKeys.open(f"sqlite+aiosqlite:///{tmp_path / 'vault.db'}",
                                          crypto.KeyRing.create(tmp_path / "ring.json"))
    runner = await start_codec_server(crypto.EncryptionCodec(vault), "the-token", (ORIGIN,), "127.0.0.1",
                                      unused_tcp_port)
    yield f"http://127.0.0.1:{unused_tcp_port}"
    await runner.cleanup()
    await vault.close()


async def test_an_operator_signs_in_to_the_codec_server_with_the_token_in_a_browser(
    page: Page, codec_site: str,
) -> None:
    """The operator's sign-in page (docs/SECURITY.md, decoding in the Web UI): labelled, in
    English, accessible (no serious or critical WCAG 2.2 AA fault); a wrong token is refused, the
    right one leaves an HttpOnly, SameSite=Strict session cookie and never the token itself."""
    await page.goto(f"{codec_site}/login")
    assert await page.title() == "Safeshare codec server"
    faults = await accessibility_faults(page)
    await screenshot(page, "codec-server-sign-in")
    assert faults == [], describe(faults)

    token = page.get_by_label("Operator token")
    await token.fill("not-the-token")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_text("wrong token").wait_for()
    assert await page.context.cookies() == []

    await page.goto(f"{codec_site}/login")
    await page.get_by_label("Operator token").fill("the-token")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_text("Signed in").wait_for()
    [cookie] = await page.context.cookies()
    assert cookie["name"] == COOKIE and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "the-token" not in cookie["value"]
