"""Wide tables scroll inside their card at 1280 px: the page itself never scrolls sideways (Debian Chromium)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from evaluation import services
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def page(live_server):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium not installed")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser.new_page(viewport={"width": 1280, "height": 800})
        browser.close()


def test_leaderboard_scrolls_inside_its_card_at_1280px(page, live_server):
    services.reference_results_ensure()  # BRIGHT's 12 tasks + average: far wider than 1280 px
    factories.reviewer(username="rev")
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("rev")
    page.get_by_label("Password").fill("pw-12345678")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Leaderboard").click()

    page_width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert page_width[0] <= page_width[1] <= 1280, page_width
    box = page.get_by_role("region", name="Leaderboard table, scrolls sideways")
    scroll = box.evaluate("el => [el.scrollWidth, el.clientWidth, getComputedStyle(el).overflowX]")
    assert scroll[0] > scroll[1] and scroll[2] in ("auto", "scroll"), scroll
    # its horizontal scrollbar is on screen once the card is: the card is no taller than the window
    assert box.bounding_box()["height"] <= 800

    avg = page.get_by_role("link", name="BRIGHT avg")
    assert avg.bounding_box()["x"] > 1280  # off to the right before scrolling
    box.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    x = avg.bounding_box()["x"]
    assert 0 <= x < 1280
    # the model column stays in view while the card scrolls
    model = page.get_by_role("rowheader", name="ReasonRank")
    assert 0 <= model.bounding_box()["x"] < 200
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
