"""Writes for the core's own rows: worker heartbeats (job recovery: limrank_app.jobs.job_sweep) and API tokens."""
from __future__ import annotations

import hashlib
import secrets

from django.utils import timezone

from .models import ApiToken, WorkerHeartbeat


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
