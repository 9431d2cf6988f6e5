"""System checks of the studio's own settings. `manage.py check` (and every command that runs checks) fails on an
error; the web entry points (wsgi.py, asgi.py) refuse to start on one as well (`startup_refuse_insecure`)."""
from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

E001 = "limrank.E001"


@checks.register(checks.Tags.security)
def secret_key_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if settings.DEBUG or settings.SECRET_KEY != settings.DEV_SECRET_KEY:
        return []
    return [checks.Error(
        "SECRET_KEY is not set and DEBUG is false: the studio would run on a public development key, so anyone could "
        "forge sessions.",
        hint="Set SECRET_KEY in the environment (e.g. python -c 'import secrets; print(secrets.token_urlsafe(64))'), "
             "or DEBUG=true on a development machine.",
        id=E001,
    )]


def startup_refuse_insecure() -> None:
    """Raise before serving a single request when a setting makes the studio unsafe to run."""
    errors = secret_key_check()
    if errors:
        raise ImproperlyConfigured(f"{errors[0].id}: {errors[0].msg} {errors[0].hint}")
