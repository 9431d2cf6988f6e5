from django.contrib import admin

from .models import WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("hostname", "queues", "started_at", "last_seen", "stopped")
    list_filter = ("stopped",)
    search_fields = ("hostname",)


# Users and their roles: admins manage them here (they hold the auth permissions, limrank_app/roles.py). A role is a
# group; the admin role also needs is_staff to open this site, kept in step with the groups on every save.
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.admin import UserAdmin  # noqa: E402

from .roles import ADMIN  # noqa: E402

User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class StudioUserAdmin(UserAdmin):
    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        user = form.instance
        is_staff = user.is_superuser or user.groups.filter(name=ADMIN).exists()
        if user.is_staff != is_staff:
            user.is_staff = is_staff
            user.save(update_fields=["is_staff"])
