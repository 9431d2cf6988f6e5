"""The database holds tables and indexes of the project, no code: a migrated PostgreSQL database has no function of
the project (the review queue's PL/pgSQL functions of migrations 0003-0010 are dropped by 0011)."""
import importlib

import pytest
from django.db import connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

PROJECT_FUNCTIONS = """
SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                  AND d.deptype = 'e')
ORDER BY 1
"""


def _functions() -> list[str]:
    with connection.cursor() as cur:
        cur.execute(PROJECT_FUNCTIONS)
        return [row[0] for row in cur.fetchall()]


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


def test_a_migrated_database_holds_no_function_of_the_project():
    assert _functions() == []


def test_migration_0012_drops_the_functions_earlier_migrations_installed():
    # The check above sees such functions: install the last version of them (migration 0008's), then drop them as
    # migration 0012 does.
    m0008 = importlib.import_module("curation.migrations.0008_review_fewer_statements")
    m0012 = importlib.import_module("curation.migrations.0012_review_queue_in_the_orm")
    with connection.cursor() as cur:
        cur.execute(m0008.CLAIM_NEXT)
        cur.execute(m0008.SUBMIT)
    assert sorted(f.split("(")[0] for f in _functions()) == ["limrank_review_claim_next", "limrank_review_submit"]
    with connection.schema_editor() as editor:
        m0012.drop_functions(None, editor)
    assert _functions() == []
