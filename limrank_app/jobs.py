"""Job state on rows: every background job (generation run, training job, eval run) is a row
that a task claims with a conditional update, so a redelivered task never does work twice,
and a job whose worker died (stale heartbeat) can be claimed again and resumed."""
from __future__ import annotations

import os
import socket
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobState(models.Model):
    """Abstract: the state every job row carries.

    A concrete job names the Celery task that executes it in `execute_task`: a worker that starts re-enqueues
    the rows a dead worker left running (limrank_app.worker_signals), without the core knowing the apps above it."""

    execute_task: str = ""  # a class attribute, not a column

    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    error = models.TextField(blank=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def progress_percent(self) -> int:
        if not self.progress_total:
            return 100 if self.status == JobStatus.SUCCEEDED else 0
        return min(100, round(100 * self.progress_done / self.progress_total))

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED


def recoverable_jobs() -> dict[str, str]:
    """Every installed job model that names its task: "app_label.Model" -> task name."""
    return {m._meta.label: m.execute_task for m in apps.get_models()
            if issubclass(m, JobState) and m.execute_task}


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def job_claim(model: type[JobState], *, pk, lease_seconds: int | None = None) -> bool:
    """Claim a queued job, or a running one whose worker stopped heartbeating.
    Returns False when another worker holds it, it is finished, or attempts are used up."""
    lease = lease_seconds if lease_seconds is not None else settings.LIMRANK_JOB_LEASE_SECONDS
    now = timezone.now()
    stale = Q(status=JobStatus.RUNNING) & (Q(heartbeat_at__lt=now - timedelta(seconds=lease)) | Q(heartbeat_at__isnull=True))
    claimable = (Q(status=JobStatus.QUEUED) | stale) & Q(attempts__lt=F("max_attempts")) & Q(cancel_requested=False)
    updated = model.objects.filter(Q(pk=pk) & claimable).update(
        status=JobStatus.RUNNING,
        attempts=F("attempts") + 1,
        claimed_by=worker_identity(),
        heartbeat_at=now,
        started_at=now,
        error="",
    )
    if not updated:
        # A stale job that has used all its attempts is failed, so it does not hang as 'running'.
        model.objects.filter(Q(pk=pk) & stale & Q(attempts__gte=F("max_attempts"))).update(
            status=JobStatus.FAILED, error="attempts exhausted (worker lost)", finished_at=now
        )
    return bool(updated)


def job_progress(job: JobState, *, done: int | None = None, total: int | None = None, **fields) -> bool:
    """Record progress and heartbeat; returns False if a cancel was requested."""
    values = {"heartbeat_at": timezone.now(), **fields}
    if done is not None:
        values["progress_done"] = done
        job.progress_done = done
    if total is not None:
        values["progress_total"] = total
        job.progress_total = total
    type(job).objects.filter(pk=job.pk).update(**values)
    return not type(job).objects.filter(pk=job.pk, cancel_requested=True).exists()


def job_finish(job: JobState, *, status: str = JobStatus.SUCCEEDED, error: str = "", **fields) -> None:
    now = timezone.now()
    type(job).objects.filter(pk=job.pk).update(status=status, error=error, finished_at=now, heartbeat_at=now, **fields)
    job.refresh_from_db()


def job_cancel(job: JobState) -> None:
    """Queued jobs are cancelled at once; running ones stop at their next progress report."""
    model = type(job)
    model.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
        status=JobStatus.CANCELLED, cancel_requested=True, finished_at=timezone.now()
    )
    model.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(cancel_requested=True)
    job.refresh_from_db()
