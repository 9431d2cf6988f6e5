"""The multi-process path: the worker runs `accelerate launch ... -m training.launch --job-id ID` as a child process
(here with one CPU process; on a GPU host N processes). The child uses the parent's database and writes the result."""
from __future__ import annotations

import pytest

from limrank_app.jobs import JobStatus, job_claim
from tests.training.conftest import make_dataset_version, reasoning_rows
from training import services
from training.models import ModelArtifact, TrainingJob


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_job_runs_under_accelerate_launch(settings, tiny_qwen_dir):
    settings.LIMRANK_TRAINING_LAUNCHER = "accelerate"
    version = make_dataset_version(reasoning_rows(4))
    job = services.training_job_create(
        dataset_version=version, base_model=str(tiny_qwen_dir), preset="released", enqueue=False,
        overrides={"max_steps": 2, "per_device_batch_size": 2, "gradient_accumulation_steps": 1, "max_length": 96},
    )
    assert job_claim(TrainingJob, pk=job.pk)
    services.training_job_execute(job=TrainingJob.objects.get(pk=job.pk))
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, (job.error, job.log[-3000:])
    assert "accelerate" in job.log and "training.launch --job-id" in job.log
    assert job.progress_done == job.progress_total == 2 and job.metrics["loss"]
    assert ModelArtifact.objects.get(training_job=job).kind == ModelArtifact.Kind.LORA_ADAPTER
