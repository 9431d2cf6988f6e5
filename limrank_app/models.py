from django.conf import settings
from django.db import models


class WorkerHeartbeat(models.Model):
    """Each Celery worker writes a heartbeat here; /healthz reads it (works on every broker)."""

    hostname = models.CharField(max_length=255, unique=True)
    queues = models.CharField(max_length=255, blank=True)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    stopped = models.BooleanField(default=False)

    def __str__(self):
        return self.hostname


class ApiToken(models.Model):
    """A per-user API token; only its hash is stored. Scope: read-only or read-write."""

    class Scope(models.TextChoices):
        READ = "read", "Read only"
        WRITE = "write", "Read and write"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.READ)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The table keeps the name it had when the model lived in curation: moving it lost no data.
        db_table = "curation_apitoken"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"
