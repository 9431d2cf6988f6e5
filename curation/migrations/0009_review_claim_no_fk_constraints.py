"""A review claim's foreign keys without constraints in the database (see ReviewClaim): each claim's commit ran two
constraint checks, one of them a row lock on the reviewer's user written to the WAL; ~6% of PostgreSQL's CPU per
claim + submit (one connection, alternating blocks). Django still cascades deletes."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('curation', '0008_review_fewer_statements'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='reviewclaim',
            name='example',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='claims', to='curation.example'),
        ),
        migrations.AlterField(
            model_name='reviewclaim',
            name='reviewer',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='review_claims', to=settings.AUTH_USER_MODEL),
        ),
    ]
