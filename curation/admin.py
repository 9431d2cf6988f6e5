from django.contrib import admin

from . import models


@admin.register(models.Persona)
class PersonaAdmin(admin.ModelAdmin):
    list_display = ("id", "short_text", "domain", "source", "created_at")
    list_filter = ("domain", "source")
    search_fields = ("text",)

    @admin.display(description="persona")
    def short_text(self, obj):
        return obj.text[:90]


@admin.register(models.SeedQuery)
class SeedQueryAdmin(admin.ModelAdmin):
    list_display = ("id", "external_id", "text", "source", "created_at")
    list_filter = ("source",)
    search_fields = ("text", "external_id")


@admin.register(models.PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "is_active", "created_by", "created_at")
    list_filter = ("name", "is_active")
    search_fields = ("text", "notes")


@admin.register(models.Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "reviews_required", "claim_minutes", "created_at")
    search_fields = ("name", "description")


@admin.register(models.GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "status", "progress_done", "progress_total", "attempts", "created_at")
    list_filter = ("status",)
    search_fields = ("name",)


@admin.register(models.GeneratedQuery)
class GeneratedQueryAdmin(admin.ModelAdmin):
    list_display = ("id", "text", "variant", "domain", "generation_run", "created_at")
    list_filter = ("variant", "domain")
    search_fields = ("text",)
    raw_id_fields = ("seed", "persona", "generation_run", "prompt")


@admin.register(models.Passage)
class PassageAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "kind", "source", "created_at")
    list_filter = ("kind", "source")
    search_fields = ("title", "text")
    raw_id_fields = ("query", "prompt")


@admin.register(models.Example)
class ExampleAdmin(admin.ModelAdmin):
    list_display = ("id", "dataset", "origin", "status", "intended_label", "reasoner_judgment", "reviews_done", "created_at")
    list_filter = ("status", "origin", "intended_label", "reasoner_judgment", "dataset", "query__variant", "query__domain")
    search_fields = ("query__text", "passage__text", "content_hash")
    raw_id_fields = ("query", "passage", "generation_run")


@admin.register(models.ReviewClaim)
class ReviewClaimAdmin(admin.ModelAdmin):
    list_display = ("example", "reviewer", "claimed_at", "expires_at")
    list_filter = ("reviewer",)
    raw_id_fields = ("example",)


@admin.register(models.Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ("id", "example", "reviewer", "decision", "reason_code", "seconds_spent", "is_adjudication", "undone", "created_at")
    list_filter = ("decision", "is_adjudication", "undone", "reviewer")
    search_fields = ("reason", "example__query__text")
    raw_id_fields = ("example",)


@admin.register(models.ExampleRevision)
class ExampleRevisionAdmin(admin.ModelAdmin):
    list_display = ("id", "example", "editor", "created_at")
    list_filter = ("editor",)
    raw_id_fields = ("example", "review")


@admin.register(models.LLMCall)
class LLMCallAdmin(admin.ModelAdmin):
    list_display = ("id", "generation_run", "role", "purpose", "model", "tokens_in", "tokens_out", "latency_ms", "cost_usd", "created_at")
    list_filter = ("role", "purpose", "model")
    search_fields = ("error", "item_key")


@admin.register(models.DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ("dataset", "version", "name", "status", "example_count", "content_hash", "created_at")
    list_filter = ("status", "dataset")
    search_fields = ("name", "content_hash")


@admin.register(models.DatasetVersionMember)
class DatasetVersionMemberAdmin(admin.ModelAdmin):
    list_display = ("version", "position", "example", "origin", "label")
    list_filter = ("origin", "label", "version")
    search_fields = ("query_text", "passage_text")
    raw_id_fields = ("example",)
