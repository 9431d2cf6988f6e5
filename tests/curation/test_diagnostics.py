"""Dataset diagnostics on fixtures built to have each problem, and twins built not to: shortcut AUCs, near-duplicate
clusters, contamination with a loaded benchmark; the build options that act on them; the task and the command."""
from __future__ import annotations

import random
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from curation import diagnostics as diag
from curation.hashing import example_content_hash, text_hash
from curation.models import DatasetVersion, Example, GeneratedQuery, Passage
from curation.services import diagnostics as svc
from curation.services.datasets import dataset_version_build
from evaluation.models import BenchmarkDocument, BenchmarkQuery
from tests import factories

WORDS = ("river bank loan interest rate mortgage bread flour yeast oven engine piston valve spark battery garden soil "
         "tomato seed water pump pipe roof tile cement brick violin string bow tune choir lung heart blood vessel "
         "nerve muscle tendon glacier valley delta harbor ferry tide moon orbit comet crater").split()


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _pairs(*, n: int = 80, shortcut: bool, seed: int = 0):
    """Queries, passages and labels. With shortcut: positives are long and repeat the query's words, negatives are
    short and share none. Without: both kinds are drawn alike (same length, same overlap), labels at random."""
    rng = random.Random(seed)
    queries, passages, labels = [], [], []
    for i in range(n):
        q = f"{_text(rng, 5)} case{i}"
        label = i % 2 == 0
        if shortcut:
            p = f"{q} {_text(rng, 60)}" if label else _text(rng, 12)
        else:
            p = f"{' '.join(q.split()[:2])} {_text(rng, 30)}"
        queries.append(q), passages.append(p), labels.append(label)
    return queries, passages, labels


def test_shortcut_aucs_warn_on_a_dataset_with_shortcuts_and_not_without():
    q, p, y = _pairs(shortcut=True)
    bad = diag.shortcut_aucs(queries=q, passages=p, labels=y)
    assert bad["warning"]
    for name in ("passage_length", "length_ratio", "bm25", "lexical_overlap"):
        assert bad["features"][name]["auc"] > 0.95 and bad["features"][name]["warning"], name
    q, p, y = _pairs(shortcut=False)
    good = diag.shortcut_aucs(queries=q, passages=p, labels=y)
    assert not good["warning"]
    assert all(f["strength"] < 0.75 for f in good["features"].values())
    # One label only: AUC is undefined, not a number.
    assert diag.shortcut_aucs(queries=q, passages=p, labels=[True] * len(q))["features"]["bm25"]["auc"] is None


def test_near_duplicate_clusters_found_where_planted_only():
    rng = random.Random(3)
    base = [f"{_text(rng, 8)} topic{i}" for i in range(30)]
    planted = [base[0] + "s", base[0].replace("topic0", "topic0!"), base[5] + " ?"]
    texts = base + planted
    result = diag.near_duplicates(texts=texts, kind="query")
    assert result["clusters"] == 2
    assert sorted(len(c) for c in diag.duplicate_clusters(texts, kind="query")) == [2, 3]
    assert diag.near_duplicates(texts=base, kind="query")["clusters"] == 0
    passages = [_text(rng, 80) for _ in range(20)]
    copy = passages[3].split()
    copy[40] = "zebra"  # one word changed in 80
    assert diag.near_duplicates(texts=passages + [" ".join(copy)], kind="passage")["clusters"] == 1
    assert diag.near_duplicates(texts=passages, kind="passage")["clusters"] == 0


def test_contamination_by_ngram_per_benchmark():
    doc = "the cardiac muscle contracts without conscious control because pacemaker cells in the sinoatrial node fire"
    queries = ["what makes the heart beat on its own", "how do glaciers carve valleys", "a query of my own"]
    passages = [f"Background. {doc}. More text follows here.", "Glaciers move slowly and grind rock.", "Nothing."]
    hits = diag.contaminated(queries=queries, passages=passages, sources={
        "cardio": [doc[:200]], "geo": ["how do glaciers carve valleys"], "clean": ["glaciers grind rock slowly"]})
    assert hits["cardio"] == {"queries": [], "passages": [0]}
    assert hits["geo"] == {"queries": [1], "passages": []}  # a short query equal to a benchmark query
    assert hits["clean"] == {"queries": [], "passages": []}
    # Twelve shared words are not a 13-gram.
    twelve = " ".join(doc.split()[:12])
    assert diag.contaminated(queries=["x"], passages=[f"{twelve} and then something else entirely"],
                             sources={"b": [doc + " tail"]})["b"]["passages"] == []


def _examples(ds, queries, passages, labels, status=Example.Status.APPROVED):
    out = []
    for q, p, label in zip(queries, passages, labels):
        gq = GeneratedQuery.objects.create(text=q, text_hash=text_hash(q), domain="health")
        ps = Passage.objects.create(text=p, kind="positive" if label else "hard_negative", text_hash=text_hash(p))
        out.append(Example.objects.create(dataset=ds, query=gq, passage=ps, intended_label=label, status=status,
                                          content_hash=example_content_hash(query=q, passage=p, label=label)))
    return out


@pytest.mark.django_db
def test_task_stores_diagnostics_with_progress_and_the_command_prints_them(django_capture_on_commit_callbacks,
                                                                            monkeypatch, client):
    ds = factories.DatasetFactory()
    q, p, y = _pairs(n=40, shortcut=True)
    q[1] = q[0] + "s"  # a near-duplicate query
    bench = factories.BenchmarkFactory(name="cardio")
    BenchmarkQuery.objects.create(benchmark=bench, qid="1", text=q[2])
    BenchmarkDocument.objects.create(benchmark=bench, docid="d", text=p[4])
    _examples(ds, q, p, y)
    version = dataset_version_build(dataset=ds, filters={}, recipe={"seed": 1}, render_now=True)
    sent = []
    monkeypatch.setattr(svc.current_app, "send_task", lambda name, args: sent.append((name, args)))
    with django_capture_on_commit_callbacks(execute=True):
        assert svc.dataset_version_diagnose_enqueue(version=version)
    assert sent == [(svc.DIAGNOSE_TASK, [version.pk])]
    assert not svc.dataset_version_diagnose_enqueue(version=version)  # once per version
    steps = []
    real_store = svc._store
    monkeypatch.setattr(svc, "_store", lambda pk, state: (steps.append(state.get("step")), real_store(pk, state)))
    from curation.tasks import dataset_version_diagnose_task

    dataset_version_diagnose_task(version.pk)
    dataset_version_diagnose_task(version.pk)  # redelivered: claimed already, does nothing
    assert steps.count("shortcuts") == 1 and "contamination" in steps
    d = DatasetVersion.objects.get(pk=version.pk).diagnostics
    assert d["status"] == "done" and d["shortcuts"]["warning"]
    assert d["duplicate_queries"]["clusters"] >= 1
    assert d["contamination"]["benchmarks"]["cardio"]["by_query"] == 1
    assert d["contamination"]["benchmarks"]["cardio"]["by_passage"] == 1
    out = StringIO()
    call_command("diagnose_version", str(version.pk), "--foreground", stdout=out)
    text = out.getvalue()
    assert "passage_length" in text and "WARNING" in text and "Near-duplicate queries" in text
    assert "cardio" in text and "2 examples (1 by query, 1 by passage)" in text
    # The datasheet shows them (page, with the plot and the warning; API).
    client.force_login(factories.reviewer(username="reader"))
    page = client.get(f"/datasets/versions/{version.pk}/").content.decode()
    assert "warning: a trivial feature predicts the label" in page and 'data-feature="bm25"' in page and "<svg" in page
    api = client.get(f"/api/dataset-versions/{version.pk}/datasheet/").json()
    assert api["diagnostics"]["contamination"]["benchmarks"]["cardio"]["examples"] == 2


@pytest.mark.django_db
def test_build_options_keep_one_per_cluster_and_exclude_contaminated():
    ds = factories.DatasetFactory()
    q, p, y = _pairs(n=20, shortcut=False)
    q[1], q[2] = q[0] + "s", q[0] + " ?"  # three near-identical queries
    doc = "a passage copied word for word from the benchmark collection that is long enough to share thirteen words"
    p[7] = doc
    _examples(ds, q, p, y)
    bench = factories.BenchmarkFactory(name="copied")
    BenchmarkDocument.objects.create(benchmark=bench, docid="d", text=doc)
    plain = dataset_version_build(dataset=ds, filters={}, recipe={"seed": 1}, render_now=True)
    deduped = dataset_version_build(dataset=ds, filters={}, recipe={"seed": 1, "dedupe": "queries"}, render_now=True)
    clean = dataset_version_build(dataset=ds, filters={}, recipe={"seed": 1, "exclude_contaminated": True}, render_now=True)
    assert plain.example_count == 20
    assert deduped.example_count == 18
    kept = set(deduped.members.values_list("query_text", flat=True))
    assert len(kept & {q[0], q[1], q[2]}) == 1
    assert clean.example_count == 19 and doc not in set(clean.members.values_list("passage_text", flat=True))
    assert deduped.recipe["dedupe"] == "queries" and "dedupe" not in plain.recipe
    with pytest.raises(ValidationError, match="dedupe"):
        dataset_version_build(dataset=ds, filters={}, recipe={"dedupe": "everything"})
    with pytest.raises(ValidationError, match="exclude_contaminated"):
        dataset_version_build(dataset=ds, filters={}, recipe={"exclude_contaminated": "yes"})
