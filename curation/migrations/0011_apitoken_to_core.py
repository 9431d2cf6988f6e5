"""API tokens now belong to the core app (limrank_app 0002 took the model over its existing table): drop the model
from curation's state only, so the table and its rows stay."""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("curation", "0010_review_fewer_write_indexes"),
        ("limrank_app", "0002_apitoken_from_curation"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="ApiToken")],
            database_operations=[],
        ),
    ]
