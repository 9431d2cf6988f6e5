"""Principals for the permission matrix and fast builders of examples and versions."""
from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from curation.hashing import example_content_hash, text_hash
from curation.models import Example, GeneratedQuery, Passage
from limrank_app.models import ApiToken
from limrank_app.services import api_token_create
from tests import factories

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def export_dir(settings, tmp_path):
    """Every API test renders export files into its own storage (tests change the members of built versions, and a
    file rendered for one test must never answer another's)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media" / "exports"


os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@dataclass
class Principal:
    name: str
    client: APIClient
    user: object = None


@pytest.fixture
def api_admin(db):
    return factories.admin(username="api-admin")


@pytest.fixture
def api_reviewer(db):
    return factories.reviewer(username="api-reviewer")


def _token_client(user, scope) -> APIClient:
    _, key = api_token_create(user=user, name=f"{scope} token", scope=scope)
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return c


@pytest.fixture
def principals(api_admin, api_reviewer) -> dict[str, Principal]:
    """Every kind of caller the permission matrix covers."""
    anon = APIClient()
    reviewer = APIClient()
    reviewer.force_login(api_reviewer)
    admin = APIClient()
    admin.force_login(api_admin)
    return {
        "anonymous": Principal("anonymous", anon),
        "reviewer": Principal("reviewer", reviewer, api_reviewer),
        "admin": Principal("admin", admin, api_admin),
        "read_token": Principal("read_token", _token_client(api_admin, ApiToken.Scope.READ), api_admin),
        "write_token": Principal("write_token", _token_client(api_admin, ApiToken.Scope.WRITE), api_admin),
        "reviewer_read_token": Principal("reviewer_read_token", _token_client(api_reviewer, ApiToken.Scope.READ), api_reviewer),
        "reviewer_write_token": Principal("reviewer_write_token", _token_client(api_reviewer, ApiToken.Scope.WRITE), api_reviewer),
    }


@pytest.fixture
def admin_api(principals) -> APIClient:
    return principals["write_token"].client


def make_examples(n: int, *, dataset=None, origin=Example.Origin.SYNTHETIC, status=Example.Status.APPROVED, tag: str = "",
                  variant=GeneratedQuery.Variant.DAILY_LIFE, domain="health", prompt_versions=None, label_every=2) -> list[Example]:
    """n distinct examples with their own query and passage, in bulk (fast enough for thousands)."""
    tag = tag or f"{origin}-{status}-{dataset.pk if dataset else 0}"
    queries = GeneratedQuery.objects.bulk_create([
        GeneratedQuery(text=f"query {tag} {i} — é", variant=variant, domain=domain, text_hash=text_hash(f"query {tag} {i}"),
                       instruction="in plain words" if i % 5 == 0 else "")
        for i in range(n)
    ])
    passages = Passage.objects.bulk_create([
        Passage(title=f"Title {i}" if i % 3 else "", text=f"passage {tag} {i}: \"quoted\" \\ back\nslash " + "x" * (i % 7),
                kind=Passage.Kind.POSITIVE, text_hash=text_hash(f"passage {tag} {i}"))
        for i in range(n)
    ])
    examples = []
    for i, (q, p) in enumerate(zip(queries, passages)):
        label = i % label_every == 0
        examples.append(Example(
            dataset=dataset, query=q, passage=p, intended_label=label, reasoning_trace=f"reasoning {i}: the passage {'does' if label else 'does not'} answer",
            reasoner_judgment=label, origin=origin, status=status, prompt_versions=prompt_versions or {"reasoner": 1, "rewrite": 2},
            reasoner_model="deepseek-reasoner", content_hash=example_content_hash(query=q.text, passage=p.text, label=label),
        ))
    return Example.objects.bulk_create(examples)


@pytest.fixture
def version(db):
    """A frozen version of 32 members (23 rank1, 9 synthetic with their own prompt_versions) for the export tests."""
    from curation.services.datasets import dataset_version_build

    ds = factories.DatasetFactory(name="export me")
    make_examples(23, dataset=ds, origin="rank1", tag="r")
    make_examples(9, dataset=ds, origin="synthetic", tag="s", prompt_versions={"reasoner": 3})
    return dataset_version_build(dataset=ds, filters={}, recipe={"seed": 5}, created_by=None, render_now=True)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # factories set real passwords; PBKDF2 at full strength costs ~0.3 s per user on a busy 2-core box.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
