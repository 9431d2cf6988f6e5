"""The whole path through a real worker: launch from the API -> the job runs on the gpu queue -> artifact registered."""
from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from evaluation.models import RerankerModel
from tests import factories
from tests.conftest import celery_worker
from tests.training.conftest import make_dataset_version, reasoning_rows
from training.models import ModelArtifact, TrainingJob


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_api_launch_runs_on_gpu_queue_and_registers_artifact(broker_url, tiny_qwen_dir):
    version = make_dataset_version(reasoning_rows(6))
    client = APIClient()
    client.force_authenticate(factories.admin())
    with celery_worker(broker_url, queues=("gpu",)):
        response = client.post("/api/training-jobs/", {
            "dataset_version": version.pk, "preset": "released", "base_model": str(tiny_qwen_dir),
            "overrides": {"max_steps": 2, "per_device_batch_size": 3, "gradient_accumulation_steps": 1,
                          "max_length": 96, "save_steps": 1},
        }, format="json")
        assert response.status_code == 201, response.content
        job_id = response.json()["id"]
        deadline = time.monotonic() + 180
        job = TrainingJob.objects.get(pk=job_id)
        while not job.is_finished and time.monotonic() < deadline:
            time.sleep(0.5)
            job.refresh_from_db()
    assert job.status == "succeeded", (job.status, job.error, job.log[-2000:])
    assert job.attempts == 1 and job.progress_done == job.progress_total == 2
    assert job.claimed_by and job.metrics["loss"]
    artifact = ModelArtifact.objects.get(training_job=job)
    reranker = RerankerModel.objects.get(artifact=artifact)
    assert reranker.kind == "causal-lm" and reranker.config["adapter"] is True
    detail = client.get(f"/api/training-jobs/{job_id}/").json()
    assert detail["artifact"] == artifact.pk and detail["status"] == "succeeded"
    artifacts = client.get("/api/model-artifacts/").json()["results"]
    assert artifacts[0]["name"] == f"training-job-{job_id}" and artifacts[0]["rerankers"] == [reranker.pk]
