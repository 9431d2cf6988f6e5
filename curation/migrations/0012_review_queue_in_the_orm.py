"""The review queue lives in the ORM (curation.services.review): drop the PostgreSQL functions that earlier
migrations installed for it, and give claims back their foreign-key constraints and the queue's clock.

Every function of the project is named `limrank_*`; they are found in pg_proc rather than listed, because their
signatures changed across migrations 0003-0008. Going back does not reinstall them: no code of this tree calls them."""
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

DROP_PROJECT_FUNCTIONS = r"""
DO $$
DECLARE fn regprocedure;
BEGIN
    FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = current_schema() AND left(p.proname, 8) = 'limrank_'
    LOOP
        EXECUTE 'DROP FUNCTION ' || fn;
    END LOOP;
END
$$;
"""


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_PROJECT_FUNCTIONS)


class Migration(migrations.Migration):

    dependencies = [
        ('curation', '0011_apitoken_to_core'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(drop_functions, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name='reviewclaim',
            name='claimed_at',
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AlterField(
            model_name='reviewclaim',
            name='example',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='claims', to='curation.example'),
        ),
        migrations.AlterField(
            model_name='reviewclaim',
            name='reviewer',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='review_claims', to=settings.AUTH_USER_MODEL),
        ),
    ]
