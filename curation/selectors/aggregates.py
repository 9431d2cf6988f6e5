"""Aggregates over all examples and reviews (dashboard, data quality, home counts), cached (issue 21).

At a million examples each of these reads every row; a page shows them as of when they were computed ("as of …").
They are computed once, then served from Django's cache framework (CACHE_URL: locmem by default, Redis in production
so that every web process shares one copy). Once older than LIMRANK_AGGREGATE_CACHE_SECONDS the figures are still
served, and a Celery task (curation.tasks.aggregate_refresh_task, one at a time per aggregate) computes them again;
a request computes them itself only when there are none, or they are older than STALE_FACTOR times the setting."""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count
from django.utils import timezone

from curation import review_charts
from curation.models import Dataset, Example
from curation.selectors import review as review_selectors

KEY_PREFIX = "limrank:aggregate:"
REFRESH_TASK = "curation.tasks.aggregate_refresh_task"
STALE_FACTOR = 10
logger = logging.getLogger(__name__)


def _home_compute() -> dict:
    counts = {r["status"]: r["n"] for r in Example.objects.values("status").annotate(n=Count("id")).order_by()}
    datasets = list(Dataset.objects.annotate(n=Count("examples")).order_by("name").values("pk", "name", "reviews_required", "n"))
    return {"counts": counts, "datasets": datasets}


def _quality_compute(dataset_id: str) -> dict:
    dataset = None if dataset_id == "all" else Dataset.objects.filter(pk=int(dataset_id)).first()
    figures = review_selectors.data_quality_figures(dataset=dataset)
    return {"figures": figures, "charts": review_charts.quality_charts(figures)}


def _compute(name: str) -> Any:
    """The aggregate called `name`: "dashboard", "home" or "quality:<dataset id|all>"."""
    if name == "dashboard":
        return review_selectors.review_dashboard()
    if name == "home":
        return _home_compute()
    if name.startswith("quality:"):
        return _quality_compute(name.partition(":")[2])
    raise ValueError(f"no aggregate {name!r}")


def aggregate_refresh(*, name: str) -> dict:
    """Compute the aggregate now and cache it (the refresh task; a request when there is nothing to serve)."""
    entry = {"value": _compute(name), "as_of": timezone.now()}
    seconds = settings.LIMRANK_AGGREGATE_CACHE_SECONDS
    cache.set(KEY_PREFIX + name, entry, timeout=max(seconds * STALE_FACTOR, 1))
    cache.delete(KEY_PREFIX + name + ":refreshing")
    return entry


def _refresh_enqueue(name: str) -> None:
    if not cache.add(KEY_PREFIX + name + ":refreshing", 1, timeout=max(settings.LIMRANK_AGGREGATE_CACHE_SECONDS, 60)):
        return  # a refresh is already on its way
    try:
        current_app.send_task(REFRESH_TASK, args=[name])  # by name: the task module imports this one
    except Exception:  # noqa: BLE001 - no broker: serve the older figures; the next request tries again
        logger.exception("could not enqueue the refresh of aggregate %s", name)
        cache.delete(KEY_PREFIX + name + ":refreshing")


def aggregate_cached(*, name: str) -> dict:
    """{"value": the aggregate, "as_of": when it was computed, "aggregate_cache_seconds": the setting}."""
    entry = cache.get(KEY_PREFIX + name)
    seconds = settings.LIMRANK_AGGREGATE_CACHE_SECONDS
    if entry is None:
        entry = aggregate_refresh(name=name)
    elif timezone.now() - entry["as_of"] > timedelta(seconds=seconds):
        _refresh_enqueue(name)
    return {**entry, "aggregate_cache_seconds": seconds}


def _flat(entry: dict) -> dict:
    return {**entry["value"], "as_of": entry["as_of"], "aggregate_cache_seconds": entry["aggregate_cache_seconds"]}


def dashboard_cached() -> dict:
    """The review dashboard's figures (curation.selectors.review.review_dashboard) with `as_of`."""
    return _flat(aggregate_cached(name="dashboard"))


def quality_cached(*, dataset: Dataset | None) -> dict:
    """The data-quality figures and the plots rendered from them (curation.review_charts), with `as_of`."""
    return _flat(aggregate_cached(name=f"quality:{dataset.pk if dataset else 'all'}"))


def home_counts_cached() -> dict:
    """Examples per status overall, and per dataset (the home page), with `as_of`."""
    return _flat(aggregate_cached(name="home"))


WARM = ("dashboard", "home", "quality:all")  # the aggregates of the pages every admin opens


def aggregate_warm(*, names=WARM) -> list[str]:
    """Send the refresh of every aggregate that is missing or half-way to going cold (older than STALE_FACTOR / 2
    times LIMRANK_AGGREGATE_CACHE_SECONDS), so that a request rarely has to compute one itself. Workers call it when
    they start and every LIMRANK_AGGREGATE_CACHE_SECONDS (curation.apps). Returns the names it sent."""
    seconds = settings.LIMRANK_AGGREGATE_CACHE_SECONDS
    sent = []
    for name in names:
        entry = cache.get(KEY_PREFIX + name)
        if entry is None or timezone.now() - entry["as_of"] > timedelta(seconds=seconds * STALE_FACTOR / 2):
            _refresh_enqueue(name)
            sent.append(name)
    return sent
