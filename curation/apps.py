from django.apps import AppConfig


class CurationConfig(AppConfig):
    name = "curation"
    verbose_name = "Curation"

    def ready(self):
        from . import worker_signals  # noqa: F401  (workers keep the cached aggregates warm)
