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
