"""Fuzz every write endpoint of the REST API: no body, however malformed or hostile, gets a 5xx.
Two kinds of bodies per endpoint, FUZZ_EXAMPLES in all (derandomized, so CI sees the same ones every run):
- schemathesis's cases from the project's OpenAPI schema (mostly well-formed: they reach the validation and the
  services behind it, multipart uploads included);
- hostile JSON from plain Hypothesis: the endpoint's own field names with values of any JSON type, text with NUL and
  lone surrogates, integers past 64 bits and past Python's digit limit, deep nesting, floats that overflow, ids
  anywhere. Sent raw (not re-encoded), as an attacker would."""
from __future__ import annotations

import json
import os
import time

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from curation.models import Review
from limrank_app.models import ApiToken
from curation.services.datasets import dataset_version_build
from limrank_app.services import api_token_create
from evaluation.models import EvalRun
from tests import factories
from tests.curation.api.conftest import make_examples

FUZZ_EXAMPLES = int(os.environ.get("LIMRANK_FUZZ_EXAMPLES", "500"))
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_key(db):
    return api_token_create(user=factories.admin(username="fuzzer"), name="fuzz", scope=ApiToken.Scope.WRITE)[1]


@pytest.fixture
def api_schema(db, admin_key):
    ds = factories.DatasetFactory(name="fuzz", reviews_required=2)
    examples = make_examples(6, dataset=ds, origin="rank1")
    make_examples(4, dataset=ds, origin="synthetic", status="pending_review", tag="pending")
    Review.objects.create(example=examples[0], reviewer=factories.reviewer(username="fuzz-rev"), decision="approve")
    dataset_version_build(dataset=ds, filters={}, recipe={"seed": 1}, created_by=None)
    factories.GenerationRunFactory(status="failed")
    factories.TrainingJobFactory(status="failed")
    EvalRun.objects.create(benchmark=factories.BenchmarkFactory(), model=factories.RerankerModelFactory(), status="failed")
    # In-process WSGI without closing the test's connection between requests (as Django's test client does).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", app, headers={"Authorization": f"Bearer {admin_key}"}), app
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


_hostile_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfff", "$x^$", "1" * 30, "-1", "9223372036854775808", "abc", "", " "]),
)
_hostile_scalar = st.one_of(
    st.none(), st.booleans(), _hostile_text,
    st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([2**63, -(2**63) - 1, 0, -1, 1, 2**31]),
    st.floats(allow_nan=False, allow_infinity=False),
)
_hostile_json = st.recursive(_hostile_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_hostile_text, inner, max_size=4)), max_leaves=12)
_raw_oddities = st.sampled_from([
    "[" * 3000 + "]" * 3000, '{"a": ' * 100 + "1" + "}" * 100, "1" + "0" * 5000, "1e999", "NaN", "-Infinity",
    '{"x": "\\ud800"}', '"\\u0000"', "{", "", "null", "[]", '{"a":1,"a":2}', "\ufeff{}",
])


def _hostile_body(fields: list[str]):
    named = st.fixed_dictionaries({}, optional={f: _hostile_json for f in fields})
    return st.one_of(
        named.map(lambda d: json.dumps(d)),
        _hostile_json.map(lambda v: json.dumps(v)),
        _raw_oddities,
    )


def _fields(operation) -> list[str]:
    body = (operation.definition.raw.get("requestBody") or {}).get("content", {})
    for media in body.values():
        schema = media.get("schema", {})
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = operation.schema.raw_schema["components"]["schemas"][name]
        return sorted(schema.get("properties", {}))
    return []


# Every write operation of the schema (test_every_write_endpoint_is_fuzzed keeps this list complete).
WRITE_ENDPOINTS = [
    "POST /api/audits/", "POST /api/audits/{id}/apply/",
    "POST /api/benchmarks/", "POST /api/benchmarks/{id}/runs/", "POST /api/bulk-decisions/",
    "POST /api/bulk-decisions/{id}/resume/", "POST /api/dataset-versions/", "POST /api/dataset-versions/{id}/resume/",
    "POST /api/datasets/", "PUT /api/datasets/{id}/",
    "PATCH /api/datasets/{id}/", "POST /api/eval-runs/", "POST /api/eval-runs/{id}/resume/", "POST /api/examples/import/",
    "POST /api/generation-runs/", "POST /api/generation-runs/{id}/resume/", "POST /api/personas/import/", "POST /api/reranker-models/",
    "POST /api/review/next/", "POST /api/review/skip/",
    "POST /api/review/submit/", "POST /api/review/undo/",
    "POST /api/seed-queries/import/", "POST /api/training-jobs/", "POST /api/training-jobs/{id}/cancel/",
    "POST /api/training-jobs/{id}/resume/",
]


def _write_operations(api_schema) -> dict:
    return {op.label: op for op in (r.ok() for r in api_schema.get_all_operations()) if op.method.upper() in WRITE_METHODS}


def test_every_write_endpoint_is_fuzzed(api_schema):
    listed = {p.values[0] if hasattr(p, "values") else p for p in WRITE_ENDPOINTS}
    assert set(_write_operations(api_schema[0])) == listed


@pytest.mark.parametrize("label", WRITE_ENDPOINTS)
def test_write_endpoint_never_answers_5xx(api_schema, admin_key, label):
    from werkzeug.test import Client

    api_schema, app = api_schema
    headers = {"Authorization": f"Bearer {admin_key}"}
    client = Client(app)  # raw WSGI, as schemathesis calls it (Django's test client would reconnect close_old_connections)
    operation = _write_operations(api_schema)[label]
    fields = _fields(operation)
    path_ids = st.sampled_from(["1", "2", "3", "0", "abc", "9223372036854775808", "99999999999999999999999"])
    sent = {"n": 0}

    @given(data=st.data())
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(data):
        sent["n"] += 1
        if data.draw(st.booleans(), label="hostile"):
            path = operation.path
            if "{id}" in path:
                path = path.replace("{id}", data.draw(path_ids, label="id"))
            body = data.draw(_hostile_body(fields), label="body")
            r = client.open(path, method=operation.method.upper(), data=body.encode("utf-8", "surrogatepass"),
                            content_type="application/json", headers=headers)
            assert r.status_code < 500, (label, body[:120], r.status_code, r.get_data()[:300])
        else:
            case = data.draw(operation.as_strategy(), label="case")
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

    start = time.monotonic()
    run()
    print(f"{label}: {sent['n']} bodies in {time.monotonic() - start:.1f} s")
    assert sent["n"] >= FUZZ_EXAMPLES
