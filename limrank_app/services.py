"""Writes for the studio's own rows: worker heartbeats (job recovery: limrank_app.jobs.job_sweep)."""
from __future__ import annotations

from django.utils import timezone

from .models import WorkerHeartbeat


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
