from django.contrib import admin

from . import models


@admin.register(models.Benchmark)
class BenchmarkAdmin(admin.ModelAdmin):
    list_display = ("name", "format", "group", "task", "primary_metric", "n_queries", "n_documents", "n_qrels")
    list_filter = ("format", "group")
    search_fields = ("name", "description")


@admin.register(models.BenchmarkQuery)
class BenchmarkQueryAdmin(admin.ModelAdmin):
    list_display = ("benchmark", "qid", "text")
    list_filter = ("benchmark",)
    search_fields = ("qid", "text")


@admin.register(models.BenchmarkDocument)
class BenchmarkDocumentAdmin(admin.ModelAdmin):
    list_display = ("benchmark", "docid", "title")
    list_filter = ("benchmark",)
    search_fields = ("docid", "title", "text")


@admin.register(models.Qrel)
class QrelAdmin(admin.ModelAdmin):
    list_display = ("benchmark", "side", "qid", "docid", "grade")
    list_filter = ("benchmark", "side", "grade")
    search_fields = ("qid", "docid")


@admin.register(models.RerankerModel)
class RerankerModelAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "base_model", "path", "created_at")
    list_filter = ("kind",)
    search_fields = ("name", "path", "base_model")


@admin.register(models.EvalRun)
class EvalRunAdmin(admin.ModelAdmin):
    list_display = ("id", "model", "benchmark", "first_stage", "top_k", "status", "progress_done", "progress_total", "created_at")
    list_filter = ("status", "benchmark", "model")


@admin.register(models.EvalQueryResult)
class EvalQueryResultAdmin(admin.ModelAdmin):
    list_display = ("run", "qid")
    list_filter = ("run",)
    search_fields = ("qid",)


@admin.register(models.ReferenceResult)
class ReferenceResultAdmin(admin.ModelAdmin):
    list_display = ("system", "benchmark", "metric", "value", "first_stage", "citation")
    list_filter = ("benchmark", "metric")
    search_fields = ("system", "citation")
