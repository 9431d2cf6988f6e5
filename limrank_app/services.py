"""Writes for the studio's own rows: worker heartbeats and orphaned-job recovery."""
from __future__ import annotations

import logging
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.utils import timezone

from .jobs import JobStatus
from .models import WorkerHeartbeat

log = logging.getLogger(__name__)


def worker_heartbeat_record(*, hostname: str, queues: str = "", started: bool = False) -> None:
    now = timezone.now()
    defaults = {"last_seen": now, "stopped": False}
    if queues:
        defaults["queues"] = queues
    if started:
        defaults["started_at"] = now
    WorkerHeartbeat.objects.update_or_create(hostname=hostname, defaults=defaults, create_defaults={**defaults, "started_at": now})


def worker_heartbeat_stop(*, hostname: str) -> None:
    WorkerHeartbeat.objects.filter(hostname=hostname).update(stopped=True)


def job_orphans_requeue(*, recoverable: dict[str, str]) -> int:
    """Re-enqueue running jobs whose worker stopped heartbeating; the task's claim decides who runs them."""
    from celery import current_app

    cutoff = timezone.now() - timedelta(seconds=settings.LIMRANK_JOB_LEASE_SECONDS)
    sent = 0
    for label, task_name in recoverable.items():
        try:
            model = apps.get_model(label)
        except LookupError:
            continue
        stale = model.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff)
        for pk in stale.values_list("pk", flat=True):
            current_app.send_task(task_name, args=[pk])
            sent += 1
    if sent:
        log.warning("re-enqueued %d orphaned jobs", sent)
    return sent
