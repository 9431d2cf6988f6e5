"""p-MRR as FollowIR/mteb define it, on cases checked by hand and on real Core17 judgments."""
from __future__ import annotations

import random

import pytest

from evaluation.benchmarks import read_qrels
from evaluation.metrics import changed_documents, p_mrr, rank_change_score, rank_of


def test_rank_change_terms_by_hand():
    assert rank_change_score(1, 1) == 0.0
    assert rank_change_score(1, 2) == pytest.approx(0.5)      # moved down: 1 - (1/2)/(1/1)
    assert rank_change_score(2, 1) == pytest.approx(-0.5)     # moved up: (1/2)/(1/1) - 1
    assert rank_change_score(4, 2) == pytest.approx(-0.5)     # (1/4)/(1/2) - 1
    assert rank_change_score(3, 10) == pytest.approx(0.7)     # 1 - (1/10)/(1/3)
    assert rank_change_score(10, 3) == pytest.approx(-0.7)


def test_rank_of_missing_document_is_len_plus_one():
    run = {"a": 3.0, "b": 2.0, "c": 1.0}
    assert [rank_of(run, d) for d in "abc"] == [1, 2, 3]
    assert rank_of(run, "zzz") == 4


def test_p_mrr_hand_checked_two_queries():
    og_qrels = {"q1": {"d1": 1, "d2": 1, "d3": 0}, "q2": {"e1": 1, "e2": 1}}
    # The changed instruction makes d1 and d2 (q1) and e2 (q2) non-relevant; d3 unchanged.
    changed_qrels = {"q1": {"d1": 0, "d2": 0, "d3": 0}, "q2": {"e1": 1, "e2": 0}}
    assert changed_documents(og_qrels, changed_qrels) == {"q1": ["d1", "d2"], "q2": ["e2"]}
    og_run = {"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7}, "q2": {"e1": 0.9, "e2": 0.8, "x": 0.1}}
    new_run = {"q1": {"d3": 0.9, "d2": 0.8, "d1": 0.7}, "q2": {"e2": 0.95, "e1": 0.9}}
    # q1: d1 1->3: 1 - (1/3)/1 = 2/3; d2 2->2: 0  => mean 1/3
    # q2: e2 2->1: (1/2)/(1/1) - 1 = -1/2
    per_query, mean = p_mrr(og_run, new_run, og_qrels, changed_qrels)
    assert per_query["q1"] == pytest.approx(1 / 3)
    assert per_query["q2"] == pytest.approx(-0.5)
    assert mean == pytest.approx((1 / 3 - 0.5) / 2)


def test_p_mrr_document_dropped_from_changed_run():
    og_qrels, changed_qrels = {"q": {"a": 1}}, {"q": {"a": 0}}
    og_run = {"q": {"a": 2.0, "b": 1.0}}
    new_run = {"q": {"b": 2.0, "c": 1.0}}  # a missing: rank len+1 = 3
    assert p_mrr(og_run, new_run, og_qrels, changed_qrels)[1] == pytest.approx(1 - (1 / 3) / (1 / 1))


def test_p_mrr_on_core17_judgments(shared_data):
    """Real Core17 qrels as the original side; the changed side makes half of each query's relevant documents
    non-relevant (what FollowIR's narrower instructions do)."""
    og = read_qrels(shared_data / "trec-core17-robust04" / "qrels.core17.txt")
    assert len(og) == 50
    rng = random.Random(7)
    changed = {}
    for qid, docs in og.items():
        rel = sorted(d for d, g in docs.items() if g > 0)
        flip = set(rng.sample(rel, len(rel) // 2))
        changed[qid] = {d: (0 if d in flip else g) for d, g in docs.items()}
    diff = changed_documents(og, changed)
    assert sum(len(v) for v in diff.values()) == sum(len([d for d, g in og[q].items() if g > 0]) // 2 for q in og)
    base = {qid: {d: float(len(docs) - i) for i, d in enumerate(sorted(docs))} for qid, docs in og.items()}
    # Same ranking for both instructions: no change at all.
    assert p_mrr(base, base, og, changed)[1] == 0.0
    # A system that follows the instruction pushes the now non-relevant documents to the bottom: positive.
    follow = {qid: {d: (s - 10_000 if d in diff.get(qid, ()) else s) for d, s in docs.items()} for qid, docs in base.items()}
    per_query, mean = p_mrr(base, follow, og, changed)
    assert 0 < mean <= 1 and all(v >= 0 for v in per_query.values())
    # Pulling them to the top instead is negative, and bounded by -1.
    contrary = {qid: {d: (s + 10_000 if d in diff.get(qid, ()) else s) for d, s in docs.items()} for qid, docs in base.items()}
    assert -1 <= p_mrr(base, contrary, og, changed)[1] < 0
