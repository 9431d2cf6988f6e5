"""Moving ApiToken from curation to the core keeps the table and its rows (state-only migrations)."""
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("curation", "0010_review_fewer_write_indexes"), ("limrank_app", "0001_initial")]
AFTER = [("curation", "0011_apitoken_to_core"), ("limrank_app", "0002_apitoken_from_curation")]


@pytest.mark.django_db(transaction=True)
def test_tokens_survive_the_move_to_the_core():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    user = old.get_model("auth", "User").objects.create(username="tok-owner")
    old.get_model("curation", "ApiToken").objects.create(user=user, name="kept", prefix="lrs_abcdefgh",
                                                         key_hash="a" * 64, scope="write")
    # as on a database migrated before the move: the content type is curation's
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.filter(model="apitoken").delete()
    ContentType.objects.create(app_label="curation", model="apitoken")
    ContentType.objects.clear_cache()

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    from limrank_app.models import ApiToken
    from limrank_app.services import token_hash

    token = ApiToken.objects.get(name="kept")
    assert (token.user.username, token.scope, token.key_hash) == ("tok-owner", "write", "a" * 64)
    assert ApiToken._meta.db_table == "curation_apitoken"
    assert ContentType.objects.filter(app_label="limrank_app", model="apitoken").exists()
    assert not ContentType.objects.filter(app_label="curation", model="apitoken").exists()
    assert token_hash("x") != token.key_hash
