"""Run files: TREC and score.json ({qid: {docid: score}}, as Rank1 / LimRank publish first stages) in and out,
the top k of a given run reranked, uploads through the API, downloads in either format."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from evaluation import services
from evaluation.benchmarks import BenchmarkFormatError, read_run, read_run_score_json, read_run_trec, write_run
from evaluation.metrics import evaluate, run_top_k

# Scores whose decimal form is long or unusual: a lossy writer (e.g. %.9g) would change them.
AWKWARD = {
    "q1": {"d1": 0.1 + 0.2, "d2": 1e-7, "d3": -3.25, "d4": 12345678.123456789},
    "q2": {"d9": 2 / 3, "d1": 7},
}


def test_score_json_round_trip_is_exact(tmp_path):
    src = tmp_path / "score.json"
    src.write_text(json.dumps(AWKWARD))
    run = read_run(src)
    assert run == {q: {d: float(s) for d, s in docs.items()} for q, docs in AWKWARD.items()}
    # score.json -> TREC -> score.json: the same floats, bit for bit.
    trec = write_run(run, tmp_path / "out.trec", tag="bm25 gpt4")
    assert read_run(trec) == run and read_run_trec(trec) == run
    assert trec.read_text().splitlines()[0] == "q1 Q0 d4 1 12345678.12345679 bm25gpt4"  # %.9g would write 12345678.1
    back = write_run(read_run(trec), tmp_path / "back.json", tag="x")
    assert json.loads(back.read_text()) == json.loads(json.dumps(run))
    assert read_run_score_json(back)["q1"]["d1"] == 0.30000000000000004
    # Documents are written in rank order (score descending).
    assert list(json.loads(back.read_text())["q1"]) == ["d4", "d1", "d2", "d3"]


def test_trec_round_trip_through_score_json(shared_data, tmp_path):
    trec = shared_data / "trec_eval" / "results.test"
    run = read_run(trec)
    as_json = write_run(run, tmp_path / "r.json", tag="t")
    assert read_run(as_json) == run
    assert read_run(write_run(read_run(as_json), tmp_path / "r.trec", tag="t")) == run


@pytest.mark.parametrize("content, message", [
    ('{"q1": {"d1": 1.0,}}', r"score\.json, line 1: invalid JSON"),
    ('{"q1": {"d1": "high"}}', r"field 'q1/d1': not a number: 'high'"),
    ('{"q1": {"d1": true}}', r"field 'q1/d1': not a number: True"),
    ('{"q1": {"d1": NaN}}', r"not a finite number"),
    ('{"q1": ["d1", "d2"]}', r"field 'q1': query 'q1': expected an object"),
    ('{\n"q1": {"d1": 1.0}\n,,}', r"line 3: invalid JSON"),
])
def test_bad_score_json_says_where(tmp_path, content, message):
    path = tmp_path / "score.json"
    path.write_text(content)
    with pytest.raises(BenchmarkFormatError, match=message):
        read_run(path)


def test_run_top_k_keeps_the_best():
    run = {"q": {"a": 1.0, "b": 3.0, "c": 2.0, "d": 3.0}}
    assert run_top_k(run, 2) == {"q": {"d": 3.0, "b": 3.0}}  # ties broken by docid descending, as trec_eval


@pytest.fixture
def scifact_bench(db, scifact_small, artifacts_dir):
    return services.benchmark_import_path(format="beir", path=scifact_small, name="sf")[0]


def _a_first_stage(bench) -> dict[str, dict[str, float]]:
    """A published-style first stage: every query ranks 20 documents, its judged ones at varying depths."""
    from evaluation.models import BenchmarkDocument, Qrel

    docids = list(BenchmarkDocument.objects.filter(benchmark=bench).order_by("docid").values_list("docid", flat=True))
    run = {}
    for i, qid in enumerate(bench.queries.order_by("qid").values_list("qid", flat=True)):
        judged = list(Qrel.objects.filter(benchmark=bench, qid=qid).values_list("docid", flat=True))
        others = [d for d in docids[i * 7:] if d not in judged][: 20 - len(judged)]
        ranked = others[: i % 8] + judged + others[i % 8:]
        run[qid] = {d: round(30.0 - r * 1.37, 6) for r, d in enumerate(ranked)}
    return run


def test_evaluate_command_reranks_top_k_of_a_score_json(scifact_bench, tmp_path):
    """`evaluate --first-stage score.json --top-k 5 --run-out out.json`: the first stage's top 5, scored as
    pytrec_eval scores them; the output round-trips to the same scores."""
    first = _a_first_stage(scifact_bench)
    folder = tmp_path / "scifact_bm25_long_False"
    folder.mkdir()
    (folder / "score.json").write_text(json.dumps(first))
    out_json, out = tmp_path / "reranked.json", StringIO()
    call_command("evaluate", benchmark="sf", model="bm25", first_stage=str(folder / "score.json"), top_k=5,
                 run_out=str(out_json), foreground=True, stdout=out)
    assert "first stage 'scifact_bm25_long_False' attached" in out.getvalue()
    written = read_run(out_json)
    assert written == run_top_k(first, 5)
    assert all(len(docs) == 5 for docs in written.values())
    run = scifact_bench.eval_runs.get()
    assert run.first_stage == "scifact_bm25_long_False" and run.top_k == 5
    _, expected = evaluate({q: dict(d) for q, d in services._qrels(scifact_bench, "og").items()}, run_top_k(first, 5))
    assert run.metrics["ndcg_cut_10"] == pytest.approx(expected["ndcg_cut_10"], abs=1e-9)
    assert run.metrics["ndcg_cut_10"] != pytest.approx(evaluate(services._qrels(scifact_bench, "og"), first)[1]["ndcg_cut_10"])

    # The same run as TREC, and the stored first stage is reused by name.
    out_trec = tmp_path / "reranked.trec"
    call_command("evaluate", benchmark="sf", model="bm25", first_stage="scifact_bm25_long_False", top_k=5,
                 run_out=str(out_trec), foreground=True, stdout=StringIO())
    assert out_trec.read_text().split("\n")[0].split()[1] == "Q0"
    assert read_run(out_trec) == written


def test_evaluate_command_refuses_bad_first_stage_files(scifact_bench, tmp_path):
    bad = tmp_path / "score.json"
    bad.write_text(json.dumps({"no-such-query": {"d": 1.0}}))
    with pytest.raises(CommandError, match="unknown query id 'no-such-query'"):
        call_command("evaluate", benchmark="sf", model="bm25", first_stage=str(bad), foreground=True, stdout=StringIO())
    with pytest.raises(CommandError, match="no such file"):
        call_command("evaluate", benchmark="sf", model="bm25", first_stage=str(tmp_path / "missing.json"),
                     foreground=True, stdout=StringIO())
    assert not scifact_bench.eval_runs.exists()
    assert services.benchmark_first_stages(scifact_bench) == ["bm25"]


def test_attach_refuses_changed_scores_under_a_used_name(scifact_bench, tmp_path):
    first = _a_first_stage(scifact_bench)
    path = tmp_path / "gpt4.json"
    path.write_text(json.dumps(first))
    services.benchmark_run_attach(benchmark=scifact_bench, name="gpt4", path=path)
    services.benchmark_run_attach(benchmark=scifact_bench, name="gpt4", path=path)  # same scores: fine
    run = services.eval_run_create(benchmark=scifact_bench, model=services.reranker_model_register(name="bm25", kind="bm25"),
                                   first_stage="gpt4", enqueue=False)
    services.eval_run_execute(run_id=run.pk)
    qid = next(iter(first))
    first[qid][next(iter(first[qid]))] += 1.0
    path.write_text(json.dumps(first))
    with pytest.raises(services.EvaluationError, match="already has a run named 'gpt4'"):
        services.benchmark_run_attach(benchmark=scifact_bench, name="gpt4", path=path)


def test_api_run_upload_accepts_score_json(client, admin_user, reviewer_user, scifact_bench):
    first = _a_first_stage(scifact_bench)
    url = reverse("api-benchmark-runs", args=[scifact_bench.pk])
    upload = lambda body, name="score.json": SimpleUploadedFile(name, body.encode(), content_type="application/json")  # noqa: E731
    client.force_login(reviewer_user)
    assert client.post(url, {"file": upload(json.dumps(first))}).status_code == 403
    client.force_login(admin_user)
    r = client.post(url, {"file": upload(json.dumps(first)), "name": "bm25-gpt4"})
    assert r.status_code == 201, r.content
    assert r.json()["first_stages"] == ["bm25", "bm25-gpt4"]
    assert read_run(services.benchmark_run_path(scifact_bench, "bm25-gpt4")) == first
    bad = client.post(url, {"file": upload('{"1": {"d": "x"}}'), "name": "bad"})
    assert bad.status_code == 400 and bad.json()["field"] == "1/d" and bad.json()["file"] == "score.json"
    # TREC still works, under the file's stem.
    trec = "".join(f"{q} Q0 {d} 1 {s} t\n" for q, docs in first.items() for d, s in docs.items())
    r = client.post(url, {"file": upload(trec, "bm25plain.trec")})
    assert r.status_code == 201 and r.json()["name"] == "bm25plain"


def test_benchmark_import_form_takes_a_score_json_run(admin_client, shared_data, tmp_path, artifacts_dir):
    """The TREC import's run field: a score.json is read as one (content decides, not the name)."""
    d = shared_data / "trec_eval"
    run = read_run(d / "results.test")
    topics = "".join(f"{q}\tquery {q}\n" for q in sorted(read_run(d / "results.test")))
    r = admin_client.post(reverse("evaluation:benchmark_import"), {
        "format": "trec", "name": "te",
        "queries": SimpleUploadedFile("topics.tsv", topics.encode()),
        "qrels": SimpleUploadedFile("qrels.test", (d / "qrels.test").read_bytes()),
        "run": SimpleUploadedFile("score.json", json.dumps(run).encode()),
    })
    assert r.status_code == 302, r.content.decode()[:2000]
    from evaluation.models import Benchmark

    bench = Benchmark.objects.get(name="te")
    assert services.benchmark_first_stages(bench) == ["score"]
    assert read_run(services.benchmark_run_path(bench, "score")) == run


def test_run_download_as_score_json(reviewer_client, scifact_bench):
    run = services.eval_run_create(benchmark=scifact_bench, model=services.reranker_model_register(name="bm25", kind="bm25"),
                                   top_k=10, enqueue=False)
    services.eval_run_execute(run_id=run.pk)
    run.refresh_from_db()
    page = reviewer_client.get(reverse("evaluation:run_download", args=[run.pk]) + "?file_format=json")
    api = reviewer_client.get(reverse("api-eval-run-run-file", args=[run.pk]) + "?file_format=json")
    assert page.status_code == api.status_code == 200
    assert page["Content-Type"] == "application/json" and 'evalrun-%d.json' % run.pk in page["Content-Disposition"]
    assert json.loads(page.content) == json.loads(api.content) == read_run(run.run_file)
