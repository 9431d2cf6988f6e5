"""Setwise and listwise families end to end on SciFact through eval runs, against the local test server."""
from __future__ import annotations

import time

import pytest

from curation.protocol import passage_join
from evaluation import services
from evaluation.benchmarks import read_run
from evaluation.models import EvalQueryResult
from tests.conftest import celery_worker
from tests.llm_server import LLMServer, _relevance


@pytest.fixture
def server():
    with LLMServer(disagree_rate=0.0) as srv:
        yield srv


def _texts(bench):
    return {d.docid: passage_join(d.title, d.text) for d in bench.documents.all()}


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["insertrank", "reasonrank", "setwise", "listwise"])
def test_family_reranks_scifact_and_its_top_passage_is_the_servers_best(kind, server, scifact_small, artifacts_dir):
    """BM25's top 10 in one window (setwise: k = 10): each query's first passage must be one the server finds
    most relevant (InsertRank: ties go to the higher BM25 score the eval loop passed in)."""
    bench = services.benchmark_import_path(format="beir", path=scifact_small, name="sf")[0]
    model = services.reranker_model_register(name=kind, kind=kind, path="local",
                                             config={"base_url": server.url, "k": 10, "shuffle": False,
                                                     "max_words": 100000})
    run = services.eval_run_create(benchmark=bench, model=model, top_k=10, enqueue=False)
    services.eval_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    reranked = read_run(run.run_file)
    first_stage = services.first_stage_run(benchmark=bench, first_stage="bm25", top_k=10,
                                           queries=services._queries(bench))
    queries = {q.qid: q.text for q in bench.queries.all()}
    texts = _texts(bench)
    for qid, docs in reranked.items():
        assert set(docs) == set(first_stage[qid])
        top = max(docs, key=docs.get)
        best = max(_relevance(queries[qid], texts[d]) for d in docs)
        assert _relevance(queries[qid], texts[top]) == best, qid
        if kind == "insertrank":
            tied = [d for d in docs if _relevance(queries[qid], texts[d]) == best]
            assert first_stage[qid][top] == max(first_stage[qid][d] for d in tied)
    assert EvalQueryResult.objects.filter(run=run).count() == 12
    assert server.counts[f"purpose:{kind}"] >= 12


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_an_insertrank_eval(broker_url, server, scifact_small, artifacts_dir):
    bench = services.benchmark_import_path(format="beir", path=scifact_small, name="sf")[0]
    model = services.reranker_model_register(name="ir", kind="insertrank", path="local", config={"base_url": server.url})
    with celery_worker(broker_url, queues=("gpu",)):
        run = services.eval_run_create(benchmark=bench, model=model, top_k=10)  # autocommit: enqueued at once
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.is_finished:
                break
            time.sleep(0.3)
    assert run.status == "succeeded", run.error
    assert run.progress_done == run.progress_total == 12 and run.claimed_by
    assert server.counts["purpose:insertrank"] == 12  # one window of 10 per query
    assert 0 < run.metrics["ndcg_cut_10"] <= 1


@pytest.mark.django_db
def test_first_eval_run_on_a_saved_tiny_model(scifact_small, artifacts_dir, tmp_path):
    """FIRST's transformers backend through an eval run: a random tiny Qwen2 with a chat template, saved to a folder
    the model row points at; every query's top 10 reranked (scores 10..1), one forward pass per query."""
    from tests.evaluation.test_listwise_families import _chat_tokenizer
    from training.tiny import tiny_qwen

    tok = _chat_tokenizer()
    tiny_qwen(tok, layers=1, max_positions=8192).save_pretrained(tmp_path / "first")
    tok.save_pretrained(tmp_path / "first")
    bench = services.benchmark_import_path(format="beir", path=scifact_small, name="sf")[0]
    model = services.reranker_model_register(name="first-tiny", kind="first", path=str(tmp_path / "first"),
                                             config={"max_words": 40, "device": "cpu"})
    run = services.eval_run_create(benchmark=bench, model=model, top_k=10, enqueue=False)
    services.eval_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    reranked = read_run(run.run_file)
    assert len(reranked) == 12 and all(sorted(d.values()) == [float(i) for i in range(1, 11)] for d in reranked.values())
