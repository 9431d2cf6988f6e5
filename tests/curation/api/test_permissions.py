"""The permission matrix: every API operation x anonymous / reviewer / admin / read-only and read-write tokens."""
from __future__ import annotations

import re

import pytest

from curation.models import Review
from limrank_app.models import ApiToken
from curation.services.datasets import dataset_version_build
from limrank_app.services import api_token_create, api_token_revoke
from tests import factories
from tests.curation.api.conftest import make_examples
from tests.curation.api.permission_table import EXTRA, SAFE, TABLE, allowed

pytestmark = pytest.mark.django_db

# (principal fixture key, role, token scope)
CALLERS = [
    ("anonymous", None, None),
    ("reviewer", "reviewer", None),
    ("admin", "admin", None),
    ("read_token", "admin", "read"),
    ("write_token", "admin", "write"),
    ("reviewer_read_token", "reviewer", "read"),
    ("reviewer_write_token", "reviewer", "write"),
]


@pytest.fixture
def world(api_reviewer):
    """One object of each curation resource, so detail URLs point at something real."""
    ds = factories.DatasetFactory(name="perm")
    examples = make_examples(3, dataset=ds, origin="rank1")
    review = Review.objects.create(example=examples[0], reviewer=api_reviewer, decision="approve")
    version = dataset_version_build(dataset=ds, filters={}, recipe={}, created_by=None, render_now=True)
    return {
        "/api/personas/": factories.PersonaFactory().pk,
        "/api/seed-queries/": factories.SeedQueryFactory().pk,
        "/api/examples/": examples[0].pk,
        "/api/reviews/": review.pk,
        "/api/generation-runs/": factories.GenerationRunFactory().pk,
        "/api/datasets/": ds.pk,
        "/api/dataset-versions/": version.pk,
    }


def _url(path: str, world: dict) -> str:
    if "{id}" not in path:
        return path
    prefix = path.split("{id}")[0]
    return path.replace("{id}", str(world.get(prefix, 999999)))


def _call(client, method: str, url: str):
    if method in SAFE:
        return client.generic(method, url)
    return client.generic(method, url, data="{}", content_type="application/json")


@pytest.mark.parametrize("method, path, policy", TABLE + EXTRA, ids=[f"{m} {p}" for m, p, _ in TABLE + EXTRA])
def test_permission_matrix(principals, world, method, path, policy):
    url = _url(path, world)
    wrong = []
    for key, role, scope in CALLERS:
        response = _call(principals[key].client, method, url)
        code = response.status_code
        if allowed(policy, method, role=role, scope=scope):
            # Past the permission check: the operation ran (2xx), or validated input / looked up the object.
            ok = code < 500 and code not in (401, 403)
        else:
            ok = code == (401 if role is None else 403)
        if not ok:
            wrong.append(f"{key}: {code}")
    assert not wrong, f"{method} {url} ({policy}): " + ", ".join(wrong)


def _schema_operations(client) -> set[tuple[str, str]]:
    schema = client.get("/api/schema/?format=json").json()
    return {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops if m in ("get", "post", "put", "patch", "delete")}


def test_every_schema_operation_has_a_row(principals):
    ops = _schema_operations(principals["admin"].client)
    rows = {(m, p) for m, p, _ in TABLE}
    assert not ops - rows, f"add these to tests/curation/api/permission_table.py: {sorted(ops - rows)}"
    assert not rows - ops, f"rows for operations that no longer exist: {sorted(rows - ops)}"


def test_revoked_and_unknown_tokens_are_refused(api_admin, client):
    token, key = api_token_create(user=api_admin, name="soon gone", scope=ApiToken.Scope.WRITE)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    assert client.get("/api/datasets/", **auth).status_code == 200
    api_token_revoke(token=token)
    r = client.get("/api/datasets/", **auth)
    assert r.status_code == 401 and r["WWW-Authenticate"] == "Bearer"
    assert client.get("/api/datasets/", HTTP_AUTHORIZATION="Bearer lrs_nope").status_code == 401
    assert client.get("/api/datasets/", HTTP_AUTHORIZATION="Bearer").status_code == 401


def test_token_of_a_user_who_lost_the_admin_role_loses_admin_rights(api_admin, client):
    from limrank_app.roles import REVIEWER, user_role_set

    _, key = api_token_create(user=api_admin, name="t", scope=ApiToken.Scope.WRITE)
    user_role_set(api_admin, REVIEWER)
    r = client.post("/api/datasets/", {"name": "x"}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert r.status_code == 403


def test_reviewer_sees_only_own_reviews(principals, world, api_reviewer):
    other = factories.reviewer(username="someone-else")
    theirs = Review.objects.create(example_id=world["/api/examples/"], reviewer=other, decision="reject")
    mine = principals["reviewer"].client.get("/api/reviews/").json()["results"]
    assert {r["reviewer"] for r in mine} == {api_reviewer.username}
    assert principals["reviewer"].client.get(f"/api/reviews/{theirs.pk}/").status_code == 404
    everyone = principals["admin"].client.get("/api/reviews/").json()["results"]
    assert {r["reviewer"] for r in everyone} == {api_reviewer.username, "someone-else"}


def test_table_policies_match_the_views(principals):
    """The table is not a copy of the code's intent by accident: spot-check that policies are distinct in effect."""
    assert allowed("admin", "GET", role="reviewer", scope=None) is False
    assert allowed("reviewer_read_admin_write", "POST", role="reviewer", scope="write") is False
    assert allowed("reviewer", "POST", role="reviewer", scope="write") is True
    assert allowed("reviewer", "POST", role="admin", scope="read") is False
    assert all(re.match(r"^/api/[a-z\-/{}]+/$", p) for _, p, _ in TABLE)
