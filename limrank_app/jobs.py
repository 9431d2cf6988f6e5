"""Job state on rows: every background job (generation run, training job, eval run) is a row
that a task claims with a conditional update, so a redelivered task never does work twice,
and a job whose worker died (stale heartbeat) can be claimed again and resumed.

Jobs always finish: the workers' sweeper (`job_sweep`, run on each worker's own timer in worker_signals.py) re-queues
every running job whose lease ran out and re-sends every queued job whose task never reached the broker (a launch
during a broker outage) or was lost; Resume (`job_resume`) does the same for one job on demand.
On a queued row `heartbeat_at` records when its task was last handed to the broker (null: never)."""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string
from kombu.exceptions import OperationalError


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
log = logging.getLogger(__name__)

class JobState(models.Model):
    """Abstract: the state every job row carries.

    A concrete job names the Celery task that executes it in `execute_task` (its import path, which is also its Celery
    name): enqueueing, Resume and the sweeper find the task there, without the core importing the apps above it."""

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

    @property
    def is_resumable(self) -> bool:
        """Failed or cancelled; queued (its task may never have reached the broker); or running on a lost worker."""
        if self.status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED):
            return True
        return self.status == JobStatus.RUNNING and _lease_expired(self.heartbeat_at)


def _lease_expired(heartbeat_at) -> bool:
    return heartbeat_at is None or heartbeat_at < timezone.now() - timedelta(seconds=settings.LIMRANK_JOB_LEASE_SECONDS)


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


@contextlib.contextmanager
def job_keepalive(model: type[JobState], *, pk):
    """While a task runs its job, a thread in the same process renews the job's heartbeat every
    LIMRANK_WORKER_HEARTBEAT_SECONDS, so the lease measures whether the worker is alive, not whether the job reported
    progress lately (loading a large model can take longer than the lease). A killed worker stops renewing; the
    sweeper then re-queues the job. Only the row this process claimed, and only while it runs, is renewed."""
    stop = threading.Event()
    me = worker_identity()

    def renew():
        try:
            while not stop.wait(settings.LIMRANK_WORKER_HEARTBEAT_SECONDS):
                try:
                    model.objects.filter(pk=pk, status=JobStatus.RUNNING, claimed_by=me).update(heartbeat_at=timezone.now())
                except Exception:  # the database may be briefly away; the next renewal tries again
                    log.exception("job heartbeat failed")
        finally:
            connection.close()

    thread = threading.Thread(target=renew, name=f"job-keepalive-{pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


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


def job_progress_detached(job: JobState, *, done: int, total: int) -> None:
    """job_progress from inside a long transaction (a version build, a bulk decision: all or nothing), written on a
    connection of its own so the progress page sees it before the transaction commits. SQLite has one writer at a
    time: there the figures are only kept on the object (the page shows them when the job finishes)."""
    job.progress_done, job.progress_total = done, total
    if connection.vendor != "postgresql":
        return

    def write():
        try:
            type(job).objects.filter(pk=job.pk).update(progress_done=done, progress_total=total,
                                                       heartbeat_at=timezone.now())
        except Exception:  # progress is informative: never fail the job for it
            log.exception("job progress failed")
        finally:
            connection.close()

    thread = threading.Thread(target=write, name=f"job-progress-{job.pk}", daemon=True)
    thread.start()
    thread.join(timeout=30)


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


def job_enqueue(model: type[JobState], *, pk) -> None:
    """Hand a queued job's task to the broker and note when. Raises kombu's OperationalError when the broker is
    unreachable: the row stays queued with no send time, and the sweeper (or Resume) sends it later."""
    import_string(model.execute_task).delay(pk)
    model.objects.filter(pk=pk, status=JobStatus.QUEUED).update(heartbeat_at=timezone.now())


def job_enqueue_on_commit(model: type[JobState], *, pk) -> None:
    transaction.on_commit(lambda: job_enqueue(model, pk=pk))


def job_resume(job: JobState, *, enqueue: bool = True) -> bool:
    """Resume or retry one job: a failed, cancelled or queued one, or a running one whose worker is gone (lease
    expired). It goes back to queued with fresh attempts and its task is sent after commit. False if it cannot
    (succeeded, or running on a live worker). The job continues from what it wrote (each job's service decides how)."""
    model = type(job)
    cutoff = timezone.now() - timedelta(seconds=settings.LIMRANK_JOB_LEASE_SECONDS)
    resumable = Q(status__in=[JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED]) | (
        Q(status=JobStatus.RUNNING) & (Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True)))
    updated = model.objects.filter(Q(pk=job.pk) & resumable).update(
        status=JobStatus.QUEUED, attempts=0, cancel_requested=False, error="", finished_at=None, heartbeat_at=None,
        claimed_by="",
    )
    job.refresh_from_db()
    if updated and enqueue:
        job_enqueue_on_commit(model, pk=job.pk)
    return bool(updated)


def job_sweep() -> int:
    """One pass of the sweeper over every kind of job; returns how many tasks it sent.
    1. A running job whose lease ran out (its worker died) goes back to queued, or to failed once its attempts are
       used up, or to cancelled if a cancel was asked, so it never hangs as 'running'.
    2. A queued job whose task was never sent (broker down at launch, or a job step 1 re-queued) is sent now; one
       sent longer than LIMRANK_JOB_RESEND_SECONDS ago is sent again, in case the broker lost it (a duplicate is
       harmless: the first claim wins, the other task does nothing).
    Each row is taken with a conditional update, so several workers sweeping at once send a job once."""
    now = timezone.now()
    lease_cutoff = now - timedelta(seconds=settings.LIMRANK_JOB_LEASE_SECONDS)
    resend_cutoff = now - timedelta(seconds=settings.LIMRANK_JOB_RESEND_SECONDS)
    sent = 0
    for label, task_name in recoverable_jobs().items():
        model = apps.get_model(label)
        stale = Q(status=JobStatus.RUNNING) & (Q(heartbeat_at__lt=lease_cutoff) | Q(heartbeat_at__isnull=True))
        # A cancel asked of a job whose worker then died: nobody is left to honour it, so it is done here.
        model.objects.filter(stale & Q(cancel_requested=True)).update(status=JobStatus.CANCELLED, finished_at=now)
        model.objects.filter(stale & Q(attempts__gte=F("max_attempts"))).update(
            status=JobStatus.FAILED, error="attempts exhausted (worker lost)", finished_at=now)
        requeued = model.objects.filter(stale & Q(attempts__lt=F("max_attempts"))).update(
            status=JobStatus.QUEUED, heartbeat_at=None, claimed_by="")
        if requeued:
            log.warning("sweeper: %d %s job(s) lost their worker; re-queued", requeued, label)
        unsent = Q(status=JobStatus.QUEUED, cancel_requested=False) & (
            Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=resend_cutoff))
        for pk, last_sent in model.objects.filter(unsent).values_list("pk", "heartbeat_at"):
            if not model.objects.filter(pk=pk, status=JobStatus.QUEUED, heartbeat_at=last_sent).update(heartbeat_at=now):
                continue  # another worker's sweeper took it, or it started
            try:
                import_string(task_name).delay(pk)
            except OperationalError:
                model.objects.filter(pk=pk, status=JobStatus.QUEUED, heartbeat_at=now).update(heartbeat_at=last_sent)
                log.warning("sweeper: broker unreachable; %s %s stays queued", label, pk)
                return sent
            sent += 1
    if sent:
        log.warning("sweeper: sent %d queued job(s)", sent)
    return sent
