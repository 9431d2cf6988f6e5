"""bench/loop_cpu.py's pieces on a tiny split (the whole command is measured in bench/RESULTS.md, not here)."""
from __future__ import annotations

import pytest

from bench import loop_cpu
from evaluation.benchmarks import ParsedBenchmark, QueryRecord

DOCS = {
    "d1": ("Smoking", "Tobacco smoking causes lung cancer in most cases."),
    "d2": ("Lungs", "Lung cancer incidence and smoking habits in a cohort."),
    "d3": ("Diet", "Dietary fibre and the gut microbiome."),
    "d4": ("Sleep", "Sleep deprivation impairs memory consolidation."),
    "d5": ("Memory", "Memory and sleep: a review of consolidation during sleep."),
    "d6": ("Exercise", "Exercise lowers blood pressure in adults."),
}
QUERIES = {"q1": "smoking lung cancer", "q2": "sleep memory consolidation"}
QRELS = {"q1": {"d1": 1}, "q2": {"d5": 1}}


def test_split_is_seeded_disjoint_and_capped():
    ids = [str(i) for i in range(11)]
    first, second = loop_cpu.split_queries(ids, seed=13)
    assert (first, second) == loop_cpu.split_queries(list(reversed(ids)), seed=13)  # input order does not matter
    assert len(first) == 5 and len(second) == 6 and not set(first) & set(second) and set(first) | set(second) == set(ids)
    assert loop_cpu.split_queries(ids, seed=14) != (first, second)
    assert loop_cpu.split_queries(ids, seed=13, max_queries=2) == (first[:2], second[:2])


def test_pairs_are_qrels_positives_and_bm25_hard_negatives():
    bm25 = {"q1": {"d2": 9.0, "d1": 8.0, "d3": 1.0}, "q2": {"d4": 5.0, "d5": 4.0, "d6": 0.5}}
    rows = loop_cpu.pair_rows(queries=QUERIES, documents=DOCS, qrels=QRELS, bm25=bm25, negatives=1)
    assert [(r["query_id"], r["doc_id"], r["label"]) for r in rows] == [
        ("q1", "d1", True), ("q1", "d2", False), ("q2", "d5", True), ("q2", "d4", False)]
    assert rows[0]["passage"] == DOCS["d1"][1] and rows[0]["title"] == "Smoking"
    flipped = loop_cpu.rows_flip(rows, fraction=0.5, seed=1)
    assert sum(a["label"] != b["label"] for a, b in zip(rows, flipped)) == 2
    assert [{k: v for k, v in r.items() if k != "label"} for r in flipped] == [
        {k: v for k, v in r.items() if k != "label"} for r in rows]
    assert flipped == loop_cpu.rows_flip(rows, fraction=0.5, seed=1) and rows[0]["label"] is True


@pytest.mark.django_db
def test_curated_and_unreviewed_versions_through_import_review_and_build(settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path
    from curation.models import Example, Review

    bm25 = {"q1": {"d2": 9.0, "d3": 2.0}, "q2": {"d4": 5.0, "d6": 0.5}}
    rows = loop_cpu.pair_rows(queries=QUERIES, documents=DOCS, qrels=QRELS, bm25=bm25, negatives=2)
    flipped = loop_cpu.rows_flip(rows, fraction=0.5, seed=2)
    curated, unreviewed, counts = loop_cpu.versions_build(rows=rows, flipped=flipped, seed=2, tag="t", log=lambda _: None)
    assert counts == {"pairs": 6, "positives": 2, "flipped": 3, "approved": 6, "rejected": 3}
    truth = {(r["query"], r["passage"]): r["label"] for r in rows}
    cur = list(curated.members.values_list("query_text", "passage_text", "label"))
    unrev = list(unreviewed.members.values_list("query_text", "passage_text", "label"))
    assert len(cur) == len(unrev) == 6 and curated.status == unreviewed.status == "ready"
    assert all(truth[(q, p)] == label for q, p, label in cur)
    assert sum(truth[(q, p)] != label for q, p, label in unrev) == 3
    # The flipped examples were rejected by the reviewer, in bulk, with an audit trail.
    assert Example.objects.filter(status="rejected").count() == 3
    assert Review.objects.filter(is_adjudication=True, reviewer__username=loop_cpu.REVIEWER).count() == 9
    # A second run with the same seed builds the same versions again.
    again, _, _ = loop_cpu.versions_build(rows=rows, flipped=flipped, seed=2, tag="t", log=lambda _: None)
    assert again.content_hash == curated.content_hash and again.version == curated.version + 1


@pytest.mark.django_db
def test_pairs_held_by_another_split_stop_the_command(settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path
    bm25 = {"q1": {"d2": 9.0}, "q2": {"d4": 5.0}}
    rows = loop_cpu.pair_rows(queries=QUERIES, documents=DOCS, qrels=QRELS, bm25=bm25, negatives=1)
    loop_cpu.versions_build(rows=rows[:2], flipped=rows[:2], seed=1, tag="other", log=lambda _: None)
    with pytest.raises(loop_cpu.LoopError, match="one seed per database"):
        loop_cpu.versions_build(rows=rows, flipped=loop_cpu.rows_flip(rows, fraction=0.5, seed=1), seed=1, tag="t",
                                log=lambda _: None)


@pytest.mark.django_db
def test_bm25_eval_on_a_tiny_held_out_benchmark_reaches_the_leaderboard(settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path
    from evaluation.models import RerankerModel
    from evaluation.selectors import leaderboard
    from evaluation.services import reranker_model_register

    parsed = ParsedBenchmark(name="tiny", format="beir", queries={q: QueryRecord(text=t) for q, t in QUERIES.items()},
                             documents=DOCS, qrels={"og": QRELS})
    bench = loop_cpu.benchmark_ensure(loop_cpu.parsed_subset(parsed, ["q2"], name="tiny-heldout", description="x"))
    assert bench.n_queries == 1 and bench.n_documents == 6
    assert loop_cpu.benchmark_ensure(loop_cpu.parsed_subset(parsed, ["q2"], name="tiny-heldout", description="x")) == bench
    assert set(loop_cpu.bm25_candidates(bench, top_k=3)["q2"]) >= {"d5"}
    model = reranker_model_register(name="bm25", kind=RerankerModel.Kind.BM25)
    run = loop_cpu.evaluate(bench, model, top_k=5, tag="t")
    assert run.metrics["ndcg_cut_10"] > 0 and run.params["loop_cpu"] == "t"
    board = leaderboard()
    row = next(r for r in board["rows"] if r["label"] == "BM25")
    assert any(cell["run_id"] == run.pk for cell in row["cells"].values())


def test_table_has_one_row_per_backbone_with_the_gap():
    result = {"embedding": {"bm25": 0.6, "untrained": 0.59, "curated": 0.65, "unreviewed": 0.61},
              "settings": {"top_k": 20, "ce_top_k": 10}}
    lines = loop_cpu.table_text(result).splitlines()
    assert len(lines) == 2 and "embedding (BM25 top 20)" in lines[1] and lines[1].endswith("+0.0400")
