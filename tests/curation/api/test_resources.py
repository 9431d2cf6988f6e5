"""Per-endpoint behaviour: lists, filters, cursor pagination, imports through the import services, datasets."""
from __future__ import annotations

import io
import json

import pytest

from curation.models import Dataset, Example, Persona, Review, SeedQuery
from tests import factories
from tests.curation.api.conftest import make_examples

pytestmark = pytest.mark.django_db


def _upload(text: str, name: str):
    f = io.BytesIO(text.encode())
    f.name = name
    return f


def test_example_filters(admin_api):
    ds = factories.DatasetFactory(name="f")
    other = factories.DatasetFactory(name="g")
    a = make_examples(4, dataset=ds, origin="rank1", tag="a", prompt_versions={"reasoner": 2})
    make_examples(3, dataset=ds, origin="synthetic", status="pending_review", tag="b", variant="expert", domain="law")
    make_examples(2, dataset=other, origin="synthetic", tag="c")
    reviewer = factories.reviewer(username="dec")
    Review.objects.create(example=a[0], reviewer=reviewer, decision="reject")
    Review.objects.create(example=a[1], reviewer=reviewer, decision="approve", undone=True)

    def ids(query):
        r = admin_api.get(f"/api/examples/?{query}")
        assert r.status_code == 200, r.content
        return {row["id"] for row in r.json()["results"]}

    assert len(ids("origin=rank1")) == 4
    assert len(ids("status=pending_review")) == 3
    assert len(ids("status=pending_review&status=approved")) == 9
    assert len(ids("variant=expert")) == 3 and len(ids("domain=law")) == 3
    assert len(ids(f"dataset={other.pk}")) == 2
    assert ids("prompt_version=reasoner:2") == {e.pk for e in a}
    assert ids("prompt_version=reasoner:9") == set() and ids("prompt_version=garbage") == set()
    assert ids("prompt_version=contains:2") == set()  # a prompt name is never a lookup
    assert ids("decision=reject") == {a[0].pk}
    assert ids("decision=approve") == set()  # the approve was undone
    assert admin_api.get("/api/examples/?status=nonsense").status_code == 400
    detail = admin_api.get(f"/api/examples/{a[0].pk}/").json()
    assert detail["query"]["text"] == a[0].query.text and detail["passage"]["text"] == a[0].passage.text
    assert detail["judgment_agrees"] is True


def test_cursor_pagination_walks_everything_once(admin_api):
    make_examples(25, origin="rank1")
    seen, url = [], "/api/examples/?page_size=10"
    while url:
        body = admin_api.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
    assert len(seen) == 25 and len(set(seen)) == 25 and seen == sorted(seen, reverse=True)
    assert admin_api.get("/api/examples/?page_size=5000").json()["results"].__len__() == 25  # capped, not refused


def test_import_personas_and_seeds(admin_api):
    text = '{"persona": "A tax lawyer in Lyon", "domain": "law"}\n{"persona": "A beekeeper"}\n'
    r = admin_api.post("/api/personas/import/", {"file": _upload(text, "p.jsonl")}, format="multipart")
    assert r.status_code == 201, r.content
    assert r.json()["created"] == 2 and Persona.objects.filter(domain="law").count() == 1
    r = admin_api.post("/api/personas/import/", {"file": _upload(text, "p.jsonl")}, format="multipart")
    assert r.json()["duplicates"] == 2 and Persona.objects.count() == 2
    r = admin_api.post("/api/seed-queries/import/", {"file": _upload("1\twhat is rba\n2\thow to boil eggs\n", "q.tsv")}, format="multipart")
    assert r.status_code == 201 and SeedQuery.objects.count() == 2
    assert set(admin_api.get("/api/seed-queries/?source=msmarco").json()["results"][0]) >= {"external_id", "text"}


def test_import_is_all_or_nothing_with_line_and_field(admin_api):
    good = json.dumps({"query": "q1", "passage": "p1", "reasoning": "r", "label": True})
    bad = json.dumps({"query": "q2", "passage": "p2", "label": "maybe"})
    r = admin_api.post("/api/examples/import/", {"file": _upload(f"{good}\n{bad}\n", "rank1.jsonl")}, format="multipart")
    assert r.status_code == 400
    body = r.json()
    assert body["line"] == 2 and body["field"] == "label" and "rank1.jsonl, line 2" in body["error"]
    assert Example.objects.count() == 0
    r = admin_api.post("/api/personas/import/", {"file": _upload('{"persona": "ok"}\n{"persona": \n', "p.jsonl")}, format="multipart")
    assert r.status_code == 400 and r.json()["line"] == 2 and Persona.objects.count() == 0
    assert admin_api.post("/api/examples/import/", {}, format="multipart").status_code == 400


def test_import_examples_into_a_dataset(admin_api):
    ds = factories.DatasetFactory(name="target")
    rows = "\n".join(json.dumps({"query": f"q{i}", "passage": f"p{i}", "reasoning": "r", "label": i % 2 == 0}) for i in range(5))
    r = admin_api.post("/api/examples/import/", {"file": _upload(rows, "r.jsonl"), "dataset": ds.pk, "origin": "rank1"}, format="multipart")
    assert r.status_code == 201 and r.json()["created"] == 5
    assert Example.objects.filter(dataset=ds, origin="rank1", status="approved").count() == 5


def test_datasets_create_update_and_validation(admin_api, principals):
    r = admin_api.post("/api/datasets/", {"name": "new one", "reviews_required": 3}, format="json")
    assert r.status_code == 201 and r.json()["created_by"] == "api-admin"
    pk = r.json()["id"]
    assert admin_api.post("/api/datasets/", {"name": "new one"}, format="json").status_code == 400
    assert admin_api.post("/api/datasets/", {"name": "x", "reviews_required": 0}, format="json").status_code == 400
    r = admin_api.patch(f"/api/datasets/{pk}/", {"guidelines": "Be strict."}, format="json")
    assert r.status_code == 200 and Dataset.objects.get(pk=pk).guidelines == "Be strict."
    listed = principals["reviewer"].client.get("/api/datasets/").json()["results"]
    assert [d["name"] for d in listed] == ["new one"]


def test_generation_runs_are_listed_for_admins(admin_api):
    run = factories.GenerationRunFactory(name="nightly", stats={"kept": 3})
    body = admin_api.get("/api/generation-runs/?status=queued").json()["results"]
    assert [r["name"] for r in body] == ["nightly"] and body[0]["stats"] == {"kept": 3}
    assert admin_api.get(f"/api/generation-runs/{run.pk}/").json()["progress_percent"] == 0


def test_dataset_versions_are_immutable_over_the_api(admin_api):
    ds = factories.DatasetFactory(name="frozen")
    make_examples(3, dataset=ds)
    v = admin_api.post("/api/dataset-versions/", {"dataset": ds.pk}, format="json").json()
    for method in ("put", "patch", "delete"):
        assert getattr(admin_api, method)(f"/api/dataset-versions/{v['id']}/", {}, format="json").status_code == 405
    assert admin_api.get(f"/api/dataset-versions/?dataset={ds.pk}").json()["results"][0]["content_hash"] == v["content_hash"]
