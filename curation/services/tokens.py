"""Per-user API tokens: shown once at creation, stored as a SHA-256 hash, revocable."""
from __future__ import annotations

import hashlib
import secrets

from django.utils import timezone

from curation.models import ApiToken

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
