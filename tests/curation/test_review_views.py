"""Review pages and JSON endpoints: roles, blindness, claims that belong to someone else, htmx flow."""
import pytest
from django.urls import reverse

from curation.models import Example, Review, ReviewClaim
from curation.selectors.review import ReviewScope
from curation.services import review as svc
from limrank_app.services import api_token_create
from tests import factories

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def test_anonymous_users_are_sent_to_login(client):
    ds, [ex] = factories.review_dataset(n=1)
    for url in (reverse("curation:review_index"), reverse("curation:review_queue", args=[ds.pk]),
                reverse("curation:review_dashboard"), reverse("curation:review_adjudicate"),
                reverse("curation:review_browse"), reverse("curation:review_quality")):
        resp = client.get(url)
        assert resp.status_code == 302 and resp["Location"].startswith(reverse("login")), url
    resp = client.post(reverse("curation:review_decide", args=[ds.pk, ex.pk]), {"decision": "approve"})
    assert resp.status_code == 302 and Review.objects.count() == 0
    assert client.post(reverse("api-review-next"), {"dataset": ds.pk}).status_code in (401, 403)


def test_reviewers_cannot_reach_admin_pages(reviewer_client):
    for url in (reverse("curation:review_dashboard"), reverse("curation:review_adjudicate"),
                reverse("curation:review_browse"), reverse("curation:review_quality"), reverse("api-review-agreement")):
        assert reviewer_client.get(url).status_code == 403, url
    ds, [ex] = factories.review_dataset(n=1)
    resp = reviewer_client.post(reverse("curation:review_browse"), {"dataset": ds.pk, "bulk_decision": "approve"})
    assert resp.status_code == 403
    ex.refresh_from_db()
    assert ex.status == Example.Status.PENDING_REVIEW


def test_users_without_a_role_get_403(client):
    ds, _ = factories.review_dataset(n=1)
    client.force_login(factories.UserFactory())
    assert client.get(reverse("curation:review_queue", args=[ds.pk])).status_code == 403


def test_queue_page_shows_the_example_blind_to_other_reviewers(reviewer_client, reviewer_user):
    ds, [ex] = factories.review_dataset(n=1, reviews_required=2, guidelines="**Relevant** means the passage *answers* it.")
    other = factories.reviewer(username="otto")
    svc.review_claim_next(reviewer=other, scope=ReviewScope(dataset=ds))
    svc.review_submit(reviewer=other, example=ex, decision="reject", reason="SECRET-REASON-XYZ")
    reviewer_client.post(reverse("curation:review_next", args=[ds.pk]))
    html = reviewer_client.get(reverse("curation:review_queue", args=[ds.pk])).content.decode()
    assert f"Example #{ex.pk}" in html
    assert ex.query.text in html and ex.passage.text in html and ex.reasoning_trace in html
    assert "<strong>Relevant</strong> means the passage <em>answers</em> it." in html  # guidelines as Markdown
    for name in ('aria-label="Approve"', 'aria-label="Reject"', 'aria-label="Edit"', 'aria-label="Skip"',
                 'aria-label="Undo last"', 'aria-label="Keyboard help"', "<summary>Reasoning trace</summary>"):
        assert name in html
    assert "SECRET-REASON-XYZ" not in html and "otto" not in html
    assert ReviewClaim.objects.get(reviewer=reviewer_user).example_id == ex.pk


def test_opening_the_queue_page_claims_nothing_the_post_does(reviewer_client, reviewer_user):
    ds, [ex, _] = factories.review_dataset(n=2)
    page = reverse("curation:review_queue", args=[ds.pk])
    html = reviewer_client.get(page).content.decode()
    assert ReviewClaim.objects.count() == 0  # a GET (prefetch, reload, crawler) takes no slot
    next_url = reverse("curation:review_next", args=[ds.pk])
    assert f'method="post" action="{next_url}"' in html and f'hx-post="{next_url}"' in html
    assert 'aria-label="Start reviewing"' in html and f"Example #{ex.pk}" not in html
    # The form's POST claims; without htmx it comes back to the page, which shows the claim.
    resp = reviewer_client.post(next_url)
    assert resp.status_code == 302 and resp["Location"] == page
    claim = ReviewClaim.objects.get(reviewer=reviewer_user)
    assert claim.example_id == ex.pk
    html = reviewer_client.get(page).content.decode()
    assert f"Example #{ex.pk}" in html and 'aria-label="Approve"' in html
    # Showing the held claim again neither renews it nor takes another slot.
    assert list(ReviewClaim.objects.values_list("pk", "expires_at")) == [(claim.pk, claim.expires_at)]


def test_guidelines_markdown_does_not_pass_raw_html(reviewer_client):
    ds, _ = factories.review_dataset(n=1, guidelines="<script>alert(1)</script>")
    html = reviewer_client.get(reverse("curation:review_queue", args=[ds.pk])).content.decode()
    assert "<script>alert(1)</script>" not in html


def test_htmx_decide_swaps_in_the_next_example(reviewer_client, reviewer_user):
    ds, [first, second] = factories.review_dataset(n=2)
    original_query = second.query.text
    reviewer_client.post(reverse("curation:review_next", args=[ds.pk]))
    resp = reviewer_client.post(reverse("curation:review_decide", args=[ds.pk, first.pk]),
                                {"decision": "reject", "reason_code": "3", "seconds_spent": "2.5"}, **HX)
    assert resp.status_code == 200
    html = resp.content.decode()
    assert f"Example #{second.pk}" in html and "<html" not in html  # a partial, not a page
    assert 'id="review-flash"' in html and f"Rejected example {first.pk}" in html
    review = Review.objects.get(example=first)
    assert (review.decision, review.reason_code, review.reason) == ("reject", 3, "Passage is wrong or low quality")
    assert 0 < review.seconds_spent <= 2.5
    # Edit + approve in one go, then undo brings the edited example back unedited.
    resp = reviewer_client.post(reverse("curation:review_decide", args=[ds.pk, second.pk]),
                                {"decision": "approve", "edit": "1", "query": "edited query", "passage": second.passage.text,
                                 "trace": second.reasoning_trace, "label": "false"}, **HX)
    assert "Nothing left for you here" in resp.content.decode()
    second.refresh_from_db()
    assert (second.query.text, second.intended_label, second.status) == ("edited query", False, Example.Status.APPROVED)
    resp = reviewer_client.post(reverse("curation:review_undo", args=[ds.pk]), **HX)
    html = resp.content.decode()
    assert f"Example #{second.pk}" in html and "You had <strong>approved</strong>" in html
    second.refresh_from_db()
    second.query.refresh_from_db()
    assert (second.query.text, second.intended_label, second.status) == (original_query, True, Example.Status.PENDING_REVIEW)


def test_invalid_edit_is_reported_and_nothing_is_saved(reviewer_client):
    ds, [ex] = factories.review_dataset(n=1)
    reviewer_client.post(reverse("curation:review_next", args=[ds.pk]))
    resp = reviewer_client.post(reverse("curation:review_decide", args=[ds.pk, ex.pk]),
                                {"decision": "approve", "edit": "1", "query": "   ", "passage": "x", "trace": "", "label": "true"}, **HX)
    assert resp.status_code == 422 and "must not be empty" in resp.content.decode()
    assert Review.objects.count() == 0


def test_a_reviewer_cannot_act_on_another_reviewers_claim(reviewer_client, reviewer_user):
    ds, [ex] = factories.review_dataset(n=1)
    owner = factories.reviewer(username="owner")
    svc.review_claim_next(reviewer=owner, scope=ReviewScope(dataset=ds))
    # The queue does not show it (its only slot is held) ...
    html = reviewer_client.post(reverse("curation:review_next", args=[ds.pk]), **HX).content.decode()
    assert "Nothing left for you here" in html and ex.query.text not in html
    # ... and posting to it directly is refused, for every action.
    assert reviewer_client.post(reverse("curation:review_decide", args=[ds.pk, ex.pk]), {"decision": "approve"}, **HX).status_code == 403
    assert reviewer_client.post(reverse("curation:review_skip", args=[ds.pk, ex.pk]), **HX).status_code == 403
    other_ds, [other_ex] = factories.review_dataset(n=1)
    assert reviewer_client.post(reverse("curation:review_decide", args=[ds.pk, other_ex.pk]), {"decision": "approve"}).status_code == 403
    assert Review.objects.count() == 0
    assert ReviewClaim.objects.get(example=ex).reviewer == owner
    assert svc.review_undo_last(reviewer=reviewer_user) is None


def test_plain_form_posts_redirect_back_to_the_queue(reviewer_client):
    ds, [ex, _] = factories.review_dataset(n=2)
    reviewer_client.post(reverse("curation:review_next", args=[ds.pk]))
    resp = reviewer_client.post(reverse("curation:review_decide", args=[ds.pk, ex.pk]), {"decision": "approve"})
    assert resp.status_code == 302 and resp["Location"] == reverse("curation:review_queue", args=[ds.pk])


def test_run_queue(reviewer_client):
    run = factories.GenerationRunFactory()
    ex = factories.ExampleFactory(generation_run=run, dataset=None)
    reviewer_client.post(reverse("curation:review_run_next", args=[run.pk]))
    html = reviewer_client.get(reverse("curation:review_run_queue", args=[run.pk])).content.decode()
    assert f"Example #{ex.pk}" in html
    reviewer_client.post(reverse("curation:review_run_decide", args=[run.pk, ex.pk]), {"decision": "approve"}, **HX)
    ex.refresh_from_db()
    assert ex.status == Example.Status.APPROVED
    index = reviewer_client.get(reverse("curation:review_index")).content.decode()
    assert reverse("curation:review_run_queue", args=[run.pk]) not in index  # nothing pending in it any more


def test_index_lists_queues_with_progress(reviewer_client):
    ds, _ = factories.review_dataset(n=3, name="eggs")
    html = reviewer_client.get(reverse("curation:review_index")).content.decode()
    assert "Review eggs" in html and 'role="progressbar"' in html
    home = reviewer_client.get(reverse("home")).content.decode()
    assert reverse("curation:review_index") in home


def test_admin_adjudicates_and_bulk_decides(admin_client, admin_user):
    ds, [ex, other] = factories.review_dataset(n=2, reviews_required=2)
    a, b = factories.reviewer(username="ann"), factories.reviewer(username="bob")
    for r, d in ((a, "approve"), (b, "reject")):
        svc.review_claim_next(reviewer=r, scope=ReviewScope(dataset=ds))
        svc.review_submit(reviewer=r, example=ex, decision=d, reason="bad passage" if d == "reject" else "")
    html = admin_client.get(reverse("curation:review_adjudicate")).content.decode()
    assert f"Example #{ex.pk}" in html and "ann" in html and "bob" in html and "bad passage" in html
    resp = admin_client.post(reverse("curation:review_adjudicate"), {"example": ex.pk, "decision": "approve"})
    assert resp.status_code == 302
    ex.refresh_from_db()
    assert ex.status == Example.Status.APPROVED
    assert Review.objects.get(example=ex, is_adjudication=True).reviewer == admin_user

    html = admin_client.get(reverse("curation:review_dashboard")).content.decode()
    assert ds.name in html and "ann" in html and "Cohen" in html
    # Bulk: refuses an unfiltered set, decides a filtered one.
    admin_client.post(reverse("curation:review_browse"), {"bulk_decision": "reject"})
    other.refresh_from_db()
    assert other.status == Example.Status.PENDING_REVIEW
    admin_client.post(reverse("curation:review_browse"), {"status": "pending_review", "dataset": ds.pk, "bulk_decision": "reject"})
    other.refresh_from_db()
    assert other.status == Example.Status.REJECTED
    html = admin_client.get(reverse("curation:review_browse"), {"status": "rejected"}).content.decode()
    assert "1</strong> examples match" in html
    html = admin_client.get(reverse("curation:review_quality")).content.decode()
    assert html.count("<svg") >= 4


def _token(user, scope="write"):
    return {"HTTP_AUTHORIZATION": f"Bearer {api_token_create(user=user, name='t', scope=scope)[1]}"}


def test_api_claim_submit_skip_undo(client, reviewer_user):
    ds, [ex1, ex2] = factories.review_dataset(n=2)
    auth = _token(reviewer_user)
    resp = client.post(reverse("api-review-next"), {"dataset": ds.pk}, content_type="application/json", **auth)
    assert resp.status_code == 200
    body = resp.json()
    assert body["example"]["id"] == ex1.pk and body["example"]["query"] == ex1.query.text and "reviews" not in body["example"]
    resp = client.post(reverse("api-review-skip"), {"example": ex1.pk}, content_type="application/json", **auth)
    assert resp.status_code == 204
    assert client.post(reverse("api-review-next"), {"dataset": ds.pk}, content_type="application/json", **auth).json()["example"]["id"] == ex2.pk
    resp = client.post(reverse("api-review-submit"), {"example": ex2.pk, "decision": "reject", "reason_code": 4, "seconds_spent": 3},
                       content_type="application/json", **auth)
    assert resp.status_code == 201
    assert resp.json()["example_status"] == "rejected" and resp.json()["reason"] == "Reasoning trace is flawed"
    # Bad input names the field.
    resp = client.post(reverse("api-review-submit"), {"example": ex1.pk, "decision": "nope"}, content_type="application/json", **auth)
    assert resp.status_code == 400 and "decision" in resp.json()
    resp = client.post(reverse("api-review-next"), {}, content_type="application/json", **auth)
    assert resp.status_code == 400
    # Not holding ex1 any more (skipped): submitting it is refused.
    resp = client.post(reverse("api-review-submit"), {"example": ex1.pk, "decision": "approve"}, content_type="application/json", **auth)
    assert resp.status_code == 403
    resp = client.post(reverse("api-review-undo"), {"dataset": ds.pk}, content_type="application/json", **auth)
    assert resp.status_code == 200 and resp.json()["undone"] is True and resp.json()["example_status"] == "pending_review"
    assert ReviewClaim.objects.get(example=ex2, reviewer=reviewer_user).expires_at > ReviewClaim.objects.get(example=ex2).claimed_at


@pytest.mark.parametrize("url, body, field", [
    ("api-review-next", {"dataset": 2**63}, "dataset"),
    ("api-review-next", {"generation_run": 2**64}, "generation_run"),
    ("api-review-next", {"dataset": "seven"}, "dataset"),
    ("api-review-next", {"dataset": 1.5}, "dataset"),
    ("api-review-undo", {"dataset": 2**63}, "dataset"),
    ("api-review-submit", {"example": 2**63, "decision": "approve"}, "example"),
    ("api-review-submit", {"example": [1], "decision": "approve"}, "example"),
    ("api-review-skip", {"example": 2**63}, "example"),
    ("api-review-skip", {"example": "x"}, "example"),
])
def test_api_ids_out_of_range_or_not_integers_are_400(client, reviewer_user, url, body, field):
    resp = client.post(reverse(url), body, content_type="application/json", **_token(reviewer_user))
    assert resp.status_code == 400 and field in resp.json()


def test_api_agreement_bad_dataset_id_is_400(client, admin_user):
    auth = _token(admin_user, scope="read")
    for bad in (str(2**63), "x"):
        resp = client.get(reverse("api-review-agreement"), {"dataset": bad}, **auth)
        assert resp.status_code == 400 and "dataset" in resp.json()
    assert client.get(reverse("api-review-agreement"), {"dataset": 2**62}, **auth).status_code == 404


def test_api_read_only_token_and_empty_queue(client, reviewer_user, admin_user):
    ds, [ex] = factories.review_dataset(n=1)
    ro = _token(reviewer_user, scope="read")
    assert client.post(reverse("api-review-next"), {"dataset": ds.pk}, content_type="application/json", **ro).status_code == 403
    other = factories.reviewer()
    svc.review_claim_next(reviewer=other, scope=ReviewScope(dataset=ds))
    rw = _token(reviewer_user)
    assert client.post(reverse("api-review-next"), {"dataset": ds.pk}, content_type="application/json", **rw).status_code == 204
    resp = client.post(reverse("api-review-submit"), {"example": ex.pk, "decision": "approve"}, content_type="application/json", **rw)
    assert resp.status_code == 403 and Review.objects.count() == 0
    resp = client.get(reverse("api-review-agreement"), {"dataset": ds.pk}, **_token(admin_user, scope="read"))
    assert resp.status_code == 200 and resp.json()["units"] == 0
