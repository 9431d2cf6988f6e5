"""Writes for training: create (validate + enqueue on the gpu queue), execute (train, store, register), cancel."""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import traceback
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from curation.models import DatasetVersion
from limrank_app.jobs import JobStatus, job_cancel, job_enqueue_on_commit, job_finish, job_progress

from .models import ModelArtifact, TrainingJob
from .presets import FIELD_NAMES, ConfigError, TrainingConfig, config_build
from . import embedding, lora
from .signals import model_artifact_registered

log = logging.getLogger(__name__)
RESULT_FILE = "result.json"
MEMBER_FIELDS = ("query_text", "instruction", "passage_title", "passage_text", "reasoning_trace", "label")


def training_output_dir(job_id: int) -> Path:
    return Path(settings.ARTIFACTS_DIR) / "training" / f"job-{job_id}"


def _looks_local(path: str) -> bool:
    return path.startswith(("/", "./", "../", "~")) or os.sep in path and Path(path).expanduser().exists()


def training_config_build(
    *, backbone: str | None = None, base_model: str | None = None, preset: str | None = "released",
    overrides: dict[str, Any] | None = None, num_processes: int = 1,
) -> TrainingConfig:
    """The config a job would run with; raises ValidationError naming each bad field."""
    values = dict(overrides or {})
    if backbone:
        values["backbone"] = backbone
    if base_model:
        values["base_model"] = base_model
    values["num_processes"] = num_processes
    for fixed in ("output_dir", "dataset_version_id", "dataset_hash"):
        if fixed in values:
            raise ValidationError({fixed: "set by the studio, not editable"})
    try:
        config = config_build(preset=preset or None, values=values)
    except ConfigError as exc:
        raise ValidationError(exc.errors) from None
    if _looks_local(config.base_model):
        local = Path(config.base_model).expanduser()
        if not (local / "config.json").exists():
            raise ValidationError({"base_model": f"{config.base_model}: no model here (config.json not found); "
                                                 "give a local model directory or a hub id such as Qwen/Qwen2.5-7B"})
    return config


@transaction.atomic
def training_job_create(
    *,
    dataset_version: DatasetVersion,
    backbone: str | None = None,
    base_model: str | None = None,
    preset: str | None = "released",
    overrides: dict[str, Any] | None = None,
    created_by=None,
    num_processes: int = 1,
    name: str = "",
    enqueue: bool = True,
) -> TrainingJob:
    """Validate, store the job row, and enqueue it on the gpu queue once the transaction commits
    (enqueue=False: the caller runs it, e.g. `manage.py train --foreground`)."""
    config = training_config_build(backbone=backbone, base_model=base_model, preset=preset, overrides=overrides,
                                   num_processes=num_processes)
    if dataset_version.status != DatasetVersion.Status.READY:
        raise ValidationError({"dataset_version": f"{dataset_version} is {dataset_version.status}, not ready"})
    if not dataset_version.members.exists():
        raise ValidationError({"dataset_version": f"{dataset_version} has no members"})
    job = TrainingJob.objects.create(
        name=(name or f"{config.backbone} on {dataset_version}")[:200],
        dataset_version=dataset_version,
        base_model=config.base_model,
        backbone=config.backbone,
        preset=preset or "custom",
        hyperparameters=config.hyperparameters(),
        num_processes=config.num_processes,
        created_by=created_by,
    )
    job.output_dir = str(training_output_dir(job.pk))
    job.save(update_fields=["output_dir"])
    training_job_log(job=job, line=f"created by {created_by or 'command line'}; preset {job.preset}")

    if enqueue:
        job_enqueue_on_commit(TrainingJob, pk=job.pk)
    return job


def training_job_log(*, job: TrainingJob, line: str) -> None:
    """Append a line in the database (no read-modify-write, so concurrent writers don't lose lines)."""
    stamp = timezone.now().strftime("%H:%M:%S")
    TrainingJob.objects.filter(pk=job.pk).update(log=Concat(F("log"), Value(f"{stamp} {line}\n")))


def training_job_config(*, job: TrainingJob) -> TrainingConfig:
    hp = {k: v for k, v in (job.hyperparameters or {}).items() if k in FIELD_NAMES}
    config = config_build(values={**hp, "backbone": job.backbone, "base_model": job.base_model,
                                  "num_processes": job.num_processes})
    config.output_dir = job.output_dir or str(training_output_dir(job.pk))
    config.dataset_version_id = job.dataset_version_id
    config.dataset_hash = job.dataset_version.content_hash
    return config


def training_job_rows(*, job: TrainingJob) -> list[dict[str, Any]]:
    return list(job.dataset_version.members.order_by("position").values(*MEMBER_FIELDS))


class JobReporter:
    """Training progress -> the job row (job_progress: heartbeat + cancel check) and its log."""

    def __init__(self, job: TrainingJob):
        self.job = job
        self.is_main = int(os.environ.get("RANK", "0")) == 0

    def progress(self, *, step: int, total: int, metrics: dict[str, Any]) -> bool:
        if not self.is_main:
            return True
        return job_progress(self.job, done=step, total=total, metrics=metrics)

    def log(self, line: str) -> None:
        if self.is_main:
            training_job_log(job=self.job, line=line)


def training_job_train(*, job: TrainingJob, foreground: bool = False):
    """Run the training loop in this process (one rank under accelerate, or the whole job)."""
    config = training_job_config(job=job)
    trainer = embedding.train if config.backbone == "embedding" else lora.train
    return trainer(config=config, rows=training_job_rows(job=job), reporter=JobReporter(job), foreground=foreground)


def _database_url() -> str:
    """The child processes of `accelerate launch` must use the very database this process uses."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"

    auth = quote(s.get("USER") or "") + (f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else "")
    host = f"{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}"
    return f"postgres://{auth}@{host}/{s['NAME']}"


def accelerate_command(*, job: TrainingJob) -> list[str]:
    exe = Path(sys.executable).with_name("accelerate")
    launcher = [str(exe)] if exe.exists() else [sys.executable, "-m", "accelerate.commands.launch"]
    if launcher[0].endswith("accelerate"):
        launcher.append("launch")
    return [*launcher, "--num_processes", str(job.num_processes), "-m", "training.launch", "--job-id", str(job.pk)]


def _train_under_accelerate(*, job: TrainingJob):
    result_path = Path(job.output_dir) / RESULT_FILE
    result_path.unlink(missing_ok=True)
    cmd = accelerate_command(job=job)
    training_job_log(job=job, line="$ " + " ".join(cmd))
    env = {**os.environ, "DATABASE_URL": _database_url(), "DJANGO_SETTINGS_MODULE": "limrank_app.settings",
           "LIMRANK_ARTIFACTS_DIR": str(settings.ARTIFACTS_DIR), "TOKENIZERS_PARALLELISM": "false"}
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(cmd, cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:
        for line in proc.stdout:
            tail.append(line.rstrip())
        rc = proc.wait()
    if rc != 0 or not result_path.exists():
        raise RuntimeError(f"accelerate launch exited with {rc}:\n" + "\n".join(tail))
    return lora.TrainResult(**json.loads(result_path.read_text()))


def training_result_write(*, job: TrainingJob, result) -> None:
    """Rank 0 of an accelerate run hands its result to the parent process through a file."""
    path = Path(job.output_dir) / RESULT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(result)))


def _uses_accelerate(job: TrainingJob) -> bool:
    return job.num_processes > 1 or settings.LIMRANK_TRAINING_LAUNCHER == "accelerate"


def model_artifact_register(*, job: TrainingJob, config: TrainingConfig, result) -> ModelArtifact:
    """Store the artifact row (idempotent per job) and announce it; evaluation registers a model it can score."""
    path = Path(result.output_dir)
    if config.backbone == "causal-lm":
        kind = ModelArtifact.Kind.LORA_ADAPTER if (path / "adapter_config.json").exists() else ModelArtifact.Kind.FULL_MODEL
    elif config.backbone == "embedding":
        kind = ModelArtifact.Kind.EMBEDDING
    else:
        kind = ModelArtifact.Kind.CROSS_ENCODER
    name = f"training-job-{job.pk}"
    hyper = {**config.hyperparameters(), "train_loss": result.train_loss, "global_step": result.global_step}
    artifact, _ = ModelArtifact.objects.update_or_create(
        training_job=job,
        defaults={"name": name, "kind": kind, "path": str(path), "base_model": config.base_model,
                  "dataset_hash": config.dataset_hash, "hyperparameters": hyper, "size_bytes": lora.artifact_size(path)},
    )
    model_artifact_registered.send(sender=ModelArtifact, artifact=artifact)
    return artifact


def training_job_execute(*, job: TrainingJob, foreground: bool = False) -> TrainingJob:
    """Train a claimed job (status running), store and register the artifact, finish the row.
    A second attempt after a killed worker resumes from the last checkpoint in output_dir/checkpoints."""
    job.refresh_from_db()
    if job.status != JobStatus.RUNNING:
        return job
    training_job_log(job=job, line=f"attempt {job.attempts}/{job.max_attempts} on {job.claimed_by}")
    try:
        config = training_job_config(job=job)
        if _uses_accelerate(job):
            result = _train_under_accelerate(job=job)
        else:
            result = training_job_train(job=job, foreground=foreground)
        job.refresh_from_db()
        metrics = {**(job.metrics or {}), **result.metrics}
        if result.cancelled:
            job_finish(job, status=JobStatus.CANCELLED, metrics=metrics)
            return job
        model_artifact_register(job=job, config=config, result=result)
        training_job_log(job=job, line=f"artifact registered: training-job-{job.pk} ({result.output_dir})")
        job_finish(job, status=JobStatus.SUCCEEDED, metrics=metrics, progress_done=result.global_step,
                   progress_total=result.total_steps)
    except Exception as exc:
        log.exception("training job %s failed", job.pk)
        training_job_log(job=job, line="failed:\n" + traceback.format_exc(limit=8))
        job_finish(job, status=JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000])
    return job


def training_job_cancel(*, job: TrainingJob) -> TrainingJob:
    """Queued: cancelled at once. Running: stops at its next progress report (keeps its checkpoints)."""
    job_cancel(job)
    training_job_log(job=job, line="cancel requested")
    return job


def training_job_delete_outputs(*, job: TrainingJob) -> None:
    """Free the disk of a finished job's checkpoints (the final artifact stays)."""
    shutil.rmtree(Path(job.output_dir) / "checkpoints", ignore_errors=True)
