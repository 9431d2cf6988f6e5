"""Benchmarks, rerankers, eval runs and the published figures of the field."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from limrank_app.jobs import JobState

from .rerankers import kind_choices


class Benchmark(models.Model):
    class Format(models.TextChoices):
        BEIR = "beir", "BEIR"
        TREC = "trec", "TREC"
        BRIGHT = "bright", "BRIGHT"
        FOLLOWIR = "followir", "FollowIR (paired qrels)"
        LITSEARCH = "litsearch", "LitSearch"

    name = models.CharField(max_length=120, unique=True)
    format = models.CharField(max_length=16, choices=Format.choices)
    group = models.CharField(max_length=64, blank=True, help_text="e.g. BRIGHT for its 12 tasks")
    task = models.CharField(max_length=64, blank=True)
    primary_metric = models.CharField(max_length=32, default="ndcg_cut_10")
    description = models.TextField(blank=True)
    source = models.CharField(max_length=500, blank=True, help_text="where the data came from, with its license")
    n_queries = models.PositiveIntegerField(default=0)
    n_documents = models.PositiveIntegerField(default=0)
    n_qrels = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name


class BenchmarkQuery(models.Model):
    benchmark = models.ForeignKey(Benchmark, on_delete=models.CASCADE, related_name="queries")
    qid = models.CharField(max_length=128)
    text = models.TextField()
    instruction = models.TextField(blank=True)
    changed_instruction = models.TextField(blank=True, help_text="FollowIR: the altered instruction")
    excluded_ids = models.JSONField(default=list, blank=True, help_text="BRIGHT: doc ids to drop from the ranking")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["benchmark", "qid"], name="bquery_unique")]


class BenchmarkDocument(models.Model):
    benchmark = models.ForeignKey(Benchmark, on_delete=models.CASCADE, related_name="documents")
    docid = models.CharField(max_length=128)
    title = models.TextField(blank=True)
    text = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["benchmark", "docid"], name="bdoc_unique")]


class Qrel(models.Model):
    class Side(models.TextChoices):
        DEFAULT = "og", "Original"
        CHANGED = "changed", "Changed instruction"

    benchmark = models.ForeignKey(Benchmark, on_delete=models.CASCADE, related_name="qrels")
    qid = models.CharField(max_length=128)
    docid = models.CharField(max_length=128)
    grade = models.IntegerField()
    side = models.CharField(max_length=8, choices=Side.choices, default=Side.DEFAULT)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["benchmark", "side", "qid", "docid"], name="qrel_unique")]
        indexes = [models.Index(fields=["benchmark", "qid"], name="qrel_bench_qid_idx")]


class RerankerModel(models.Model):
    # One member per strategy of the reranker table (evaluation.rerankers.STRATEGIES), plus BM25:
    # Kind.CAUSAL_LM == "causal-lm", Kind.YES_NO == "yes-no", ...
    Kind = models.TextChoices("Kind", [(value.upper().replace("-", "_"), (value, label))
                                       for value, label in kind_choices()])

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    path = models.CharField(max_length=500, blank=True, help_text="local path or hub id")
    base_model = models.CharField(max_length=500, blank=True)
    artifact = models.ForeignKey("training.ModelArtifact", null=True, blank=True, on_delete=models.SET_NULL, related_name="rerankers")
    config = models.JSONField(default=dict, blank=True, help_text="backend (transformers/vllm), batch size, prompt, ...")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name


class EvalRun(JobState):
    execute_task = "evaluation.tasks.eval_run_execute_task"

    benchmark = models.ForeignKey(Benchmark, on_delete=models.PROTECT, related_name="eval_runs")
    model = models.ForeignKey(RerankerModel, on_delete=models.PROTECT, related_name="eval_runs")
    first_stage = models.CharField(max_length=64, default="bm25", help_text="bm25 or an uploaded run's name")
    top_k = models.PositiveIntegerField(default=100)
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="aggregate metrics, e.g. ndcg_cut_10")
    run_file = models.CharField(max_length=500, blank=True, help_text="TREC run file path")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    def __str__(self):
        return f"{self.model} on {self.benchmark}"


class EvalQueryResult(models.Model):
    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="query_results")
    qid = models.CharField(max_length=128)
    metrics = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "qid"], name="evalq_unique")]


class ReferenceResult(models.Model):
    """A published figure, shown as 'reported (citation)' beside what was measured here."""

    system = models.CharField(max_length=200)
    benchmark = models.CharField(max_length=120, help_text="benchmark or task name, e.g. BRIGHT/biology")
    metric = models.CharField(max_length=32)
    value = models.FloatField()
    first_stage = models.CharField(max_length=200, blank=True)
    citation = models.CharField(max_length=300)
    url = models.URLField(blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["system", "benchmark", "metric"], name="reference_unique")]
