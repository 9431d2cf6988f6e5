"""The token page: a user creates tokens (the key shown once) and revokes their own, nobody else's."""
from __future__ import annotations

import os
import re

import pytest

from limrank_app.models import ApiToken
from limrank_app.services import api_token_create
from tests import factories

pytestmark = pytest.mark.django_db


def test_create_shows_key_once_and_it_works(client):
    user = factories.reviewer(username="tok")
    client.force_login(user)
    r = client.post("/account/tokens/", {"name": "laptop", "scope": "write"})
    assert r.status_code == 200 and r["Cache-Control"] == "no-store"
    key = re.search(r'value="(lrs_[^"]+)"', r.content.decode()).group(1)
    token = ApiToken.objects.get(user=user)
    assert token.scope == "write" and token.key_hash != key and key.startswith(token.prefix)
    again = client.get("/account/tokens/").content.decode()
    assert key not in again and "laptop" in again and token.prefix in again
    client.logout()
    assert client.get("/api/reviews/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200


def test_bad_form_and_roles(client):
    client.force_login(factories.reviewer(username="x"))
    assert client.post("/account/tokens/", {"name": "", "scope": "read"}).status_code == 400
    assert client.post("/account/tokens/", {"name": "n", "scope": "root"}).status_code == 400
    assert not ApiToken.objects.exists()
    client.force_login(factories.UserFactory(username="norole"))
    assert client.get("/account/tokens/").status_code == 403
    client.logout()
    assert client.get("/account/tokens/").status_code == 302


def test_revoke_own_not_others(client):
    me, other = factories.reviewer(username="me"), factories.reviewer(username="other")
    mine, my_key = api_token_create(user=me, name="mine")
    theirs, _ = api_token_create(user=other, name="theirs")
    client.force_login(me)
    assert client.get(f"/account/tokens/{mine.pk}/revoke/").status_code == 405
    assert client.post(f"/account/tokens/{theirs.pk}/revoke/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert client.post(f"/account/tokens/{mine.pk}/revoke/").status_code == 302
    mine.refresh_from_db()
    assert mine.revoked_at is not None
    assert client.get("/api/datasets/", HTTP_AUTHORIZATION=f"Bearer {my_key}").status_code == 401


@pytest.mark.browser
def test_token_page_in_a_browser(live_server, tmp_path):
    """A reviewer logs in, creates a read-only token, copies it from the page, revokes it."""
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import expect, sync_playwright

    factories.reviewer(username="browser-rev")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()
            page.goto(f"{live_server.url}/accounts/login/")
            page.get_by_label("Username").fill("browser-rev")
            page.get_by_label("Password").fill("pw-12345678")
            page.get_by_role("button", name=re.compile("log in", re.I)).click()
            page.get_by_role("link", name="API tokens").click()
            page.get_by_label("Token name").fill("notebook")
            page.get_by_label("Read only").check()
            page.get_by_role("button", name="Create token").click()
            key = page.get_by_label("Your new token").input_value()
            assert key.startswith("lrs_")
            os.makedirs("test-artifacts", exist_ok=True)
            page.screenshot(path="test-artifacts/api-tokens.png", full_page=True)
            page.get_by_role("button", name="Revoke notebook").click()
            expect(page.get_by_text("revoked", exact=False).first).to_be_visible()
            assert page.get_by_label("Your new token").count() == 0
        finally:
            browser.close()
    token = ApiToken.objects.get(name="notebook")
    assert token.scope == "read" and token.revoked_at is not None
