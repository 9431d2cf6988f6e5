"""OpenAPI: schemathesis drives every operation of /api/schema/ in-process (WSGI) as an admin token:
no input makes the server fail. Swagger UI works offline (its assets are served by the studio)."""
from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error

from curation.models import Review
from limrank_app.models import ApiToken
from curation.services.datasets import dataset_version_build
from limrank_app.services import api_token_create
from tests import factories
from tests.curation.api.conftest import make_examples

MAX_EXAMPLES = 6  # per operation; ~50 operations keep this test near a minute


@pytest.fixture
def admin_key(db):
    user = factories.admin(username="fuzzer")
    return api_token_create(user=user, name="schemathesis", scope=ApiToken.Scope.WRITE)[1]


@pytest.fixture
def api_schema(db, admin_key):
    # Some data for the operations to find; detail ids 1..n exist for most resources.
    ds = factories.DatasetFactory(name="fuzz")
    examples = make_examples(6, dataset=ds, origin="rank1")
    Review.objects.create(example=examples[0], reviewer=factories.reviewer(username="fuzz-rev"), decision="approve")
    dataset_version_build(dataset=ds, filters={}, recipe={"seed": 1}, created_by=None, render_now=True)
    factories.PersonaFactory()
    factories.SeedQueryFactory()
    factories.GenerationRunFactory()
    # The WSGI app runs inside the test's transaction: it must not close the connection after each request
    # (Django's own test client does the same).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    # The WSGI handler itself: limrank_app.wsgi also refuses to start on the dev SECRET_KEY, which tests run with.
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()

    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", application, headers={"Authorization": f"Bearer {admin_key}"})
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def test_no_server_error(api_schema, admin_key):
    """Every operation, MAX_EXAMPLES generated cases each (hypothesis drives schemathesis's strategies directly:
    schemathesis's lazy pytest fixture loader does not run under pytest 9)."""
    from hypothesis import given

    headers = {"Authorization": f"Bearer {admin_key}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    tried = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
        )
        def run(case):
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        run()
        tried.append(operation.label)
    assert any("export" in label for label in tried)


@pytest.mark.django_db
def test_schema_and_swagger_ui_offline(admin_client):
    r = admin_client.get("/api/schema/?format=json")
    assert r.status_code == 200
    schema_doc = r.json()
    assert schema_doc["openapi"].startswith("3.") and "/api/dataset-versions/{id}/export/" in schema_doc["paths"]
    assert schema_doc["components"]["securitySchemes"]["ApiToken"] == {
        "type": "http", "scheme": "bearer",
        "description": schema_doc["components"]["securitySchemes"]["ApiToken"]["description"],
    }
    page = admin_client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    import re

    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert any("swagger-ui-bundle" in a for a in assets), assets
    for asset in assets:
        served = admin_client.get(asset)
        assert served.status_code == 200, asset
        b"".join(served.streaming_content) if served.streaming else served.content


@pytest.mark.django_db
def test_schema_needs_a_studio_user(client):
    assert client.get("/api/schema/").status_code == 401
