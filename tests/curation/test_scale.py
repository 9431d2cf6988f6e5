"""Scale (issue 21): indexed search, capped counts, COPY imports all-or-nothing, stored datasheets, cached aggregates."""
from __future__ import annotations

import json

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from curation.models import DatasetVersion, Example, GeneratedQuery, Passage, Review
from curation.selectors import review as sel
from curation.selectors.datasets import dataset_version_datasheet
from curation.services import bulk
from curation.services.datasets import dataset_version_build
from curation.services.imports import ImportValidationError, examples_import
from limrank_app.paginator import CappedPaginator
from tests import factories

pytestmark = pytest.mark.django_db


def _examples_with_words():
    ds = factories.DatasetFactory(name="words")
    hit_query = factories.ExampleFactory(dataset=ds, query=factories.GeneratedQueryFactory(text="Which volcanoes erupted in Iceland?"))
    hit_passage = factories.ExampleFactory(dataset=ds, passage=factories.PassageFactory(title="Geology",
                                                                                        text="Volcanic eruptions in Iceland."))
    miss = factories.ExampleFactory(dataset=ds)
    return ds, hit_query, hit_passage, miss


# ---------------------------------------------------------------- search


def test_search_finds_a_word_of_the_query_or_of_the_passage():
    _, hit_query, hit_passage, miss = _examples_with_words()
    found = set(sel.example_browse(filters={"q": "iceland"}).values_list("pk", flat=True))
    assert found == {hit_query.pk, hit_passage.pk}
    assert miss.pk not in set(sel.example_browse(filters={"q": "volcano"}).values_list("pk", flat=True))


@pytest.mark.postgres
def test_search_reads_the_stored_vectors_through_their_gin_indexes(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    from curation.selectors import search

    _, hit_query, hit_passage, _ = _examples_with_words()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL enable_seqscan = off")  # tiny tables: make the planner show what it can use
        cur.execute("EXPLAIN " + search._MATCHING_QUERIES, ["iceland"])
        query_plan = "\n".join(r[0] for r in cur.fetchall())
        cur.execute("EXPLAIN " + search._MATCHING_PASSAGES, ["iceland"])
        passage_plan = "\n".join(r[0] for r in cur.fetchall())
    assert "generatedquery_search_gin" in query_plan and "passage_search_gin" in passage_plan
    # A rare word: the examples are found by the matching ids; nothing is computed per example.
    rare = sel.example_browse(filters={"q": "iceland"})
    assert "to_tsvector" not in str(rare.query) and "search_vector" not in str(rare.query)
    assert set(rare.values_list("pk", flat=True)) == {hit_query.pk, hit_passage.pk}
    # A common word (more matches than RARE_MATCHES): one statement, EXISTS on the stored vectors of the example's
    # query and passage (looked up by primary key, or hashed), nothing computed per row.
    monkeypatch.setattr(search, "RARE_MATCHES", 0)
    common = sel.example_browse(filters={"q": "iceland"})
    sql = str(common.query)
    assert "EXISTS" in sql and "search_vector @@ websearch_to_tsquery" in sql and "to_tsvector" not in sql
    assert set(common.values_list("pk", flat=True)) == {hit_query.pk, hit_passage.pk}
    # The column follows the text: an edited query is found by its new words at once.
    GeneratedQuery.objects.filter(pk=hit_query.query_id).update(text="Lava fields of Hawaii")
    assert set(sel.example_browse(filters={"q": "hawaii"}).values_list("pk", flat=True)) == {hit_query.pk}


# ---------------------------------------------------------------- capped counts


def test_capped_paginator_counts_up_to_the_cap(monkeypatch):
    ds = factories.DatasetFactory(name="many")
    for _ in range(5):
        factories.ExampleFactory(dataset=ds)
    monkeypatch.setattr(CappedPaginator, "count_cap", 3)
    p = CappedPaginator(Example.objects.order_by("id"), 2)
    assert p.count == 3 and p.count_capped and p.count_text == "3+" and p.num_pages == 2
    monkeypatch.setattr(CappedPaginator, "count_cap", 10)
    p = CappedPaginator(Example.objects.order_by("id"), 2)
    assert p.count == 5 and not p.count_capped and p.count_text == "5"


def test_browse_page_shows_a_capped_count(admin_client, monkeypatch):
    ds = factories.DatasetFactory(name="many")
    for _ in range(4):
        factories.ExampleFactory(dataset=ds)
    monkeypatch.setattr(CappedPaginator, "count_cap", 2)
    html = admin_client.get(reverse("curation:review_browse")).content.decode()
    assert "<strong>2+</strong> examples match" in html


# ---------------------------------------------------------------- imports through COPY


def _rows(n, bad_line=None):
    lines = []
    for i in range(1, n + 1):
        row = {"query": f"scale query {i}", "passage": f"scale passage {i}", "reasoning": "r", "label": i % 2 == 0}
        if i == bad_line:
            row["label"] = "maybe"
        lines.append(json.dumps(row))
    return ("\n".join(lines) + "\n").encode()


def test_import_writes_through_the_bulk_path_and_links_rows():
    result = examples_import(file=_rows(5), filename="ok.jsonl")
    assert result.created == 5
    ex = Example.objects.select_related("query", "passage").get(query__text="scale query 3")
    assert ex.passage.text == "scale passage 3" and ex.intended_label is False and ex.status == "approved"
    assert ex.created_at is not None and ex.judgment_votes == [] and ex.prompt_versions == {}
    assert bulk.bulk_method() == ("copy" if connection.vendor == "postgresql" else "bulk_create")


def test_import_is_all_or_nothing_with_the_line_named():
    with pytest.raises(ImportValidationError) as err:
        examples_import(file=_rows(6, bad_line=4), filename="bad.jsonl")
    assert err.value.line == 4 and "bad.jsonl" in str(err.value)
    assert Example.objects.count() == 0 and GeneratedQuery.objects.count() == 0 and Passage.objects.count() == 0


def test_a_database_error_inside_the_copy_rolls_everything_back():
    q = factories.GeneratedQueryFactory()
    p = factories.PassageFactory()
    fields = ("query_id", "passage_id", "intended_label", "origin", "status", "content_hash")
    rows = [(q.pk, p.pk, True, "rank1", "approved", "h1"), (q.pk, p.pk, True, "rank1", "approved", "h2"),
            (q.pk, p.pk, True, "rank1", "approved", "h1")]  # the third repeats a unique hash
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            bulk.bulk_insert(model=Example, fields=fields, rows=rows)
    assert Example.objects.count() == 0
    ids = bulk.bulk_insert(model=Example, fields=fields, rows=rows[:2], ids=True)
    assert sorted(Example.objects.values_list("pk", flat=True)) == sorted(ids) and len(ids) == 2


# ---------------------------------------------------------------- datasheets stored at build


def test_datasheet_is_stored_at_build_and_never_recomputed(django_assert_num_queries):
    ds = factories.DatasetFactory(name="sheet")
    examples = [factories.ExampleFactory(dataset=ds, status=Example.Status.APPROVED) for _ in range(4)]
    r1, r2 = factories.reviewer(username="s1"), factories.reviewer(username="s2")
    Review.objects.create(example=examples[0], reviewer=r1, decision="approve")
    Review.objects.create(example=examples[0], reviewer=r2, decision="reject")
    v = dataset_version_build(dataset=ds, filters={}, recipe={"seed": 1}, created_by=None)
    stored = DatasetVersion.objects.get(pk=v.pk).datasheet
    assert stored["total"] == 4 and stored["agreement"]["multiply_reviewed"] == 1
    assert {r["reviewer__username"] for r in stored["reviewers"]} == {"s1", "s2"}
    Review.objects.create(example=examples[1], reviewer=r1, decision="reject")  # after the build
    v = DatasetVersion.objects.get(pk=v.pk)
    with django_assert_num_queries(0):  # read from the version's row: no member, no review read
        sheet = dataset_version_datasheet(version=v)
    assert sheet["version"] == v and sheet["reviewers"] == stored["reviewers"] and sheet["total"] == 4


# ---------------------------------------------------------------- cached aggregates


def test_aggregates_are_cached_and_shown_with_their_time(admin_client, settings):
    settings.LIMRANK_AGGREGATE_CACHE_SECONDS = 300
    ds = factories.DatasetFactory(name="cached")
    factories.ExampleFactory(dataset=ds, status=Example.Status.APPROVED)
    html = admin_client.get("/").content.decode()
    assert "1 examples: 1 approved" in html and "as of" in html
    factories.ExampleFactory(dataset=ds, status=Example.Status.APPROVED)
    assert "1 examples: 1 approved" in admin_client.get("/").content.decode()  # as of the first request
    from django.core.cache import cache

    cache.clear()
    assert "2 examples: 2 approved" in admin_client.get("/").content.decode()
    for url in (reverse("curation:review_dashboard"), reverse("curation:review_quality")):
        html = admin_client.get(url).content.decode()
        assert "Figures as of" in html and "recomputed at most every 300 s" in html


# ---------------------------------------------------------------- agreement in SQL


def test_agreement_in_sql_matches_sklearn_and_krippendorff():
    import random

    import krippendorff
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    rng = random.Random(7)
    ds = factories.DatasetFactory(name="agree")
    users = [factories.reviewer(username=f"k{i}") for i in range(3)]
    admin = factories.admin(username="kadmin")
    votes: dict[int, dict[int, str]] = {}
    adjudicated = {}
    for _ in range(40):
        ex = factories.ExampleFactory(dataset=ds)
        for u in rng.sample(users, rng.choice([1, 2, 2, 3])):
            d = rng.choice(["approve", "approve", "reject"])
            Review.objects.create(example=ex, reviewer=u, decision=d)
            votes.setdefault(ex.pk, {})[u.pk] = d
        if rng.random() < 0.2:
            d = rng.choice(["approve", "reject"])
            Review.objects.create(example=ex, reviewer=admin, decision="reject" if d == "approve" else "approve",
                                  is_adjudication=True)
            Review.objects.create(example=ex, reviewer=admin, decision=d, is_adjudication=True)  # the latest counts
            adjudicated[ex.pk] = d
    Review.objects.create(example=factories.ExampleFactory(dataset=ds), reviewer=users[0], decision="reject", undone=True)

    got = sel.review_agreement(dataset=ds)
    multi = {e: v for e, v in votes.items() if len(v) >= 2}
    assert got["units"] == len(multi) and got["adjudicated"] == len(adjudicated)
    ids = sorted(u.pk for u in users)
    data = np.array([[({"approve": 1.0, "reject": 0.0}[v[r]] if r in v else np.nan) for v in multi.values()] for r in ids])
    expected_alpha = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal", value_domain=[0.0, 1.0])
    assert got["alpha"] == pytest.approx(round(expected_alpha, 3))
    by_pair = {(p["a"], p["b"]): p for p in got["pairs"]}
    names = {u.pk: u.username for u in users}
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            shared = [(v[a], v[b]) for v in multi.values() if a in v and b in v]
            y1, y2 = zip(*shared)
            kappa = cohen_kappa_score(list(y1), list(y2), labels=["approve", "reject"])
            assert by_pair[(names[a], names[b])]["n"] == len(shared)
            assert by_pair[(names[a], names[b])]["kappa"] == pytest.approx(round(kappa, 3))
    for u in users:
        mine = []
        for e, v in votes.items():
            if u.pk not in v:
                continue
            consensus = adjudicated.get(e)
            if consensus is None and len(v) >= 2:
                n_approve = sum(d == "approve" for d in v.values())
                consensus = "approve" if 2 * n_approve > len(v) else "reject" if 2 * (len(v) - n_approve) > len(v) else None
            if consensus is not None:
                mine.append(v[u.pk] == consensus)
        assert got["per_reviewer"][u.username]["n"] == len(mine)
        assert got["per_reviewer"][u.username]["agree"] == sum(mine)


def test_stale_aggregates_are_served_while_a_task_refreshes_them(monkeypatch, settings):
    from datetime import timedelta

    from django.core.cache import cache

    from curation.selectors import aggregates

    settings.LIMRANK_AGGREGATE_CACHE_SECONDS = 60
    sent = []
    monkeypatch.setattr(aggregates.current_app, "send_task", lambda name, args: sent.append((name, args)))
    ds = factories.DatasetFactory(name="stale")
    factories.ExampleFactory(dataset=ds, status=Example.Status.APPROVED)
    first = aggregates.home_counts_cached()
    assert first["counts"] == {"approved": 1} and sent == []
    factories.ExampleFactory(dataset=ds, status=Example.Status.APPROVED)
    entry = cache.get(aggregates.KEY_PREFIX + "home")
    entry["as_of"] -= timedelta(seconds=61)  # older than the setting
    cache.set(aggregates.KEY_PREFIX + "home", entry)
    assert aggregates.home_counts_cached()["counts"] == {"approved": 1}  # the older figures, at once
    assert aggregates.home_counts_cached()["counts"] == {"approved": 1}
    assert sent == [(aggregates.REFRESH_TASK, ["home"])]  # one refresh asked, not one per request
    from curation.tasks import aggregate_refresh_task

    aggregate_refresh_task("home")  # what the worker runs
    fresh = aggregates.home_counts_cached()
    assert fresh["counts"] == {"approved": 2} and fresh["as_of"] > entry["as_of"]
