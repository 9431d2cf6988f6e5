"""Eval runs of the yes-no, ERank and ICR strategies on a SciFact subset with a tiny local model, end to end:
their cost recorded, marked smoke (tiny model) and kept off the leaderboard unless asked for; the cost plot."""
from __future__ import annotations

import time

import pytest
from django.urls import reverse

from evaluation import services
from evaluation.models import EvalRun, RerankerModel
from tests.conftest import celery_worker
from tests.evaluation import tiny_lm

STRATEGIES = {
    "yes-no": {"batch_size": 8, "max_length": 1024},
    "erank": {"mode": "direct", "batch_size": 8, "max_length": 1024},
    "icr": {"truncate_by_space": 40},
}


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return tiny_lm.saved_model(tmp_path_factory.mktemp("tiny") / "qwen2")


def _bench(scifact_small):
    return services.benchmark_import_path(format="beir", path=scifact_small, name="sf")[0]


@pytest.mark.django_db
@pytest.mark.parametrize("kind", list(STRATEGIES))
def test_eval_run_of_each_strategy_records_its_cost(kind, tiny_path, scifact_small, artifacts_dir):
    bench = _bench(scifact_small)
    model = services.reranker_model_register(name=f"tiny-{kind}", kind=kind, path=tiny_path, config=STRATEGIES[kind])
    run = services.eval_run_create(benchmark=bench, model=model, top_k=5, enqueue=False)
    assert services.eval_run_execute(run_id=run.pk) is True
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert 0 <= run.metrics["ndcg_cut_10"] <= 1 and run.metrics["n_queries_scored"] == 12
    cost = run.params["cost"]
    pairs = 12 * 5
    expected_calls = {"yes-no": pairs, "erank": 2 * pairs, "icr": 2 * 12}[kind]  # ERank: prefixes "" and "1"; ICR: query + N/A
    assert cost["calls"] == expected_calls and cost["queries"] == 12
    assert cost["tokens_in"] > 30 * expected_calls and cost["tokens_out"] == 0  # prompts are long; direct modes write nothing
    assert 0 < cost["seconds"] and cost["gpu_seconds"] == 0 and "dollars" not in cost
    assert cost["per_query"]["calls"] == pytest.approx(expected_calls / 12)
    assert run.metrics["cost_seconds_per_query"] == pytest.approx(cost["seconds"] / 12, rel=1e-3)
    assert run.params["smoke"] is True and run.params["n_parameters"] < services.SMOKE_MAX_PARAMETERS


@pytest.mark.django_db
def test_run_page_shows_the_cost(reviewer_client, scifact_small, artifacts_dir):
    bench = _bench(scifact_small)
    bm25 = services.reranker_model_register(name="bm25", kind=RerankerModel.Kind.BM25)
    run = services.eval_run_create(benchmark=bench, model=bm25, top_k=5, params={"smoke": True}, enqueue=False)
    services.eval_run_execute(run_id=run.pk)
    html = reviewer_client.get(reverse("evaluation:run_detail", args=[run.pk])).content.decode()
    assert "Cost: 0 model calls, 0 tokens in, 0 out" in html and "for 12 queries" in html and "badge smoke" in html


@pytest.mark.django_db
def test_a_price_gives_dollars_and_a_bad_price_is_refused(tiny_path, scifact_small, artifacts_dir):
    bench = _bench(scifact_small)
    price = {"input_per_million": 2.0, "output_per_million": 8.0}
    model = services.reranker_model_register(name="priced", kind="yes-no", path=tiny_path, config={"price": price})
    run = services.eval_run_create(benchmark=bench, model=model, top_k=2, enqueue=False)
    services.eval_run_execute(run_id=run.pk)
    run.refresh_from_db()
    cost = run.params["cost"]
    assert cost["dollars"] == pytest.approx(cost["tokens_in"] * 2.0 / 1e6, rel=1e-4) and cost["dollars"] > 0
    model.config = {"price": {"input_per_million": "two"}}
    model.save()
    with pytest.raises(services.EvaluationError, match="price"):
        services.eval_run_create(benchmark=bench, model=model, top_k=2, enqueue=False)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_a_yes_no_eval_on_the_gpu_queue(broker_url, tiny_path, scifact_small, artifacts_dir):
    bench = _bench(scifact_small)
    model = services.reranker_model_register(name="tiny-yn", kind="yes-no", path=tiny_path, config=STRATEGIES["yes-no"])
    with celery_worker(broker_url, queues=("gpu",)):
        run = services.eval_run_create(benchmark=bench, model=model, top_k=3)  # autocommit: enqueued at once
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.is_finished:
                break
            time.sleep(0.3)
    assert run.status == "succeeded", run.error
    assert run.params["cost"]["calls"] == 36 and run.params["smoke"] is True


@pytest.mark.django_db
def test_smoke_rows_stay_off_the_leaderboard_and_the_cost_plot_unless_asked(reviewer_client, scifact_small, artifacts_dir):
    bench = _bench(scifact_small)
    bm25 = services.reranker_model_register(name="bm25", kind=RerankerModel.Kind.BM25)
    real = services.eval_run_create(benchmark=bench, model=bm25, top_k=10, enqueue=False)
    services.eval_run_execute(run_id=real.pk)
    smoke_model = services.reranker_model_register(name="bm25-smoke-copy", kind=RerankerModel.Kind.BM25)
    smoke = services.eval_run_create(benchmark=bench, model=smoke_model, top_k=10, params={"smoke": True}, enqueue=False)
    services.eval_run_execute(run_id=smoke.pk)
    assert EvalRun.objects.filter(status="succeeded").count() == 2
    assert smoke.__class__.objects.get(pk=smoke.pk).params["smoke"] is True
    assert real.__class__.objects.get(pk=real.pk).params["cost"]["queries"] == 12

    # Both are BM25 rows (labelled "BM25"); the smoke one is the second row and carries the smoke badge.
    page = reviewer_client.get("/evaluation/leaderboard/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="badge smoke"' not in html and html.count('class="row-measured"') == 1
    assert 'href="/evaluation/leaderboard/cost/"' in html and 'href="?smoke=1"' in html
    api = reviewer_client.get(reverse("api-leaderboard")).json()
    assert [r["smoke"] for r in api["rows"] if r["kind"] == "measured"] == [False]
    api = reviewer_client.get(reverse("api-leaderboard") + "?smoke=1").json()
    assert sorted(r["smoke"] for r in api["rows"] if r["kind"] == "measured") == [False, True]
    shown = reviewer_client.get("/evaluation/leaderboard/?smoke=1").content.decode()
    assert shown.count('class="row-measured"') == 2 and 'class="badge smoke"' in shown

    cost = reviewer_client.get("/evaluation/leaderboard/cost/")
    assert cost.status_code == 200
    body = cost.content.decode()
    assert "<svg" in body and "BM25" in body and 'class="badge smoke"' not in body
    with_smoke = reviewer_client.get("/evaluation/leaderboard/cost/?smoke=1&cost=tokens")
    assert with_smoke.status_code == 200 and 'class="badge smoke"' in with_smoke.content.decode()
    assert reviewer_client.get("/evaluation/leaderboard/cost/?cost=bananas").status_code == 400
    from django.test import Client

    assert Client().get("/evaluation/leaderboard/cost/").status_code in (302, 403)  # reviewers only


@pytest.mark.django_db
def test_the_smoke_flag_from_the_api_and_the_command(admin_client, scifact_small, artifacts_dir):
    from django.core.management import call_command

    bench = _bench(scifact_small)
    bm25 = services.reranker_model_register(name="bm25", kind=RerankerModel.Kind.BM25)
    url = reverse("api-eval-run-list")
    resp = admin_client.post(url, {"benchmark": bench.pk, "model": bm25.pk, "top_k": 5, "smoke": True},
                             content_type="application/json")
    assert resp.status_code == 201, resp.content
    assert EvalRun.objects.get(pk=resp.json()["id"]).params == {"smoke": True}
    resp = admin_client.post(url, {"benchmark": bench.pk, "model": bm25.pk, "top_k": 5}, content_type="application/json")
    assert EvalRun.objects.get(pk=resp.json()["id"]).params == {}
    call_command("evaluate", benchmark="sf", model="bm25", top_k=5, foreground=True, smoke=True)
    latest = EvalRun.objects.latest("id")
    assert latest.params["smoke"] is True and latest.status == "succeeded"



@pytest.mark.django_db
@pytest.mark.parametrize("kind,feed", [("insertrank", "list+scores"), ("setwise", "list")])
def test_list_feeds_hand_one_query_at_a_time_with_first_stage_scores_when_asked(kind, feed, scifact_small,
                                                                                 artifacts_dir, monkeypatch):
    """The contract the listwise families build on: `list` -> score(query, passages); `list+scores` -> the same
    with the first stage's scores of those passages, in their order."""
    import evaluation.rerankers as registry
    from evaluation.rerankers import Reranker

    seen = []

    class Fake(Reranker):
        def score(self, query, docs, **kw):
            seen.append((query, len(docs), kw))
            self.cost.add(calls=1, tokens_in=10, tokens_out=2)
            return [float(len(docs) - i) for i in range(len(docs))]  # keep the first stage's order

    assert registry.strategy_get(kind).feed == feed
    # services binds the registry's function at import (module-level imports): patch it where it is looked up.
    monkeypatch.setattr(services, "reranker_for_model", lambda model: Fake())
    bench = _bench(scifact_small)
    model = services.reranker_model_register(name=f"fake-{kind}", kind=kind, path="m")
    run = services.eval_run_create(benchmark=bench, model=model, top_k=4, enqueue=False)
    services.eval_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert len(seen) == 12 and all(n == 4 for _, n, _ in seen)
    first = services.first_stage_run(benchmark=bench, first_stage="bm25", top_k=4, queries=services._queries(bench))
    if feed == "list+scores":
        q0 = services._queries(bench)[0]
        assert seen[0][2] == {"first_stage_scores": list(first[q0["qid"]].values())}
    else:
        assert all(kw == {} for _, _, kw in seen)
    assert run.params["cost"] == {**run.params["cost"], "calls": 12, "tokens_in": 120, "tokens_out": 24}
