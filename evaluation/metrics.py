"""Retrieval metrics, pure functions over TREC-shaped dicts: `qrels[qid][docid] = grade`, `run[qid][docid] = score`.

nDCG@k, Recall@k, MRR, MAP and P@k come from pytrec_eval (trec_eval's own C code), so per-query values and
the `all` mean equal trec_eval's output (tests compare with trec_eval's expected files). p-MRR follows FollowIR
as mteb's instruction-retrieval evaluator implements it.
"""
from __future__ import annotations

import json
from statistics import fmean
from typing import Iterable, Mapping

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

# trec_eval measure names (as passed to pytrec_eval) and the keys it answers with.
DEFAULT_MEASURES = ("ndcg_cut.5,10,100", "recall.5,10,100", "recip_rank", "map", "P.10")
METRIC_LABELS = {
    "ndcg_cut_10": "nDCG@10", "ndcg_cut_5": "nDCG@5", "ndcg_cut_100": "nDCG@100",
    "recall_5": "Recall@5", "recall_10": "Recall@10", "recall_100": "Recall@100",
    "recip_rank": "MRR", "map": "MAP", "P_10": "P@10", "p_mrr": "p-MRR",
}


def metric_label(key: str) -> str:
    return METRIC_LABELS.get(key, key)


def run_drop_excluded(run: Run, excluded: Mapping[str, Iterable[str]]) -> dict[str, dict[str, float]]:
    """BRIGHT: documents listed as excluded for a query are removed from its ranking before scoring."""
    out = {}
    for qid, docs in run.items():
        drop = set(excluded.get(qid, ()))
        out[qid] = {d: s for d, s in docs.items() if d not in drop} if drop else dict(docs)
    return out


def evaluate(qrels: Qrels, run: Run, *, measures: Iterable[str] = DEFAULT_MEASURES,
             excluded: Mapping[str, Iterable[str]] | None = None) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """(per-query metrics, mean over queries) with trec_eval semantics: only queries that are both judged
    and retrieved count, ties in score are broken by docid as trec_eval does (the rank column is ignored)."""
    import pytrec_eval

    if excluded:
        run = run_drop_excluded(run, excluded)
    qrels = {q: {d: int(g) for d, g in docs.items()} for q, docs in qrels.items()}
    run = {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items() if docs}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, set(measures))
    per_query = evaluator.evaluate(run)
    if not per_query:
        return {}, {}
    keys = next(iter(per_query.values())).keys()
    aggregate = {k: pytrec_eval.compute_aggregated_measure(k, [m[k] for m in per_query.values()]) for k in keys}
    return per_query, aggregate


def rank_of(run_for_query: Mapping[str, float], docid: str) -> int:
    """1-based rank of a document in one query's run, len(run)+1 when absent (mteb's get_rank_from_dict:
    sorted by score, descending, ties kept in insertion order)."""
    ordered = sorted(run_for_query.items(), key=lambda x: x[1], reverse=True)
    for i, (d, _) in enumerate(ordered):
        if d == docid:
            return i + 1
    return len(ordered) + 1


def rank_change_score(og_rank: int, new_rank: int) -> float:
    """FollowIR's per-document p-MRR term: in [-1, 1], positive when the document moved down."""
    if og_rank >= new_rank:
        return (1 / og_rank) / (1 / new_rank) - 1
    return 1 - (1 / new_rank) / (1 / og_rank)


def changed_documents(og_qrels: Qrels, changed_qrels: Qrels) -> dict[str, list[str]]:
    """The qrel diff: per query, the documents whose judgment differs between the two instructions
    (a document missing from one side counts as grade 0 there)."""
    out = {}
    for qid in og_qrels.keys() | changed_qrels.keys():
        og, new = og_qrels.get(qid, {}), changed_qrels.get(qid, {})
        docs = [d for d in list(og) + [d for d in new if d not in og] if og.get(d, 0) != new.get(d, 0)]
        if docs:
            out[qid] = docs
    return out


def p_mrr(og_run: Run, changed_run: Run, og_qrels: Qrels, changed_qrels: Qrels) -> tuple[dict[str, float], float]:
    """(per-query p-MRR, mean over queries) in [-1, 1]; papers print it x100.
    Queries without a changed document, or missing from either run, do not count."""
    per_query = {}
    for qid, docs in changed_documents(og_qrels, changed_qrels).items():
        if qid not in og_run or qid not in changed_run:
            continue
        scores = [rank_change_score(rank_of(og_run[qid], d), rank_of(changed_run[qid], d)) for d in docs]
        per_query[qid] = fmean(scores)
    return per_query, (fmean(per_query.values()) if per_query else 0.0)


def run_ranked(run_for_query: Mapping[str, float]) -> list[tuple[str, float]]:
    """One query's ranking in trec_eval's order: score descending, ties by docid descending."""
    return sorted(run_for_query.items(), key=lambda x: (x[1], x[0]), reverse=True)


def run_top_k(run: Run, k: int) -> dict[str, dict[str, float]]:
    """Each query's k best documents (trec_eval's order): the candidates a reranker sees."""
    return {qid: dict(run_ranked(docs)[:k]) for qid, docs in run.items()}


def run_format(run: Run, *, tag: str) -> Iterable[str]:
    """Lines of a TREC run file: `qid Q0 docid rank score tag`. The score is written with Python's shortest
    round-trip repr, so reading the file back gives the same floats (a score.json -> TREC -> score.json
    round trip is exact)."""
    tag = "".join(tag.split()) or "run"
    for qid in run:
        for rank, (docid, score) in enumerate(run_ranked(run[qid]), 1):
            yield f"{qid} Q0 {docid} {rank} {float(score)!r} {tag}\n"


def run_format_score_json(run: Run) -> str:
    """`score.json` as Rank1 / LimRank publish runs: `{qid: {docid: score}}`, documents in rank order."""
    return json.dumps({qid: {d: float(s) for d, s in run_ranked(docs)} for qid, docs in run.items()})
