"""Login throttling (django-axes), the refusal to run on the public development SECRET_KEY, and user management in
the Django admin by the studio's admins."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from limrank_app.services import api_token_create
from limrank_app.roles import ADMIN, REVIEWER
from tests import factories

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------- login throttling


def _login(client, username, password):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR="203.0.113.7")


def test_right_password_after_too_many_wrong_ones_is_refused(client, settings):
    user = factories.reviewer(username="victim")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        r = _login(client, "victim", "wrong-password")
        assert r.status_code in (200, 429) and "_auth_user_id" not in client.session
    r = _login(client, "victim", "pw-12345678")
    assert r.status_code == 429
    assert "_auth_user_id" not in client.session
    # Another user from the same address is not locked out by the victim's failures.
    factories.reviewer(username="bystander")
    r = _login(client, "bystander", "pw-12345678")
    assert r.status_code == 302 and client.session["_auth_user_id"] != str(user.pk)


def test_a_few_wrong_passwords_do_not_lock_and_success_resets(client, settings):
    factories.reviewer(username="typo")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "typo", "wrong")
    assert _login(client, "typo", "pw-12345678").status_code == 302


def test_api_tokens_are_unaffected_by_a_lockout(client, settings):
    user = factories.admin(username="locked-admin")
    _, key = api_token_create(user=user, name="ci", scope="read")
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        _login(client, "locked-admin", "wrong")
    assert _login(client, "locked-admin", "pw-12345678").status_code == 429
    r = client.get("/api/datasets/", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert r.status_code == 200


# ---------------------------------------------------------------- SECRET_KEY


def _run(code: str, **env_overrides):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    env.update(DJANGO_SETTINGS_MODULE="limrank_app.settings", **env_overrides)
    return subprocess.run([sys.executable, *code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_fails_and_wsgi_refuses_without_secret_key_in_production():
    r = _run(["manage.py", "check"], DEBUG="false")
    assert r.returncode != 0 and "limrank.E001" in r.stderr
    r = _run(["-c", "import limrank_app.wsgi"], DEBUG="false")
    assert r.returncode != 0 and "ImproperlyConfigured: limrank.E001" in r.stderr
    r = _run(["-c", "import limrank_app.asgi"], DEBUG="false")
    assert r.returncode != 0 and "limrank.E001" in r.stderr


def test_check_passes_with_a_key_or_in_development():
    assert _run(["manage.py", "check"], DEBUG="false", SECRET_KEY="k" * 64).returncode == 0
    assert _run(["manage.py", "check"], DEBUG="true").returncode == 0


# ---------------------------------------------------------------- users and roles in the Django admin


def test_admin_opens_and_changes_a_user_and_assigns_a_role(client):
    admin = factories.admin(username="boss")
    target = factories.reviewer(username="rev")
    client.force_login(admin)
    assert client.get("/admin/auth/user/").status_code == 200
    assert client.get("/admin/auth/group/").status_code == 200
    page = client.get(f"/admin/auth/user/{target.pk}/change/")
    assert page.status_code == 200
    admin_group = Group.objects.get(name=ADMIN)
    r = client.post(f"/admin/auth/user/{target.pk}/change/", {
        "username": "rev", "first_name": "Rev", "last_name": "", "email": "rev@example.org",
        "is_active": "on", "groups": [admin_group.pk],
        "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
    })
    assert r.status_code == 302, r.content.decode()[-2000:]
    target.refresh_from_db()
    assert set(target.groups.values_list("name", flat=True)) == {ADMIN}
    assert target.is_staff and target.first_name == "Rev"  # the admin role opens the admin site


def test_reviewer_cannot_manage_users(client):
    client.force_login(factories.reviewer(username="nope"))
    assert client.get("/admin/auth/user/").status_code in (302, 403)
    assert Group.objects.filter(name=REVIEWER).exists()
