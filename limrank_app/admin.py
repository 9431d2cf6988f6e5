from django.contrib import admin

from .models import WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("hostname", "queues", "started_at", "last_seen", "stopped")
    list_filter = ("stopped",)
    search_fields = ("hostname",)
