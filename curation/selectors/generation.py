"""Reads for generation runs and prompts: lists, the live summary of a running run, its failures."""
from __future__ import annotations

from django.db.models import Count, Q, QuerySet, Sum

from curation.models import Example, GenerationRun, LLMCall, PromptTemplate


def generation_run_list() -> QuerySet[GenerationRun]:
    return GenerationRun.objects.select_related("dataset", "created_by").order_by("-id")


def generation_run_live_stats(*, run: GenerationRun) -> dict:
    """Cheap aggregates for the progress panel; a finished run shows its full `stats`."""
    if run.is_finished and run.stats:
        return run.stats
    calls = LLMCall.objects.filter(generation_run=run).aggregate(
        calls=Count("id"), call_errors=Count("id", filter=~Q(error="")), tokens_in=Sum("tokens_in"),
        tokens_out=Sum("tokens_out"), cost=Sum("cost_usd"),
    )
    ex = Example.objects.filter(generation_run=run).aggregate(
        kept=Count("id", filter=Q(filter_reason="")),
        failed=Count("id", filter=Q(filter_reason__startswith="failed: ")),
        filtered=Count("id", filter=~Q(filter_reason="") & ~Q(filter_reason__startswith="failed: ")),
    )
    cost = float(calls["cost"] or 0)
    return {
        "calls": calls["calls"], "call_errors": calls["call_errors"], "tokens_in": calls["tokens_in"] or 0,
        "tokens_out": calls["tokens_out"] or 0, "cost_usd": cost, "kept": ex["kept"], "filtered": ex["filtered"],
        "failed": ex["failed"], "cost_per_kept_usd": cost / ex["kept"] if ex["kept"] else None, "live": True,
    }


def generation_run_filtered_examples(*, run: GenerationRun) -> QuerySet[Example]:
    return (Example.objects.filter(generation_run=run, status=Example.Status.FILTERED_OUT)
            .select_related("query", "passage").order_by("id"))


def generation_run_failed_calls(*, run: GenerationRun, limit: int = 100) -> QuerySet[LLMCall]:
    return LLMCall.objects.filter(generation_run=run).exclude(error="").order_by("-id")[:limit]


def prompt_versions_by_name() -> list[dict]:
    rows = []
    for name, label in PromptTemplate.Name.choices:
        versions = list(PromptTemplate.objects.filter(name=name).select_related("created_by").order_by("-version"))
        active = next((p for p in versions if p.is_active), versions[0] if versions else None)
        rows.append({"name": name, "label": label, "active": active, "versions": versions})
    return rows
