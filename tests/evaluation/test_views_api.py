"""Pages and API: permissions, leaderboard content (measured vs reported), run page, downloads, launching."""
from __future__ import annotations

import pytest
from django.urls import reverse

from evaluation import services
from evaluation.models import EvalRun, ReferenceResult
from tests import factories


@pytest.fixture
def measured(db, scifact_small, artifacts_dir):
    bench = services.benchmark_import_path(format="beir", path=scifact_small, name="scifact-mini")[0]
    model = services.reranker_model_register(name="bm25", kind="bm25")
    run = services.eval_run_create(benchmark=bench, model=model, top_k=10, enqueue=False)
    services.eval_run_execute(run_id=run.pk)
    services.reference_results_ensure()
    run.refresh_from_db()
    return run


def test_reference_figures_are_idempotent(db):
    n = services.reference_results_ensure()
    assert services.reference_results_ensure() == n == ReferenceResult.objects.count()
    assert ReferenceResult.objects.get(system="Rank1-7B", benchmark="BRIGHT/pony").value == 31.2
    assert ReferenceResult.objects.get(system="LimRank-7B", benchmark="FollowIR").metric == "p_mrr"
    assert ReferenceResult.objects.filter(benchmark__startswith="BRIGHT/").count() == 36


def test_leaderboard_page(reviewer_client, measured):
    r = reviewer_client.get(reverse("evaluation:leaderboard"))
    assert r.status_code == 200
    html = r.content.decode()
    assert "measured here" in html and "reported" in html and "<svg" in html
    assert reverse("evaluation:run_detail", args=[measured.pk]) in html
    assert f"{100 * measured.metrics['ndcg_cut_10']:.1f}" in html
    assert "theoremqa theorems" in html and "BRIGHT avg" in html and "arXiv 2502.18418" in html
    # Sorting by the BRIGHT average puts ReasonRank (40.6) first among the rows that have it.
    board = reviewer_client.get(reverse("api-leaderboard") + "?sort=BRIGHT&dir=desc").json()
    with_avg = [row["label"] for row in board["rows"] if "BRIGHT" in row["cells"]]
    assert with_avg[0] == "ReasonRank" and with_avg[-1] == "BM25"
    assert any(row["kind"] == "measured" and row["cells"]["scifact-mini"]["run_id"] == measured.pk for row in board["rows"])


def test_run_page_and_download(reviewer_client, measured):
    r = reviewer_client.get(reverse("evaluation:run_detail", args=[measured.pk]))
    assert r.status_code == 200 and b"Per query" in r.content and b"nDCG@10" in r.content
    dl = reviewer_client.get(reverse("evaluation:run_download", args=[measured.pk]))
    body = dl.content.decode()
    first = body.splitlines()[0].split()
    assert len(first) == 6 and first[1] == "Q0" and first[3] == "1"
    api = reviewer_client.get(reverse("api-eval-run-run-file", args=[measured.pk]))
    assert api.content.decode() == body
    q = reviewer_client.get(reverse("api-eval-run-queries", args=[measured.pk])).json()
    assert len(q["results"]) == 12 and "ndcg_cut_10" in q["results"][0]["metrics"]


def test_permissions(reviewer_client, measured):
    from django.test import Client

    client = Client()  # reviewer_client is pytest-django's `client`, logged in: a separate one for others
    assert client.get(reverse("evaluation:leaderboard")).status_code == 302  # login first
    outsider = factories.UserFactory()
    client.force_login(outsider)
    assert client.get(reverse("evaluation:leaderboard")).status_code == 403
    assert client.get(reverse("api-leaderboard")).status_code == 403
    # Reviewers read; only admins launch and import.
    assert reviewer_client.get(reverse("evaluation:run_new")).status_code == 403
    assert reviewer_client.get(reverse("evaluation:benchmark_import")).status_code == 403
    r = reviewer_client.post(reverse("api-eval-run-list"), {"benchmark": measured.benchmark_id, "model": measured.model_id},
                             content_type="application/json")
    assert r.status_code == 403


def test_admin_launches_via_api_and_page(admin_client, measured, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as cbs:
        r = admin_client.post(reverse("api-eval-run-list"), {"benchmark": measured.benchmark_id, "model": measured.model_id,
                                                             "top_k": 5}, content_type="application/json")
    assert r.status_code == 201 and r.json()["status"] == "queued" and len(cbs) == 1
    bad = admin_client.post(reverse("api-eval-run-list"), {"benchmark": measured.benchmark_id, "model": measured.model_id,
                                                           "first_stage": "nope"}, content_type="application/json")
    assert bad.status_code == 400 and "not available" in bad.json()["detail"]
    page = admin_client.post(reverse("evaluation:run_new"), {"benchmark": measured.benchmark_id, "model": measured.model_id,
                                                             "first_stage": "bm25", "top_k": 10})
    run = EvalRun.objects.order_by("-id").first()
    assert page.status_code == 302 and page["Location"] == reverse("evaluation:run_detail", args=[run.pk])
    hx = admin_client.get(reverse("evaluation:run_detail", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert b'role="progressbar"' in hx.content and b"every 2s" in hx.content


def test_admin_upload_with_a_bad_line_creates_nothing(admin_client, scifact_small):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from evaluation.models import Benchmark

    qrels = (scifact_small / "qrels" / "test.tsv").read_text() + "1\t31715818\n"
    files = {"format": "beir", "name": "upl",
             "corpus": SimpleUploadedFile("corpus.jsonl", (scifact_small / "corpus.jsonl").read_bytes()),
             "queries": SimpleUploadedFile("queries.jsonl", (scifact_small / "queries.jsonl").read_bytes()),
             "qrels": SimpleUploadedFile("test.tsv", qrels.encode())}
    r = admin_client.post(reverse("evaluation:benchmark_import"), files)
    assert r.status_code == 200 and b"Nothing was imported" in r.content and b"line 15" in r.content
    assert not Benchmark.objects.filter(name="upl").exists()
    files["qrels"] = SimpleUploadedFile("test.tsv", (scifact_small / "qrels" / "test.tsv").read_bytes())
    for f in ("corpus", "queries"):
        files[f].seek(0)
    r = admin_client.post(reverse("evaluation:benchmark_import"), files)
    assert r.status_code == 302 and Benchmark.objects.get(name="upl").n_queries == 12
