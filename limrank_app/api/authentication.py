"""`Authorization: Bearer lrs_...` (or `Token lrs_...`) authenticates as the token's user."""
from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication, exceptions


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower().decode() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        from curation.models import ApiToken
        from curation.services.tokens import token_hash

        key = header[1].decode("utf-8", "replace")
        token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(key)).first()
        if token is None or token.revoked_at is not None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        # Touch last_used_at at most once a minute: no write on every request.
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request):
        return "Bearer"


try:
    from drf_spectacular.extensions import OpenApiAuthenticationExtension

    class ApiTokenScheme(OpenApiAuthenticationExtension):
        """Documents the token in the schema, so Swagger UI's Authorize button takes it."""

        target_class = "limrank_app.api.authentication.ApiTokenAuthentication"
        name = "ApiToken"

        def get_security_definition(self, auto_schema):
            return {
                "type": "http",
                "scheme": "bearer",
                "description": "A personal API token (create one at /account/tokens/): `Authorization: Bearer lrs_...`. "
                "Read-only tokens may only use GET/HEAD/OPTIONS.",
            }
except ImportError:  # drf-spectacular is a runtime dependency; the guard only keeps this module importable alone
    pass
