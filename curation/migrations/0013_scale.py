"""Scale (issue 21): full-text search on stored tsvectors, and datasheets stored with their version.

On PostgreSQL the query's text and the passage's title and text get a generated, stored `search_vector` (tsvector,
'english') with a GIN index; curation.selectors.search queries them. The columns are not model fields (Django's
GeneratedField would need the same expression on SQLite, which has no to_tsvector): elsewhere the search is a bounded
substring scan. DatasetVersion.datasheet holds the figures computed when the version is built."""
from django.db import migrations, models

SEARCH_COLUMNS = """
ALTER TABLE curation_generatedquery ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('english'::regconfig, coalesce(text, ''))) STORED;
CREATE INDEX generatedquery_search_gin ON curation_generatedquery USING gin (search_vector);
ALTER TABLE curation_passage ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('english'::regconfig, coalesce(title, '') || ' ' || coalesce(text, ''))) STORED;
CREATE INDEX passage_search_gin ON curation_passage USING gin (search_vector);
"""

DROP_SEARCH_COLUMNS = """
ALTER TABLE curation_generatedquery DROP COLUMN IF EXISTS search_vector;
ALTER TABLE curation_passage DROP COLUMN IF EXISTS search_vector;
"""


def add_search_columns(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SEARCH_COLUMNS)


def drop_search_columns(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SEARCH_COLUMNS)


class Migration(migrations.Migration):

    dependencies = [
        ('curation', '0012_review_queue_in_the_orm'),
    ]

    operations = [
        migrations.RunPython(add_search_columns, drop_search_columns, elidable=False),
        migrations.AddField(
            model_name='datasetversion',
            name='datasheet',
            field=models.JSONField(blank=True, default=dict, help_text="the datasheet's figures, computed at build"),
        ),
    ]
