"""Every launch answers 503 when the broker is unreachable, and the job row stays queued and unsent (the sweeper or
Resume sends it): training jobs and eval runs over the API and their pages (generation runs:
tests/foundation/test_job_sweeper.py and tests/integration/test_job_faults.py)."""
from __future__ import annotations

import pytest
from django.urls import reverse

from evaluation import services as eval_services
from evaluation.models import EvalRun
from limrank_app.jobs import JobStatus
from tests.conftest import broker_switched
from tests.evaluation.conftest import artifacts_dir, scifact_small  # noqa: F401
from tests.training.conftest import make_dataset_version, reasoning_rows, tiny_qwen_dir  # noqa: F401
from training.models import TrainingJob

pytestmark = pytest.mark.django_db(transaction=True)  # tasks are sent on commit, inside the request
CLOSED = "redis://127.0.0.1:1/0"  # nothing listens there


def _assert_unsent(job):
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.heartbeat_at is None and job.is_resumable


def test_training_launch_with_the_broker_down(admin_client, tiny_qwen_dir):  # noqa: F811
    version = make_dataset_version(reasoning_rows(4))
    body = {"dataset_version": version.pk, "preset": "released", "base_model": str(tiny_qwen_dir),
            "overrides": {"max_steps": 2}}
    with broker_switched(CLOSED):
        r = admin_client.post("/api/training-jobs/", body, content_type="application/json")
        assert r.status_code == 503 and "broker" in r.json()["detail"]
        _assert_unsent(TrainingJob.objects.get())
        r = admin_client.post(f"/api/training-jobs/{TrainingJob.objects.get().pk}/resume/")
        assert r.status_code == 503
    _assert_unsent(TrainingJob.objects.get())


def test_eval_launch_with_the_broker_down(admin_client, scifact_small, artifacts_dir):  # noqa: F811
    bench = eval_services.benchmark_import_path(format="beir", path=scifact_small, name="scifact-mini")[0]
    model = eval_services.reranker_model_register(name="bm25", kind="bm25")
    with broker_switched(CLOSED):
        r = admin_client.post(reverse("api-eval-run-list"), {"benchmark": bench.pk, "model": model.pk, "top_k": 5},
                              content_type="application/json")
        assert r.status_code == 503 and "Resume" in r.json()["detail"]
        _assert_unsent(EvalRun.objects.get())
        page = admin_client.post(reverse("evaluation:run_new"), {"benchmark": bench.pk, "model": model.pk,
                                                                 "first_stage": "bm25", "top_k": 10})
        assert page.status_code == 503 and b"job queue" in page.content
    assert EvalRun.objects.count() == 2
    for run in EvalRun.objects.all():
        _assert_unsent(run)
