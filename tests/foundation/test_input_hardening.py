"""The input-hardening layer: whatever a client sends gets a 4xx naming what is wrong, never a 500, and nothing
is stored cut. The JSON parser (limrank_app/api/parsers.py), the request guard (limrank_app/middleware.py), the
text rule (limrank_app/text.py) used by hashing and imports, and plain-text plot labels."""
from __future__ import annotations

import io
import json

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from curation.hashing import text_hash
from curation.models import Dataset, Example, Persona, Review
from limrank_app.middleware import BoundedUploadHandler, UploadTooLarge
from limrank_app.text import UnsafeTextError
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(admin_user):
    c = APIClient()
    c.force_login(admin_user)
    return c


def _post_json(client, url, body: str):
    return client.generic("POST", url, body, content_type="application/json")


# ---------------------------------------------------------------- JSON bodies


@pytest.mark.parametrize("body, says", [
    ("[" * 5000 + "]" * 5000, "nested deeper"),                 # the decoder's recursion: was a 500
    ('{"name": "x", "description": ' + "[" * 40 + "]" * 40 + "}", "nested deeper"),  # under Python's limit, over ours
    ('{"name": 1' + "0" * 5000 + "}", "64-bit"),                # past Python's 4,300-digit int limit
    ('{"name": "x", "reviews_required": 99999999999999999999}', "64-bit"),
    ('{"name": "x", "reviews_required": 1e999}', "too large"),
    ('{"name": "x", "reviews_required": NaN}', "NaN"),
    ('{"name": "x", "extra": {"k": "a\\u0000b"}}', "$.extra.k: contains a NUL"),
    ('{"name": "x", "extra": ["\\ud800"]}', "$.extra[0]: contains a lone surrogate (U+D800)"),
    ('{"name": "x", "extra": {"\\udfff": 1}}', "a key contains a lone surrogate"),
])
def test_json_bodies_refused_with_400(api, body, says):
    r = _post_json(api, "/api/datasets/", body)
    assert r.status_code == 400, r.content
    assert says in r.json()["detail"]
    assert not Dataset.objects.exists()


def test_json_body_within_bounds_still_accepted(api):
    r = _post_json(api, "/api/datasets/", json.dumps({"name": "fine", "reviews_required": 2, "description": "café ✓"}))
    assert r.status_code == 201, r.content
    assert Dataset.objects.get().description == "café ✓"


def test_json_body_past_the_memory_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    r = _post_json(api, "/api/datasets/", json.dumps({"name": "x", "description": "y" * 5000}))
    assert r.status_code == 413


def test_nul_in_a_review_reason_is_refused_not_cut(db):
    reviewer = factories.reviewer(username="nul")
    ds, (example,) = factories.review_dataset(n=1)
    c = APIClient()
    c.force_login(reviewer)
    body = json.dumps({"example": example.pk, "decision": "reject", "reason": "bad\u0000 tail"})
    r = _post_json(c, "/api/review/submit/", body)
    assert r.status_code == 400, r.content
    assert "NUL" in r.json()["detail"]
    assert not Review.objects.exists()


# ---------------------------------------------------------------- ids and filter values


@pytest.mark.parametrize("url", [
    "/examples/?dataset=abc",
    "/review/browse/?dataset=abc",
    "/api/examples/?dataset=abc",
    "/api/examples/?dataset=9223372036854775808",
    "/api/examples/?generation_run=99999999999999999999",
    "/api/reviews/?example=9223372036854775808",
    "/api/generation-runs/?dataset=-1",
    "/review/browse/?q=a%00b",
    "/examples/?status=a%00",
    "/api/personas/?domain=x%00",
])
def test_bad_ids_and_filter_values_are_400(admin_client, url):
    r = admin_client.get(url)
    assert r.status_code == 400, (url, r.status_code)


def test_good_ids_still_filter(admin_client):
    ds = factories.DatasetFactory()
    assert admin_client.get(f"/examples/?dataset={ds.pk}").status_code == 200
    assert admin_client.get("/examples/?dataset=").status_code == 200  # an empty filter means any
    assert admin_client.get(f"/api/examples/?dataset={ds.pk}").status_code == 200


def test_form_post_with_nul_is_400(admin_client):
    r = admin_client.post("/review/browse/", {"q": "a\x00b", "dataset": "1"})
    assert r.status_code == 400
    r = admin_client.post("/review/browse/", "q=a%00b", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 400


def test_bulk_form_with_a_bad_id_is_400_and_decides_nothing(admin_client):
    ds, examples = factories.review_dataset(n=2)
    for bad in ("abc", str(2**63)):
        r = admin_client.post("/review/browse/", {"dataset": bad, "bulk_decision": "approve"})
        assert r.status_code == 400 and b"'dataset'" in r.content
    assert all(e.status == "pending_review" for e in Example.objects.filter(pk__in=[e.pk for e in examples]))


# ---------------------------------------------------------------- text: hashing and imports


def test_text_hash_refuses_lone_surrogates_and_nul():
    with pytest.raises(UnsafeTextError, match="U\\+D800"):
        text_hash("ok", "\ud800")
    with pytest.raises(UnsafeTextError, match="NUL"):
        text_hash("a\x00b")
    assert text_hash("é") == text_hash("e\u0301")  # NFC still applies


@pytest.mark.parametrize("line", ['{"persona": "a nurse \\ud800"}', '{"persona": "a nurse", "domain": "x\\u0000"}'])
def test_import_with_unsafe_text_is_400_naming_line_and_field(api, line):
    f = io.BytesIO(('{"persona": "fine"}\n' + line + "\n").encode())
    f.name = "p.jsonl"
    r = api.post("/api/personas/import/", {"file": f}, format="multipart")
    assert r.status_code == 400, r.content
    body = r.json()
    assert body["line"] == 2 and body["field"] in ("persona", "domain")
    assert not Persona.objects.exists()  # all or nothing


# ---------------------------------------------------------------- uploads


@override_settings(LIMRANK_MAX_UPLOAD_BYTES=10_000)
def test_upload_larger_than_the_limit_is_413_before_reading(api, monkeypatch):
    from curation.services import imports

    monkeypatch.setattr(imports, "personas_import", lambda **kw: pytest.fail("the upload reached the import"))
    f = io.BytesIO(b'{"persona": "x"}\n' * 2000)
    f.name = "big.jsonl"
    r = api.post("/api/personas/import/", {"file": f}, format="multipart")
    assert r.status_code == 413
    # A client announcing a 1 GiB body is answered from the header alone (the tiny body is never read).
    r = api.generic("POST", "/api/personas/import/", b"x", content_type="multipart/form-data; boundary=b",
                    CONTENT_LENGTH=str(1 << 30))
    assert r.status_code == 413


@override_settings(LIMRANK_MAX_UPLOAD_BYTES=10_000)
def test_upload_is_stopped_while_streaming():
    # A chunked body has no Content-Length: the first upload handler counts bytes as they arrive.
    handler = BoundedUploadHandler()
    handler.receive_data_chunk(b"x" * 6000, 0)
    with pytest.raises(UploadTooLarge):
        handler.receive_data_chunk(b"x" * 6000, 6000)


def test_upload_settings_stream_files_to_disk(settings):
    assert settings.FILE_UPLOAD_HANDLERS[0] == "limrank_app.middleware.BoundedUploadHandler"
    assert settings.FILE_UPLOAD_HANDLERS[-1].endswith("TemporaryFileUploadHandler")
    assert settings.FILE_UPLOAD_MAX_MEMORY_SIZE <= 2 * 1024 * 1024 < settings.LIMRANK_MAX_UPLOAD_BYTES


# ---------------------------------------------------------------- plots


def test_quality_page_with_mathtext_in_a_domain_answers_200(admin_client):
    q = factories.GeneratedQueryFactory(domain="$x^$")
    factories.ExampleFactory(query=q)
    factories.GeneratedQueryFactory(domain="a_b $\\frac{1}{$")
    r = admin_client.get("/review/quality/")
    assert r.status_code == 200
    assert "$x^$" in r.content.decode()
