"""Eval runs end to end: BM25 first stage, a cross-encoder reranker, FollowIR p-MRR, resume, and a real worker."""
from __future__ import annotations

import pytest

from evaluation import services
from evaluation.benchmarks import parse_beir, read_run
from evaluation.metrics import evaluate
from evaluation.models import EvalQueryResult, RerankerModel
from tests.conftest import celery_worker
from tests.evaluation.conftest import minilm_path


def _bm25():
    return services.reranker_model_register(name="bm25", kind=RerankerModel.Kind.BM25)


@pytest.mark.django_db
def test_bm25_run_metrics_equal_pytrec_eval_on_its_own_run_file(scifact_small, artifacts_dir, django_capture_on_commit_callbacks):
    bench = services.benchmark_import_path(format="beir", path=scifact_small, name="sf")[0]
    with django_capture_on_commit_callbacks() as callbacks:
        run = services.eval_run_create(benchmark=bench, model=_bm25(), top_k=20)
    assert len(callbacks) == 1  # enqueued on commit
    assert services.eval_run_execute(run_id=run.pk) is True
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert services.eval_run_execute(run_id=run.pk) is False  # finished: a redelivery does nothing
    file_run = read_run(run.run_file)
    assert all(len(docs) <= 20 for docs in file_run.values())
    parsed = parse_beir(scifact_small, name="x")
    _, agg = evaluate(parsed.qrels["og"], file_run)
    assert run.metrics["ndcg_cut_10"] == pytest.approx(agg["ndcg_cut_10"], abs=1e-6)
    assert 0.3 < run.metrics["ndcg_cut_10"] <= 1.0
    assert EvalQueryResult.objects.filter(run=run).count() == 12
    assert (artifacts_dir / "bm25" / f"benchmark-{bench.pk}").exists()  # cached per benchmark
    lines = open(run.run_file).read().splitlines()
    qid, q0, docid, rank, score, tag = lines[0].split()
    assert (q0, rank) == ("Q0", "1") and tag.startswith("limrank-bm25")


@pytest.mark.django_db
def test_cross_encoder_rerank_and_resume(scifact_small, artifacts_dir):
    """MiniLM (untrained head: the training issue trains it) reranks BM25's top 5; a checkpointed query is not
    rescored after a lost worker."""
    bench = services.benchmark_import_path(format="beir", path=scifact_small, name="sf")[0]
    model = services.reranker_model_register(name="minilm", kind="cross-encoder", path=minilm_path(),
                                             config={"batch_size": 16, "max_length": 128})
    run = services.eval_run_create(benchmark=bench, model=model, top_k=5, enqueue=False)
    # A previous attempt scored query "1" before its worker died: a fake score marks it.
    workdir = services.eval_run_dir(run)
    workdir.mkdir(parents=True)
    (workdir / "partial.jsonl").write_text('{"side": "og", "qid": "1", "scores": {"31715818": 42.0}}\n{"side": "og"')
    seen = []
    services.eval_run_execute(run_id=run.pk, on_progress=lambda d, t: seen.append((d, t)))
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert seen[0] == (1, 12) and seen[-1] == (12, 12)
    file_run = read_run(run.run_file)
    assert file_run["1"] == {"31715818": 42.0}
    assert all(len(docs) == 5 for q, docs in file_run.items() if q != "1")
    assert run.params["pairs_scored"] == 11 * 5 and run.params["pairs_per_second"] > 0
    assert not (workdir / "partial.jsonl").exists()


@pytest.mark.django_db
def test_reranker_needs_documents(shared_data, tmp_path, artifacts_dir):
    topics = tmp_path / "t.tsv"
    topics.write_text("301\ta\n302\tb\n303\tc\n")
    d = shared_data / "trec_eval"
    bench = services.benchmark_import_path(format="trec", path=None, name="t",
                                           files={"topics": topics, "qrels": d / "qrels.test", "run": d / "results.test",
                                                  "run_name": "STANDARD"})[0]
    model = services.reranker_model_register(name="ce", kind="cross-encoder", path=minilm_path())
    with pytest.raises(services.EvaluationError, match="no documents"):
        services.eval_run_create(benchmark=bench, model=model, first_stage="STANDARD")
    with pytest.raises(services.EvaluationError, match="first stage 'bm25' is not available"):
        services.eval_run_create(benchmark=bench, model=_bm25())
    # The uploaded run itself is scored, equal to trec_eval's numbers.
    run = services.eval_run_create(benchmark=bench, model=_bm25(), first_stage="STANDARD", top_k=1000, enqueue=False)
    services.eval_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert f"{run.metrics['map']:.4f}" == "0.1785" and f"{run.metrics['recip_rank']:.4f}" == "0.4064"


@pytest.mark.django_db
def test_followir_p_mrr_with_a_reranker(tmp_path, artifacts_dir):
    """The same candidates reranked under both instructions: BM25 alone gives p-MRR 0; MiniLM sees the instruction."""
    import json

    root = tmp_path / "fi"
    (root / "qrels").mkdir(parents=True)
    docs = {"d1": "Hydroelectric dam proposed on the Mekong river in Laos in 1998.",
            "d2": "A hydroelectric project is under construction in Brazil, started 2004.",
            "d3": "Renovation of an existing hydroelectric facility in Norway.",
            "d4": "Wind farms expand across the North Sea."}
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items()))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "307", "text": "New Hydroelectric Projects",
                                                    "instruction_og": "Relevant documents state a project is planned or under way.",
                                                    "instruction_changed": "Only projects after 2000 are relevant."}) + "\n")
    (root / "qrels" / "og.tsv").write_text("query-id\tcorpus-id\tscore\n307\td1\t1\n307\td2\t1\n307\td3\t0\n")
    (root / "qrels" / "changed.tsv").write_text("query-id\tcorpus-id\tscore\n307\td1\t0\n307\td2\t1\n307\td3\t0\n")
    bench = services.benchmark_import_path(format="followir", path=root, name="fi")[0]
    run = services.eval_run_create(benchmark=bench, model=_bm25(), top_k=10, enqueue=False)
    services.eval_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert run.metrics["p_mrr"] == 0.0 and "changed_ndcg_cut_10" in run.metrics
    ce = services.reranker_model_register(name="minilm", kind="cross-encoder", path=minilm_path())
    run2 = services.eval_run_create(benchmark=bench, model=ce, top_k=10, enqueue=False)
    services.eval_run_execute(run_id=run2.pk)
    run2.refresh_from_db()
    assert run2.status == "succeeded", run2.error
    assert -1 <= run2.metrics["p_mrr"] <= 1
    assert EvalQueryResult.objects.get(run=run2, qid="307").metrics["p_mrr"] == pytest.approx(run2.metrics["p_mrr"])
    assert read_run(run2.run_file) != read_run(services.eval_run_dir(run2) / "run.changed.trec")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_an_eval_on_the_gpu_queue(broker_url, scifact_small, artifacts_dir):
    import time

    bench = services.benchmark_import_path(format="beir", path=scifact_small, name="sf")[0]
    with celery_worker(broker_url, queues=("gpu",)):
        run = services.eval_run_create(benchmark=bench, model=_bm25(), top_k=10)  # autocommit: enqueued at once
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.is_finished:
                break
            time.sleep(0.3)
    assert run.status == "succeeded", run.error
    assert run.progress_done == run.progress_total == 12 and run.claimed_by
    assert EvalQueryResult.objects.filter(run=run).count() == 12
    assert run.metrics["ndcg_cut_10"] > 0.3
