"""Eval runs hand pairs to a pointwise reranker in large chunks (all at once for vLLM), keep the checkpoint per
chunk, and build each query with the reference's task prompt (or without it: params no_prompt)."""
from __future__ import annotations

import json

import pytest

from curation import protocol
from evaluation import services
from evaluation.benchmarks import read_run
from evaluation.models import RerankerModel
from evaluation.rerankers.base import Reranker


class Recording(Reranker):
    """A pointwise reranker that records each call; the score is a function of the pair (shorter passage wins)."""

    def __init__(self, pairs_per_call):
        self.pairs_per_call, self.calls, self.closed = pairs_per_call, [], False

    def score_pairs(self, pairs):
        self.calls.append(list(pairs))
        return [1.0 / (1 + len(p)) for _, p in pairs]

    def close(self):
        self.closed = True


def _causal_lm():
    return services.reranker_model_register(name="rank1-tiny", kind=RerankerModel.Kind.CAUSAL_LM, path="/nowhere")


def _patch(monkeypatch, reranker):
    monkeypatch.setattr(services, "reranker_for_model", lambda model: reranker)


@pytest.mark.django_db
def test_all_pairs_in_one_call_with_the_scifact_prompt(scifact_small, artifacts_dir, monkeypatch):
    bench = services.benchmark_import_path(format="beir", path=scifact_small, name="scifact")[0]
    fake = Recording(pairs_per_call=None)  # vLLM's choice: every pair at once
    _patch(monkeypatch, fake)
    run = services.eval_run_create(benchmark=bench, model=_causal_lm(), top_k=5, enqueue=False)
    seen = []
    services.eval_run_execute(run_id=run.pk, on_progress=lambda d, t: seen.append((d, t)))
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert len(fake.calls) == 1 and len(fake.calls[0]) == 12 * 5 and fake.closed
    assert seen == [(0, 12), (12, 12)]
    assert run.params["reference_task"] == ["SciFact", None] and run.params["task_prompt"] is True
    claims = {q.qid: q.text for q in bench.queries.all()}
    docs = {d.docid: (d.title, d.text) for d in bench.documents.all()}
    file_run = read_run(run.run_file)
    qid = next(iter(file_run))
    query, passage = fake.calls[0][0]
    assert query == protocol.query_in_task_prompt(claims[qid], protocol.task_prompt("SciFact"))
    assert query.startswith(f"Claim: {claims[qid]}\n\nA relevant passage")
    assert passage in {protocol.passage_join(*docs[d]) for d in file_run[qid]}


@pytest.mark.django_db
def test_chunks_progress_checkpoint_resume_and_no_prompt(scifact_small, artifacts_dir, monkeypatch):
    bench = services.benchmark_import_path(format="beir", path=scifact_small, name="scifact")[0]
    fake = Recording(pairs_per_call=512)
    _patch(monkeypatch, fake)
    run = services.eval_run_create(benchmark=bench, model=_causal_lm(), top_k=5, enqueue=False,
                                   params={"chunk_pairs": 10, "no_prompt": True})
    workdir = services.eval_run_dir(run)
    workdir.mkdir(parents=True)
    first_qid = bench.queries.order_by("id").first().qid
    (workdir / "partial.jsonl").write_text(json.dumps({"side": "og", "qid": first_qid, "scores": {"x": 9.0}}) + "\n{\"si")
    seen = []
    services.eval_run_execute(run_id=run.pk, on_progress=lambda d, t: seen.append((d, t)))
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    # 11 queries left x 5 pairs, 10 pairs (two whole queries) per call: 6 calls, progress after each.
    assert [len(c) for c in fake.calls] == [10, 10, 10, 10, 10, 5]
    assert seen == [(1, 12), (3, 12), (5, 12), (7, 12), (9, 12), (11, 12), (12, 12)]
    assert all(q not in protocol.reference_prompts()["SciFact"] and not q.startswith("Claim:") for q, _ in fake.calls[0])
    assert run.params["task_prompt"] is False and run.params["pairs_scored"] == 55
    assert read_run(run.run_file)[first_qid] == {"x": 9.0}  # the checkpointed query was not rescored
    assert not (workdir / "partial.jsonl").exists()


@pytest.mark.django_db
def test_a_cancel_between_chunks_keeps_what_was_scored(scifact_small, artifacts_dir, monkeypatch):
    bench = services.benchmark_import_path(format="beir", path=scifact_small, name="scifact")[0]
    fake = Recording(pairs_per_call=10)
    _patch(monkeypatch, fake)
    run = services.eval_run_create(benchmark=bench, model=_causal_lm(), top_k=5, enqueue=False)
    calls = {"n": 0}
    real = services.job_progress

    def progress(row, *, done, total):
        calls["n"] += 1
        return real(row, done=done, total=total) and calls["n"] < 3  # cancelled after the second chunk

    monkeypatch.setattr(services, "job_progress", progress)
    services.eval_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "cancelled"
    lines = (services.eval_run_dir(run) / "partial.jsonl").read_text().splitlines()
    assert len(lines) == 4 and len(fake.calls) == 2  # two chunks of two queries, kept for a resume


@pytest.mark.django_db
def test_unknown_task_param_is_a_clear_error(scifact_small, artifacts_dir, monkeypatch):
    bench = services.benchmark_import_path(format="beir", path=scifact_small, name="mine")[0]
    with pytest.raises(services.EvaluationError, match="unknown BrightRetrieval subtask 'chem'"):
        services.eval_run_create(benchmark=bench, model=_causal_lm(), top_k=5, enqueue=False,
                                 params={"task": "BrightRetrieval", "subtask": "chem"})
    # The benchmark's own name is not a reference task: params name it, and its prompt is used.
    fake = Recording(None)
    _patch(monkeypatch, fake)
    run = services.eval_run_create(benchmark=bench, model=_causal_lm(), top_k=5, enqueue=False, params={"task": "nfcorpus"})
    services.eval_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.params["reference_task"] == ["NFCorpus", None]
    assert all(q.startswith("Topic: ") for q, _ in fake.calls[0])


@pytest.mark.django_db
def test_evaluate_command_no_prompt_switch(scifact_small, artifacts_dir, monkeypatch):
    import io

    from django.core.management import call_command

    services.benchmark_import_path(format="beir", path=scifact_small, name="scifact")
    _causal_lm()
    for extra, claim in (([], True), (["--no-prompt"], False)):
        fake = Recording(None)
        _patch(monkeypatch, fake)
        call_command("evaluate", "--benchmark", "scifact", "--model", "rank1-tiny", "--top-k", "3", "--foreground",
                     *extra, stdout=io.StringIO(), stderr=io.StringIO())
        assert len(fake.calls) == 1 and all(q.startswith("Claim: ") == claim for q, _ in fake.calls[0])
