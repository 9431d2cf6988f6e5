"""Blind audit rounds: the sample, the blind queue over the API, verdicts kept apart, the report card's figures
against a hand-computed fixture, permissions, and apply."""
from __future__ import annotations

import pytest
from sklearn.metrics import cohen_kappa_score

from curation.models import Audit, AuditMember, AuditVerdict, Example, ReviewClaim
from curation.selectors import audits as audit_sel
from curation.selectors.review import ReviewScope
from curation.services import audits as audit_svc
from curation.services import review as review_svc
from tests import factories
from tests.curation.api.conftest import make_examples
from tests.curation.audit_helpers import audit_examples

pytestmark = pytest.mark.django_db

HIDDEN = ("intended_label", "reasoner_judgment", "judgment_votes", "reasoning_trace", "status", "filter_reason")


def _work(client, audit_id, verdicts: dict[int, str]) -> list[dict]:
    """Claim and judge every member the client's reviewer is given; returns the cards seen."""
    cards = []
    while True:
        r = client.post("/api/review/next/", {"audit": audit_id}, format="json")
        if r.status_code == 204:
            return cards
        assert r.status_code == 200, r.content
        cards.append(r.json())
        ex = r.json()["example"]["id"]
        s = client.post("/api/review/submit/", {"audit": audit_id, "example": ex, "verdict": verdicts[ex]}, format="json")
        assert s.status_code == 201, s.content
        assert s.json()["verdict"] == verdicts[ex]


def test_stratified_sample_includes_filtered_out_and_is_reproducible(api_admin):
    ds = factories.DatasetFactory()
    make_examples(60, dataset=ds, status=Example.Status.APPROVED, tag="kept")
    make_examples(40, dataset=ds, status=Example.Status.FILTERED_OUT, tag="filtered")
    make_examples(10, dataset=ds, status=Example.Status.GENERATED, tag="unjudged")
    a = audit_svc.audit_create(admin=api_admin, dataset=ds, size=20, seed=7, double=3)
    b = audit_svc.audit_create(admin=api_admin, dataset=ds, size=20, seed=7)
    members = list(AuditMember.objects.filter(audit=a))
    assert len(members) == 20
    # Proportional allocation: 60/100 kept -> 12, 40/100 filtered out -> 8; unjudged examples never sampled.
    assert sum(m.kept for m in members) == 12
    assert Example.objects.filter(pk__in=[m.example_id for m in members], status="filtered_out").count() == 8
    assert not Example.objects.filter(pk__in=[m.example_id for m in members], status="generated").exists()
    assert [m.example_id for m in members] == list(AuditMember.objects.filter(audit=b).values_list("example_id", flat=True))
    assert sum(m.verdicts_required == 2 for m in members) == 3


def test_api_audit_is_blind_and_verdicts_change_no_status(principals, api_admin):
    examples, verdicts = audit_examples()
    admin = principals["admin"].client
    r = admin.post("/api/audits/", {"dataset": examples[0].dataset_id, "size": 10, "seed": 3}, format="json")
    assert r.status_code == 201, r.content
    audit_id = r.json()["id"]
    statuses = dict(Example.objects.values_list("pk", "status"))
    cards = _work(principals["reviewer"].client, audit_id, verdicts)
    assert len(cards) == 10
    for card in cards:
        assert card["audit"] == audit_id
        for field in HIDDEN:
            assert field not in card["example"]
        assert "SECRET-TRACE" not in str(card)
    assert {c["example"]["id"] for c in cards} == set(verdicts)
    assert AuditVerdict.objects.count() == 10
    assert dict(Example.objects.values_list("pk", "status")) == statuses  # apart: nothing applied


def test_report_card_equals_the_hand_computed_fixture(principals, api_admin):
    examples, verdicts = audit_examples()
    audit = audit_svc.audit_create(admin=api_admin, dataset=examples[0].dataset, size=10, seed=1, double=2)
    _work(principals["reviewer"].client, audit.pk, verdicts)
    # A second auditor on the two doubly-audited members: agrees on one, differs on the other.
    second = factories.reviewer(username="second-auditor")
    doubles = list(AuditMember.objects.filter(audit=audit, verdicts_required=2).order_by("position"))
    for i, m in enumerate(doubles):
        claim = audit_svc.audit_claim_next(reviewer=second, audit=audit)
        assert claim.example_id == m.example_id
        other = verdicts[m.example_id] if i == 0 else ("unusable" if verdicts[m.example_id] != "unusable" else "relevant")
        audit_svc.audit_verdict_submit(reviewer=second, audit=audit, example=m.example_id, verdict=other)
    assert audit_svc.audit_claim_next(reviewer=second, audit=audit) is None

    r = principals["admin"].client.get(f"/api/audits/{audit.pk}/report/")
    assert r.status_code == 200, r.content
    rep = r.json()
    assert rep["audited"] == 10
    assert rep["overall"]["correct_and_kept"] == 4 and rep["overall"]["kept"] == 6 and rep["overall"]["correct"] == 5
    assert rep["precision"] == pytest.approx(4 / 6, abs=1e-4)
    assert rep["recall"] == pytest.approx(0.8, abs=1e-4)
    assert rep["f1"] == pytest.approx(8 / 11, abs=1e-4)
    assert rep["kappa"] == pytest.approx(0.4, abs=1e-4)
    assert rep["precision_ci"] == pytest.approx([0.3000, 0.9032], abs=1e-3)
    # The bootstrap intervals are seeded: they contain the estimate and repeat exactly.
    assert rep["kappa_ci"][0] <= 0.4 <= rep["kappa_ci"][1]
    assert rep["f1_ci"][0] <= 8 / 11 <= rep["f1_ci"][1]
    assert principals["admin"].client.get(f"/api/audits/{audit.pk}/report/").json()["kappa_ci"] == rep["kappa_ci"]
    # Breakdowns: by vote agreement ("3 of 3" are kept examples 0, 2, 4: verdicts relevant, relevant, not relevant).
    by_votes = {row["value"]: row for row in rep["breakdowns"]["vote_agreement"]}
    assert by_votes["3 of 3"]["n"] == 3 and by_votes["3 of 3"]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert by_votes["1 of 3"]["n"] == 4 and by_votes["1 of 3"]["kept"] == 0
    assert {row["value"] for row in rep["breakdowns"]["reasoner_model"]} == {"deepseek-reasoner"}
    for dim in ("origin", "variant", "domain", "prompt_version"):
        assert sum(row["n"] for row in rep["breakdowns"][dim]) == 10
    # Human agreement on the two doubly-audited examples.
    first = [verdicts[m.example_id] for m in doubles]
    other = [first[0], "unusable" if first[1] != "unusable" else "relevant"]
    assert rep["human_agreement"]["n"] == 2
    expected = cohen_kappa_score(first, other, labels=["relevant", "not_relevant", "unusable"])
    assert rep["human_agreement"]["kappa"] == pytest.approx(expected, abs=1e-4)
    # Threshold curve: keeping at >= 3 agreeing votes keeps 3 of 10 at precision 2/3; at >= 0, everything at 5/10.
    curve = {p["min_agreeing_votes"]: p for p in rep["threshold_curve"]}
    assert curve[3]["share_kept"] == pytest.approx(0.3) and curve[3]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert curve[0]["share_kept"] == 1.0 and curve[0]["precision"] == pytest.approx(0.5)
    # Cost: $0.10 and 10,000 reasoner tokens over 6 kept x 2/3 precision = 4 correctly kept.
    assert rep["cost"]["usd_per_correct_kept"] == pytest.approx(0.025)
    assert rep["cost"]["tokens_per_correct_kept"] == pytest.approx(2500)


def test_filter_metrics_match_sklearn_kappa():
    kept = [True, True, False, False, True, False, True]
    correct = [True, False, False, True, True, False, False]
    m = audit_sel.filter_metrics(kept, correct, seed=0)
    assert m["kappa"] == pytest.approx(cohen_kappa_score(kept, correct), abs=1e-4)


def test_audit_claim_and_review_claim_do_not_collide(api_admin, api_reviewer):
    ds, (x,) = factories.review_dataset(n=1)
    audit = audit_svc.audit_create(admin=api_admin, dataset=ds, size=1, seed=0)
    held = audit_svc.audit_claim_next(reviewer=api_reviewer, audit=audit)
    assert held.example_id == x.pk and held.audit_id == audit.pk
    # The audit claim holds no review slot: another reviewer gets the example in the review queue ...
    other = factories.reviewer(username="other")
    assert review_svc.review_claim_next(reviewer=other, scope=ReviewScope(dataset=ds)).example_id == x.pk
    # ... and the review queue never resumes it as the auditor's review claim (the one slot is taken).
    assert review_svc.review_claim_next(reviewer=api_reviewer, scope=ReviewScope(dataset=ds)) is None
    # One reviewer may hold both kinds on one example (the uniqueness rules are split).
    review_svc.review_skip(reviewer=other, example=x.pk)
    mine = review_svc.review_claim_next(reviewer=api_reviewer, scope=ReviewScope(dataset=ds))
    assert mine.example_id == x.pk and mine.audit_id is None
    assert ReviewClaim.objects.filter(reviewer=api_reviewer, example=x).count() == 2
    review_svc.review_submit(reviewer=api_reviewer, example=x.pk, decision="approve")
    audit_svc.audit_verdict_submit(reviewer=api_reviewer, audit=audit, example=x.pk, verdict="relevant")
    assert AuditVerdict.objects.get().verdict == "relevant"
    assert Example.objects.get(pk=x.pk).status == "approved"


def test_permissions_and_bad_input(principals):
    examples, verdicts = audit_examples()
    body = {"dataset": examples[0].dataset_id, "size": 5}
    for who in ("anonymous", "reviewer", "read_token", "reviewer_write_token"):
        assert principals[who].client.post("/api/audits/", body, format="json").status_code in (401, 403), who
    admin = principals["write_token"].client
    assert admin.post("/api/audits/", {"size": 5}, format="json").status_code == 400
    assert admin.post("/api/audits/", {"dataset": 999999, "size": 5}, format="json").status_code == 400
    assert admin.post("/api/audits/", {**body, "size": 0}, format="json").status_code == 400
    audit_id = admin.post("/api/audits/", body, format="json").json()["id"]
    assert principals["reviewer"].client.get(f"/api/audits/{audit_id}/report/").status_code == 403
    empty = admin.get(f"/api/audits/{audit_id}/report/").json()  # nothing audited yet: figures undefined, not 500
    assert (empty["audited"], empty["precision"], empty["kappa_ci"], empty["threshold_curve"]) == (0, None, None, [])
    assert admin.get("/api/audits/999999/report/").status_code == 404
    rev = principals["reviewer"].client
    assert rev.post("/api/review/next/", {"audit": 999999}, format="json").status_code == 404
    card = rev.post("/api/review/next/", {"audit": audit_id}, format="json").json()["example"]["id"]
    # A verdict without the audit, a decision with it, or an unknown verdict: 400; no claim: 403.
    assert rev.post("/api/review/submit/", {"example": card, "verdict": "relevant"}, format="json").status_code == 400
    assert rev.post("/api/review/submit/", {"audit": audit_id, "example": card, "decision": "approve"},
                    format="json").status_code == 400
    assert rev.post("/api/review/submit/", {"audit": audit_id, "example": card, "verdict": "maybe"},
                    format="json").status_code == 400
    not_mine = next(pk for pk in verdicts if pk != card)
    assert rev.post("/api/review/submit/", {"audit": audit_id, "example": not_mine, "verdict": "relevant"},
                    format="json").status_code in (403, 409)
    assert AuditVerdict.objects.count() == 0


def test_apply_sets_statuses_and_closes(principals, api_admin):
    examples, verdicts = audit_examples()
    audit = audit_svc.audit_create(admin=api_admin, dataset=examples[0].dataset, size=10, seed=1)
    _work(principals["reviewer"].client, audit.pk, verdicts)
    assert principals["reviewer"].client.post(f"/api/audits/{audit.pk}/apply/").status_code == 403
    r = principals["admin"].client.post(f"/api/audits/{audit.pk}/apply/")
    assert r.status_code == 200
    status = dict(Example.objects.values_list("pk", "status"))
    for pk, verdict in verdicts.items():
        assert status[pk] == ("approved" if verdict == "relevant" else "rejected")
    assert r.json()["changed"] == 1 + 2 + 3  # the rescued filtered-out one, two kept ones rejected, 3 filtered rejected
    assert Audit.objects.get(pk=audit.pk).state == "closed"
    assert principals["admin"].client.post(f"/api/audits/{audit.pk}/apply/").status_code == 409


def test_open_audit_members_are_out_of_reviewers_example_views_until_it_closes(principals, api_admin):
    """The blind card would be pointless if the examples API or page showed the same example's label and status."""
    examples, verdicts = audit_examples()
    audit = audit_svc.audit_create(admin=api_admin, dataset=examples[0].dataset, size=4, seed=5)
    sampled = set(AuditMember.objects.filter(audit=audit).values_list("example_id", flat=True))
    assert len(sampled) == 4
    reviewer, admin = principals["reviewer"].client, principals["admin"].client

    def listed(client):
        r = client.get("/api/examples/", {"dataset": examples[0].dataset_id, "page_size": 100})
        assert r.status_code == 200
        return {row["id"] for row in r.json()["results"]}

    everything = {e.pk for e in examples}
    assert listed(reviewer) == everything - sampled and listed(admin) == everything
    one = next(iter(sampled))
    assert reviewer.get(f"/api/examples/{one}/").status_code == 404
    assert reviewer.get(f"/examples/{one}/").status_code == 404
    assert admin.get(f"/api/examples/{one}/").status_code == 200
    Audit.objects.filter(pk=audit.pk).update(state=Audit.State.CLOSED)
    assert listed(reviewer) == everything and reviewer.get(f"/api/examples/{one}/").status_code == 200
