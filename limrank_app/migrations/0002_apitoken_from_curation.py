"""API tokens move from curation to the core: the model changes app, the table (curation_apitoken) and its rows stay.

State only: this migration adds the model to limrank_app's state over the existing table, and curation's
matching migration removes it from curation's state; neither touches the table. The content type (and with it
the admin permissions and log entries) follows the model."""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def content_type_follow(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="limrank_app", model="apitoken").exists():
        ContentType.objects.filter(app_label="curation", model="apitoken").update(app_label="limrank_app")


def content_type_back(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="limrank_app", model="apitoken").update(app_label="curation")


class Migration(migrations.Migration):

    dependencies = [
        ("limrank_app", "0001_initial"),
        ("curation", "0001_initial"),  # creates the table
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ApiToken",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=100)),
                        ("prefix", models.CharField(db_index=True, max_length=12)),
                        ("key_hash", models.CharField(max_length=64, unique=True)),
                        ("scope", models.CharField(choices=[("read", "Read only"), ("write", "Read and write")], default="read", max_length=8)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("last_used_at", models.DateTimeField(blank=True, null=True)),
                        ("revoked_at", models.DateTimeField(blank=True, null=True)),
                        ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="api_tokens", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={"db_table": "curation_apitoken"},
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_follow, content_type_back),
    ]
