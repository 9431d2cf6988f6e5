"""The leaderboard in a real browser (Debian Chromium): measured and reported rows, sorting, link to the run."""
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
        yield browser.new_page()
        browser.close()


def test_reviewer_reads_and_sorts_the_leaderboard(page, live_server, tmp_path, settings):
    from tests.evaluation.conftest import scifact_subset

    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    bench = services.benchmark_import_path(format="beir", path=scifact_subset(tmp_path / "sf"), name="scifact-mini")[0]
    run = services.eval_run_create(benchmark=bench, model=services.reranker_model_register(name="bm25", kind="bm25"),
                                   top_k=10, enqueue=False)
    services.eval_run_execute(run_id=run.pk)
    run.refresh_from_db()
    services.reference_results_ensure()
    factories.reviewer(username="rev")
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("rev")
    page.get_by_label("Password").fill("pw-12345678")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Leaderboard").click()
    table = page.get_by_role("table", name="Leaderboard")
    assert table.get_by_role("rowheader", name="ReasonRank").is_visible()
    assert table.get_by_text("measured here").count() == 1
    page.get_by_role("link", name="BRIGHT avg").click()
    first = table.get_by_role("row").nth(1)
    assert "ReasonRank" in first.inner_text() and "40.6" in first.inner_text()
    assert page.locator("figure.plot svg").count() >= 2
    Path("test-artifacts").mkdir(exist_ok=True)
    page.screenshot(path="test-artifacts/leaderboard.png", full_page=True)
    page.get_by_role("link", name=f"{100 * run.metrics['ndcg_cut_10']:.1f}").first.click()
    assert page.get_by_role("heading", name=f"Eval run {run.pk}: bm25 on scifact-mini").is_visible()
    assert page.get_by_role("link", name="Download the run file (TREC)").is_visible()
