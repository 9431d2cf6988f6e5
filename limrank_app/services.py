"""Writes for the core's own rows: worker heartbeats, orphaned-job recovery and API tokens."""
from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from celery import current_app
from django.apps import apps
from django.conf import settings
from django.utils import timezone

from .jobs import JobStatus
from .models import ApiToken, WorkerHeartbeat

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


# ---------------------------------------------------------------- API tokens
# Shown once at creation, stored as a SHA-256 hash, revocable.

TOKEN_PREFIX = "lrs_"


def token_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def api_token_create(*, user, name: str, scope: str = ApiToken.Scope.READ) -> tuple[ApiToken, str]:
    """Returns the row and the plain key (the only time it exists outside the client)."""
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user=user, name=name, scope=scope, prefix=key[:12], key_hash=token_hash(key))
    token.full_clean()
    token.save()
    return token, key


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_touch(*, token_id: int, now) -> None:
    """Record a use of the token (callers do it at most once a minute: no write on every request)."""
    ApiToken.objects.filter(pk=token_id).update(last_used_at=now)
