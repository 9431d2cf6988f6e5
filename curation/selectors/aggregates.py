"""Aggregates over all examples and reviews (dashboard, data quality, home counts), cached (issue 21).

At a million examples each of these reads every row; a page shows them as of when they were computed ("as of …")
and recomputes them at most every LIMRANK_AGGREGATE_CACHE_SECONDS, through Django's cache framework (CACHE_URL:
locmem by default, Redis in production so that every web process shares one copy)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count
from django.utils import timezone

from curation.models import Dataset, Example
from curation.selectors import review as review_selectors

KEY_PREFIX = "limrank:aggregate:"


def aggregate_cached(*, name: str, compute: Callable[[], Any]) -> dict:
    """{"value": compute(), "as_of": when it was computed}, from the cache while it is younger than the setting."""
    key = KEY_PREFIX + name
    entry = cache.get(key)
    if entry is None:
        entry = {"value": compute(), "as_of": timezone.now()}
        cache.set(key, entry, timeout=settings.LIMRANK_AGGREGATE_CACHE_SECONDS)
    return entry


def dashboard_cached() -> dict:
    """The review dashboard's figures (curation.selectors.review.review_dashboard) with `as_of`."""
    entry = aggregate_cached(name="dashboard", compute=review_selectors.review_dashboard)
    return {**entry["value"], "as_of": entry["as_of"], "aggregate_cache_seconds": settings.LIMRANK_AGGREGATE_CACHE_SECONDS}


def quality_cached(*, dataset: Dataset | None, render: Callable[[dict], Any]) -> dict:
    """The data-quality figures and the plots rendered from them (by `render`), with `as_of`."""
    def compute():
        figures = review_selectors.data_quality_figures(dataset=dataset)
        return {"figures": figures, "charts": render(figures)}

    entry = aggregate_cached(name=f"quality:{dataset.pk if dataset else 'all'}", compute=compute)
    return {**entry["value"], "as_of": entry["as_of"], "aggregate_cache_seconds": settings.LIMRANK_AGGREGATE_CACHE_SECONDS}


def home_counts_cached() -> dict:
    """Examples per status overall, and per dataset (the home page), with `as_of`."""
    def compute():
        counts = {r["status"]: r["n"] for r in Example.objects.values("status").annotate(n=Count("id")).order_by()}
        datasets = list(Dataset.objects.annotate(n=Count("examples")).order_by("name").values("pk", "name", "reviews_required", "n"))
        return {"counts": counts, "datasets": datasets}

    entry = aggregate_cached(name="home", compute=compute)
    return {**entry["value"], "as_of": entry["as_of"], "aggregate_cache_seconds": settings.LIMRANK_AGGREGATE_CACHE_SECONDS}


def aggregates_forget() -> None:
    """Drop every cached aggregate (tests; after a bulk change an admin wants to see at once)."""
    cache.delete_many([KEY_PREFIX + n for n in ("dashboard", "home", "quality:all")])
