from django.contrib import admin

from . import models


@admin.register(models.TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "backbone", "base_model", "status", "progress_done", "progress_total", "attempts", "created_at")
    list_filter = ("status", "backbone", "preset")
    search_fields = ("name", "base_model")


@admin.register(models.ModelArtifact)
class ModelArtifactAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "base_model", "dataset_hash", "size_bytes", "created_at")
    list_filter = ("kind",)
    search_fields = ("name", "path", "base_model")
