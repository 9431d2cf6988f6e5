"""A blind audit in Debian's Chromium: an admin starts it from the page, a reviewer works it with the keyboard and
the DOM holds none of the example's labels, judgment, votes or trace until the verdict is given; the admin reads the
report card. Screenshots go to test-artifacts/ (docs/img/audit-*.png are copies)."""
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop

from curation.models import Audit, AuditVerdict  # noqa: E402
from tests import factories  # noqa: E402
from tests.curation.audit_helpers import audit_examples  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = [pytest.mark.browser, pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed")]
KEYS = {"relevant": ["a"], "not_relevant": ["r", "1"], "unusable": ["r", "4"]}


@pytest.fixture
def page():
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15000)
        yield context.new_page()
        context.close()
        browser.close()


def _login_as(page, client, live_server, user):
    client.force_login(user)  # log in by session cookie
    page.context.clear_cookies()
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])


def test_an_audit_worked_blind_then_its_report_card(live_server, page, client):
    from playwright.sync_api import expect

    examples, verdicts = audit_examples()
    trace_of = {e.pk: e.reasoning_trace for e in examples}
    admin = factories.admin(username="ada-audit")
    _login_as(page, client, live_server, admin)
    page.goto(f"{live_server.url}/audits/")
    page.get_by_label("Dataset or generation run").select_option(label=f"dataset {examples[0].dataset.name}")
    page.get_by_label("Sample size").fill("10")
    page.get_by_label("Seed").fill("11")
    page.get_by_role("button", name="Start audit").click()
    expect(page.get_by_role("status").first).to_contain_text("10 examples sampled")
    audit = Audit.objects.get()

    _login_as(page, client, live_server, factories.reviewer(username="rita-audit"))
    page.goto(f"{live_server.url}/audits/")
    page.get_by_role("link", name=f"Work audit {audit.pk}").click()
    card = page.locator("#review-card")
    seen = []
    for n in range(10):
        heading = card.get_by_role("heading", name="Example #")
        expect(heading).to_be_visible()
        example_id = int(heading.inner_text().split("#")[1])
        assert example_id not in seen
        seen.append(example_id)
        # Before the decision: nothing of this example's label, judgment, votes or trace anywhere in the DOM.
        dom = page.content()
        assert trace_of[example_id] not in dom
        assert "{#" not in dom  # no template comment leaks into the page
        card_html = card.inner_html()
        for hidden in ("Intended label", "Reasoner judgment", "Reasoning trace", "votes", "Filtered out", "Hard negative"):
            assert hidden not in card_html, (hidden, example_id)
        if n == 0:
            page.screenshot(path=str(ARTIFACTS / "audit-01-blind-card.png"), full_page=True)
        for key in KEYS[verdicts[example_id]]:
            if key in "1234":
                expect(card.get_by_role("group", name="Verdict")).to_be_visible()
            page.keyboard.press(key)
        # After it: the example just judged is revealed, with its label and trace.
        reveal = page.get_by_role("region", name="Your last verdict")
        expect(reveal).to_contain_text(f"Example #{example_id}, after your verdict")
        expect(reveal).to_contain_text("Intended label")
        assert trace_of[example_id] in page.content()
        if n == 0:
            page.screenshot(path=str(ARTIFACTS / "audit-02-revealed.png"), full_page=True)
    expect(card).to_contain_text("Nothing left for you in this audit")
    assert sorted(seen) == sorted(verdicts)
    assert dict(AuditVerdict.objects.values_list("member__example_id", "verdict")) == verdicts

    _login_as(page, client, live_server, admin)
    page.goto(f"{live_server.url}/audits/{audit.pk}/")
    report = page.get_by_role("region", name=f"Report card of audit {audit.pk}")
    expect(report.locator('[data-figure="precision"]')).to_have_text("0.6667")
    expect(report.locator('[data-figure="recall"]')).to_have_text("0.8")
    expect(report.locator('[data-figure="kappa"]')).to_have_text("0.4")
    expect(report).to_contain_text("[0.3, 0.9032] Wilson")
    expect(page.get_by_role("region", name="Keep threshold").locator("svg")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "audit-03-report-card.png"), full_page=True)
