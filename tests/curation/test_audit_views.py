"""The audit pages: the blind workbench (nothing of the labels in the HTML before the decision, all of it after),
the report card page, the datasheet of a version built from audited data, and who may open what."""
from __future__ import annotations

import pytest

from curation.models import AuditVerdict
from curation.services import audits as audit_svc
from curation.services.datasets import dataset_version_build
from tests import factories
from tests.curation.audit_helpers import audit_examples

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def _login(client, user):
    client.force_login(user)
    return client


def test_workbench_is_blind_until_the_decision(client):
    examples, verdicts = audit_examples()
    admin = factories.admin(username="boss")
    audit = audit_svc.audit_create(admin=admin, dataset=examples[0].dataset, size=10, seed=5)
    _login(client, factories.reviewer(username="ann"))
    page = client.get(f"/audits/{audit.pk}/review/")
    assert page.status_code == 200 and b"Ready to audit" in page.content
    card = client.post(f"/audits/{audit.pk}/review/next/", **HX)
    html = card.content.decode()
    example_id = int(card.context["example"].pk)
    index = [e.pk for e in examples].index(example_id)
    for hidden in (f"SECRET-TRACE-{index}", "Intended label", "Reasoner judgment", "Hard negative", "Positive",
                   "Filtered out", "threw it out", "kept it"):
        assert hidden not in html, hidden
    # The reload shows the same claim, still blind.
    again = client.get(f"/audits/{audit.pk}/review/").content.decode()
    assert f"Example #{example_id}" in again and f"SECRET-TRACE-{index}" not in again
    after = client.post(f"/audits/{audit.pk}/review/examples/{example_id}/decide/", {"choice": "1"}, **HX).content.decode()
    assert f"Example #{example_id}, after your verdict" in after
    assert f"SECRET-TRACE-{index}" in after and "Intended label" in after
    v = AuditVerdict.objects.get()
    assert (v.verdict, v.reason, v.member.example_id) == ("not_relevant", "Not relevant", example_id)


def test_report_page_and_datasheet_show_the_report_card(client):
    examples, verdicts = audit_examples()
    admin = factories.admin(username="boss")
    audit = audit_svc.audit_create(admin=admin, dataset=examples[0].dataset, size=10, seed=5)
    ann = factories.reviewer(username="ann")
    while (claim := audit_svc.audit_claim_next(reviewer=ann, audit=audit)) is not None:
        audit_svc.audit_verdict_submit(reviewer=ann, audit=audit, example=claim.example_id, verdict=verdicts[claim.example_id])
    _login(client, ann)
    assert client.get(f"/audits/{audit.pk}/").status_code == 403
    assert client.post("/audits/", {"scope": f"dataset:{examples[0].dataset_id}", "size": "3"}).status_code == 403
    _login(client, admin)
    page = client.get(f"/audits/{audit.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-figure="precision">0.6667<' in html and 'data-figure="kappa">0.4<' in html
    assert "[0.3, 0.9032] Wilson" in html and "<svg" in html and "By reasoner vote agreement" in html
    version = dataset_version_build(dataset=examples[0].dataset, filters={"status": "approved"}, recipe={"seed": 1},
                                    created_by=admin)
    sheet = client.get(f"/datasets/versions/{version.pk}/").content.decode()
    assert "The LLM filter, audited" in sheet and 'data-figure="recall">0.8<' in sheet
    api = client.get(f"/api/dataset-versions/{version.pk}/datasheet/").json()
    assert api["audits"][0]["precision"] == pytest.approx(4 / 6, abs=1e-4)


def test_admin_starts_an_audit_from_the_page_and_bad_input_is_refused(client):
    examples, _ = audit_examples()
    _login(client, factories.admin(username="boss"))
    ds = examples[0].dataset_id
    r = client.post("/audits/", {"scope": f"dataset:{ds}", "size": "4", "seed": "2"}, follow=True)
    assert "Audit 1 started: 4 examples sampled." in r.content.decode() or "started: 4 examples" in r.content.decode()
    r = client.post("/audits/", {"scope": f"dataset:{ds}", "size": "abc"}, follow=True)
    assert "Audit not started: size" in r.content.decode()
    assert client.post("/audits/", {"scope": "dataset:999999", "size": "3"}).status_code == 404
