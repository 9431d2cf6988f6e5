from django.apps import AppConfig
from django.db.models.signals import post_migrate


class LimrankAppConfig(AppConfig):
    name = "limrank_app"
    verbose_name = "Studio"

    def ready(self):
        from . import checks  # noqa: F401  (registers the studio's system checks)
        from . import worker_signals  # noqa: F401  (connects the worker's heartbeat and recovery receivers)
        from .roles import roles_ensure

        # After every migrate: the reviewer and admin groups exist with their permissions.
        post_migrate.connect(roles_ensure, dispatch_uid="limrank_roles_ensure")
