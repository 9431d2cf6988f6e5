"""Our metrics equal trec_eval's own expected output (usnistgov/trec_eval test files), per query and `all`."""
from __future__ import annotations

import pytest

from evaluation.benchmarks import read_qrels, read_run
from evaluation.metrics import DEFAULT_MEASURES, evaluate


def trec_eval_output(path) -> dict[tuple[str, str], str]:
    out = {}
    for line in path.read_text().splitlines():
        measure, qid, value = (p.strip() for p in line.split("\t"))
        out[(measure, qid)] = value
    return out


def _compare(expected: dict, per_query: dict, aggregate: dict, measures: list[str]) -> int:
    checked = 0
    for (measure, qid), printed in expected.items():
        if measure not in measures:
            continue
        ours = aggregate[measure] if qid == "all" else per_query[qid][measure]
        # trec_eval prints 4 decimals: ours, printed the same way, must read identically.
        assert f"{ours:.4f}" == printed, (measure, qid, ours, printed)
        checked += 1
    return checked


@pytest.fixture
def trec_eval_dir(shared_data):
    return shared_data / "trec_eval"


def test_every_exposed_measure_equals_trec_eval_all_trec_q(trec_eval_dir):
    """`trec_eval -m all_trec -q qrels.test results.test` -> out.test.aq."""
    qrels, run = read_qrels(trec_eval_dir / "qrels.test"), read_run(trec_eval_dir / "results.test")
    per_query, aggregate = evaluate(qrels, run, measures=DEFAULT_MEASURES)
    exposed = sorted(aggregate)
    assert {"ndcg_cut_10", "recall_5", "recall_100", "recip_rank", "map", "P_10"} <= set(exposed)
    expected = trec_eval_output(trec_eval_dir / "out.test.aq")
    checked = _compare(expected, per_query, aggregate, exposed)
    # every exposed measure, for the 3 queries and `all`
    assert checked == 4 * len(exposed)
    assert sorted(per_query) == ["301", "302", "303"]


def test_default_output_equals_out_test(trec_eval_dir):
    """`trec_eval qrels.test results.test` -> out.test (map, recip_rank, P_k over `all`)."""
    qrels, run = read_qrels(trec_eval_dir / "qrels.test"), read_run(trec_eval_dir / "results.test")
    per_query, aggregate = evaluate(qrels, run, measures=["map", "recip_rank", "P.5,10,15,20,30,100,200,500,1000", "Rprec", "bpref"])
    expected = trec_eval_output(trec_eval_dir / "out.test")
    checked = _compare(expected, per_query, aggregate, list(aggregate))
    assert checked == len(aggregate) == 13


def test_parametrised_measures_equal_meas_params(trec_eval_dir):
    """`-m ndcg_cut.10,20,23.4 -m recall.20,2000 -m P.5,7,3 -q` -> out.test.meas_params (cut-offs other than ours)."""
    qrels, run = read_qrels(trec_eval_dir / "qrels.test"), read_run(trec_eval_dir / "results.test")
    per_query, aggregate = evaluate(qrels, run, measures=["ndcg_cut.10,20,23", "recall.20,2000", "P.5,7,3"])
    expected = trec_eval_output(trec_eval_dir / "out.test.meas_params")
    checked = _compare(expected, per_query, aggregate, list(aggregate))
    assert checked == 4 * 8


def test_truncated_run_and_excluded_ids(trec_eval_dir):
    """Dropping ids changes the ranking exactly like removing their lines from the run file."""
    qrels, run = read_qrels(trec_eval_dir / "qrels.test"), read_run(trec_eval_dir / "results.test")
    top = sorted(run["302"].items(), key=lambda x: (x[1], x[0]), reverse=True)[:3]
    excluded = {"302": [d for d, _ in top]}
    pq_excl, _ = evaluate(qrels, run, excluded=excluded)
    removed = {q: {d: s for d, s in docs.items() if not (q == "302" and d in excluded["302"])} for q, docs in run.items()}
    pq_removed, _ = evaluate(qrels, removed)
    assert pq_excl == pq_removed
    assert pq_excl["302"]["ndcg_cut_10"] != evaluate(qrels, run)[0]["302"]["ndcg_cut_10"]
    assert pq_excl["301"] == evaluate(qrels, run)[0]["301"]
