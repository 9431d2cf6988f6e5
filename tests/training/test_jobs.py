"""Training jobs as rows: create/validate, resume after a killed worker, cancel, attempts cap."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from evaluation.models import RerankerModel
from limrank_app.jobs import JobStatus, job_claim
from tests import factories
from tests.training.conftest import make_dataset_version, reasoning_rows
from training import services
from training.models import ModelArtifact, TrainingJob

FAST = {"per_device_batch_size": 2, "gradient_accumulation_steps": 1, "max_length": 96, "learning_rate": 1e-3,
        "logging_steps": 1}


class _Killed(BaseException):
    """Stands in for SIGKILL: nothing in the service catches it, the row stays 'running'."""


def _claim(job):
    assert job_claim(TrainingJob, pk=job.pk)
    job.refresh_from_db()
    return job


@pytest.mark.django_db
def test_create_validates_and_enqueues_on_commit(tiny_qwen_dir, django_capture_on_commit_callbacks):
    version = make_dataset_version(reasoning_rows(4))
    admin = factories.admin()
    with pytest.raises(ValidationError) as err:
        services.training_job_create(dataset_version=version, base_model=str(tiny_qwen_dir), preset="released",
                                     overrides={"learning_rate": "fast", "warmup_ratio": 2, "nope": 1}, created_by=admin)
    assert set(err.value.message_dict) == {"learning_rate", "nope"}
    with pytest.raises(ValidationError) as err:
        services.training_job_create(dataset_version=version, base_model="/no/such/model", created_by=admin)
    assert "base_model" in err.value.message_dict
    building = factories.DatasetVersionFactory(status="building")
    with pytest.raises(ValidationError) as err:
        services.training_job_create(dataset_version=building, base_model=str(tiny_qwen_dir), created_by=admin)
    assert "dataset_version" in err.value.message_dict

    from unittest import mock

    with mock.patch("training.tasks.training_job_execute_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            job = services.training_job_create(dataset_version=version, base_model=str(tiny_qwen_dir), preset="paper",
                                               overrides={"epochs": "2", "bf16": "false"}, created_by=admin,
                                               num_processes=2)
    assert len(callbacks) == 1 and delay.call_args.args == (job.pk,)
    assert job.status == JobStatus.QUEUED and job.preset == "paper"
    hp = job.hyperparameters
    assert hp["epochs"] == 2.0 and hp["bf16"] is False and hp["lora_r"] == 32 and hp["learning_rate"] == 6e-5
    # Effective batch 128 over 2 processes × 4 per device -> 16 accumulation steps.
    assert hp["accumulation_steps"] == 16 and hp["global_batch_size"] == 128
    assert job.output_dir.endswith(f"training/job-{job.pk}")
    assert services.accelerate_command(job=job)[-6:] == ["--num_processes", "2", "-m", "training.launch", "--job-id", str(job.pk)]


@pytest.mark.django_db
def test_interrupted_job_resumes_from_checkpoint_with_same_total_steps(tiny_qwen_dir, monkeypatch):
    version = make_dataset_version(reasoning_rows(8))
    job = services.training_job_create(dataset_version=version, base_model=str(tiny_qwen_dir), preset="released",
                                       overrides={**FAST, "epochs": 2, "save_steps": 3})
    expected_total = 8 // 2 * 2  # 4 steps per epoch, 2 epochs
    original = services.JobReporter.progress

    def dies_at_step_5(self, *, step, total, metrics):
        if step == 5:
            raise _Killed()
        return original(self, step=step, total=total, metrics=metrics)

    monkeypatch.setattr(services.JobReporter, "progress", dies_at_step_5)
    with pytest.raises(_Killed):
        services.training_job_execute(job=_claim(job))
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.progress_total == expected_total and job.attempts == 1
    assert (services.training_output_dir(job.pk) / "checkpoints" / "checkpoint-3").is_dir()
    assert not ModelArtifact.objects.filter(training_job=job).exists()

    # The worker is gone: its heartbeat goes stale, the next delivery claims it again and resumes.
    monkeypatch.setattr(services.JobReporter, "progress", original)
    assert not job_claim(TrainingJob, pk=job.pk)  # heartbeat still fresh: another worker may hold it
    TrainingJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    services.training_job_execute(job=_claim(job))
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 2
    assert job.progress_done == job.progress_total == expected_total
    assert job.metrics["resumed_from"] == "checkpoint-3"
    assert "resuming from checkpoint-3" in job.log
    steps = [s for s, _ in job.metrics["loss"]]
    assert steps == sorted(set(steps)) and steps[-1] == expected_total and 4 in steps and 5 in steps

    artifact = ModelArtifact.objects.get(training_job=job)
    assert artifact.kind == ModelArtifact.Kind.LORA_ADAPTER and artifact.size_bytes > 0
    assert artifact.dataset_hash == version.content_hash and artifact.hyperparameters["global_step"] == expected_total
    reranker = RerankerModel.objects.get(artifact=artifact)
    assert reranker.kind == RerankerModel.Kind.CAUSAL_LM and reranker.path == artifact.path


@pytest.mark.django_db
def test_cancel_stops_a_running_job_and_attempts_are_capped(tiny_qwen_dir, monkeypatch):
    version = make_dataset_version(reasoning_rows(8))
    job = services.training_job_create(dataset_version=version, base_model=str(tiny_qwen_dir), preset="released",
                                       overrides={**FAST, "epochs": 2, "save_steps": 100})
    original = services.JobReporter.progress

    def cancel_at_step_2(self, *, step, total, metrics):
        if step == 2:
            services.training_job_cancel(job=TrainingJob.objects.get(pk=self.job.pk))
        return original(self, step=step, total=total, metrics=metrics)

    monkeypatch.setattr(services.JobReporter, "progress", cancel_at_step_2)
    services.training_job_execute(job=_claim(job))
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert 2 <= job.progress_done < job.progress_total == 8
    assert not ModelArtifact.objects.filter(training_job=job).exists()
    assert "cancel requested" in job.log

    # A queued job is cancelled at once; a stale job with all attempts used is failed, not run again.
    queued = factories.TrainingJobFactory(dataset_version=version)
    services.training_job_cancel(job=queued)
    assert queued.status == JobStatus.CANCELLED and not job_claim(TrainingJob, pk=queued.pk)
    worn = factories.TrainingJobFactory(dataset_version=version, status=JobStatus.RUNNING, attempts=3, max_attempts=3,
                                        heartbeat_at=timezone.now() - timedelta(hours=1))
    assert not job_claim(TrainingJob, pk=worn.pk)
    worn.refresh_from_db()
    assert worn.status == JobStatus.FAILED and "attempts exhausted" in worn.error
