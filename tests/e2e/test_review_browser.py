"""The workbench in Debian's Chromium: a reviewer works with the keyboard only; an admin adjudicates.
Screenshots go to test-artifacts/."""
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop

from curation.models import Example, ExampleRevision, Review  # noqa: E402
from curation.selectors.review import ReviewScope  # noqa: E402
from curation.services import review as svc  # noqa: E402
from tests import factories  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = [pytest.mark.browser, pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed")]


@pytest.fixture
def page():
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # a shared 2-core machine can be slow; the assertions stay the same
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


def test_reviewer_reviews_ten_examples_with_the_keyboard(live_server, page):
    from playwright.sync_api import expect

    ds, examples = factories.review_dataset(n=12, guidelines="Approve when the passage **answers** the query.")
    ids = [e.pk for e in examples]
    rita = factories.reviewer(username="rita-kb")

    page.goto(f"{live_server.url}/accounts/login/?next=/review/{ds.pk}/")
    page.get_by_label("Username").fill("rita-kb")
    page.get_by_label("Password").fill("pw-12345678")
    page.get_by_role("button", name="Log in").click()

    def showing(pk):
        expect(page.get_by_role("heading", name=f"Example #{pk}")).to_be_visible()

    showing(ids[0])
    expect(page.get_by_role("button", name="Approve", exact=True)).to_be_visible()
    expect(page.get_by_role("complementary", name="Guidelines")).to_contain_text("answers")
    page.screenshot(path=str(ARTIFACTS / "review-01-first-example.png"), full_page=True)

    expect(page.get_by_role("group", name="Reject reason")).to_be_hidden()
    kb = page.keyboard
    kb.press("a"); showing(ids[1])                       # 1 approve
    kb.press("r")
    expect(page.get_by_role("group", name="Reject reason")).to_be_visible()
    kb.press("2"); showing(ids[2])                       # 2 reject: query unnatural
    kb.press("a"); showing(ids[3])                       # 3 approve
    kb.press("e")                                        # 4 edit the query inline, save and approve
    query_box = page.get_by_role("textbox", name="Query")
    expect(query_box).to_be_visible()
    page.wait_for_function("document.activeElement && document.activeElement.id === 'edit-query'")
    kb.press("Control+a")
    kb.type("How long do I boil an egg for a runny yolk?")
    page.screenshot(path=str(ARTIFACTS / "review-02-inline-edit.png"), full_page=True)
    kb.press("Control+Enter"); showing(ids[4])
    kb.press("a"); showing(ids[5])                       # 5 approve ...
    kb.press("u"); showing(ids[4])                       # ... undo it: the example comes back
    expect(page.get_by_role("status")).to_contain_text(f"Undid your approval of example {ids[4]}")
    page.screenshot(path=str(ARTIFACTS / "review-03-after-undo.png"), full_page=True)
    kb.press("r"); kb.press("1"); showing(ids[5])        # 5 reject: label wrong
    kb.press("s"); showing(ids[6])                       # skip ids[5]
    for key, nxt in (("a", 7), ("a", 8), ("r5", 9), ("a", 10), ("a", 11)):
        for k in key:
            kb.press(k)
        showing(ids[nxt])                                # 6..10
    kb.press("?")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "review-04-help.png"), full_page=True)
    kb.press("Escape")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_hidden()
    page.screenshot(path=str(ARTIFACTS / "review-05-done.png"), full_page=True)

    live = Review.objects.filter(reviewer=rita, undone=False)
    assert live.count() == 10
    assert Review.objects.filter(reviewer=rita, undone=True).count() == 1
    decisions = dict(live.values_list("example_id", "decision"))
    assert decisions[ids[1]] == "reject" and decisions[ids[4]] == "reject" and decisions[ids[8]] == "reject"
    assert ids[5] not in decisions  # skipped
    assert Review.objects.get(reviewer=rita, example_id=ids[4], undone=False).reason == "Label is wrong"
    revision = ExampleRevision.objects.get(example_id=ids[3])
    assert revision.changes["query"]["new"] == "How long do I boil an egg for a runny yolk?"
    assert Example.objects.get(pk=ids[3]).query.text == "How long do I boil an egg for a runny yolk?"
    assert all(s > 0 for s in live.values_list("seconds_spent", flat=True))
    assert Example.objects.filter(pk__in=ids, status__in=["approved", "rejected"]).count() == 10


def test_admin_adjudicates_a_disagreement(live_server, page, client):
    from playwright.sync_api import expect

    ds, [ex] = factories.review_dataset(n=1, reviews_required=2)
    for name, decision in (("ann", "approve"), ("bob", "reject")):
        r = factories.reviewer(username=name)
        svc.review_claim_next(reviewer=r, scope=ReviewScope(dataset=ds))
        svc.review_submit(reviewer=r, example=ex, decision=decision, reason="passage is off topic" if decision == "reject" else "")
    ex.refresh_from_db()
    assert ex.status == Example.Status.IN_ADJUDICATION

    admin = factories.admin(username="ada-adj")
    client.force_login(admin)  # log in by session cookie
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    page.goto(f"{live_server.url}/review/adjudicate/")
    reviews = page.get_by_role("list", name=f"Reviews of example {ex.pk}")
    expect(reviews.get_by_role("listitem")).to_have_count(2)
    expect(reviews).to_contain_text("ann")
    expect(reviews).to_contain_text("passage is off topic")
    page.screenshot(path=str(ARTIFACTS / "review-06-adjudication.png"), full_page=True)
    page.get_by_label("Note").fill("the passage does answer it")
    page.get_by_role("button", name=f"Approve example {ex.pk}").click()
    expect(page.get_by_text("No disagreements waiting")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "review-07-adjudicated.png"), full_page=True)
    ex.refresh_from_db()
    assert ex.status == Example.Status.APPROVED
    verdict = Review.objects.get(example=ex, is_adjudication=True)
    assert (verdict.reviewer, verdict.decision, verdict.reason) == (admin, "approve", "the passage does answer it")
