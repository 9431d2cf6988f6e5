"""Dataset diagnostics of a version, computed once by a Celery task with its progress on the version's row
(DatasetVersion.diagnostics), and the build options that act on them (keep one per near-duplicate cluster, exclude
contaminated examples). The figures themselves: curation.diagnostics."""
from __future__ import annotations

import time
from collections.abc import Callable

from celery import current_app
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from curation import diagnostics as diag
from curation.models import DatasetVersion, DatasetVersionMember, Example

DIAGNOSE_TASK = "curation.tasks.dataset_version_diagnose_task"
DEDUPE_CHOICES = ("queries", "passages", "both")


def _store(version_id: int, state: dict) -> None:
    DatasetVersion.objects.filter(pk=version_id).update(diagnostics=state)


def dataset_version_diagnostics_compute(*, version: DatasetVersion,
                                        progress: Callable[[float, str], None] | None = None) -> dict:
    """Every diagnostic of the version's frozen members: shortcut AUCs, near-duplicate clusters of queries and of
    passages, contamination per loaded benchmark. Seconds per step recorded beside the figures."""
    rows = list(DatasetVersionMember.objects.filter(version=version).order_by("position")
                .values_list("example_id", "query_text", "passage_text", "label"))
    examples = [r[0] for r in rows]
    queries = [r[1] for r in rows]
    passages = [r[2] for r in rows]
    labels = [bool(r[3]) for r in rows]
    report = progress or (lambda share, step: None)
    out: dict = {"examples": len(rows), "seconds": {}}

    def timed(name, share, fn):
        report(share, name)
        start = time.perf_counter()
        out[name] = fn()
        out["seconds"][name] = round(time.perf_counter() - start, 3)

    timed("shortcuts", 0.0, lambda: diag.shortcut_aucs(queries=queries, passages=passages, labels=labels))
    timed("duplicate_queries", 0.3, lambda: diag.near_duplicates(texts=queries, kind="query", examples=examples))
    timed("duplicate_passages", 0.5, lambda: diag.near_duplicates(texts=passages, kind="passage", examples=examples))
    timed("contamination", 0.7, lambda: diag.contamination_summary(
        hits=diag.contaminated(queries=queries, passages=passages), examples=examples))
    return out


def dataset_version_diagnose(*, version: DatasetVersion) -> dict:
    """Compute and store the diagnostics, reporting progress on the row as it goes."""
    def progress(share: float, step: str) -> None:
        _store(version.pk, {"status": "running", "progress": round(share, 2), "step": step})

    try:
        result = dataset_version_diagnostics_compute(version=version, progress=progress)
    except Exception as exc:
        _store(version.pk, {"status": "failed", "error": repr(exc)[:2000]})
        raise
    state = {"status": "done", "progress": 1.0, "computed_at": timezone.now().isoformat(), **result}
    _store(version.pk, state)
    return state


def dataset_version_diagnose_claim(*, version_id: int) -> bool:
    """The task's claim: only a queued diagnosis runs, once (a redelivered task finds it running or done)."""
    return bool(DatasetVersion.objects.filter(pk=version_id, diagnostics__status="queued")
                .update(diagnostics={"status": "running", "progress": 0.0, "step": "starting"}))


def dataset_version_diagnose_enqueue(*, version: DatasetVersion, force: bool = False) -> bool:
    """Queue the version's diagnosis for a worker (unless it has one, or one is under way, and not force)."""
    with transaction.atomic():
        qs = DatasetVersion.objects.filter(pk=version.pk)
        if not force:
            qs = qs.filter(diagnostics__status__isnull=True)
        if not qs.update(diagnostics={"status": "queued"}):
            return False
        transaction.on_commit(lambda: current_app.send_task(DIAGNOSE_TASK, args=[version.pk]))
    return True


def build_options_normalize(recipe: dict) -> dict:
    """The recipe's diagnostics options, checked: dedupe (queries|passages|both), exclude_contaminated (bool)."""
    out = {}
    dedupe = recipe.get("dedupe")
    if dedupe not in (None, "", False):
        if dedupe not in DEDUPE_CHOICES:
            raise ValidationError({"recipe": f"dedupe: must be one of {', '.join(DEDUPE_CHOICES)}, got {dedupe!r}"})
        out["dedupe"] = dedupe
    excl = recipe.get("exclude_contaminated")
    if excl not in (None, False):
        if excl is not True:
            raise ValidationError({"recipe": "exclude_contaminated: must be true or false"})
        out["exclude_contaminated"] = True
    return out


def examples_build_exclusions(*, examples: QuerySet[Example], recipe: dict) -> set[int]:
    """Example ids a build leaves out: all but one of each near-duplicate cluster (the first in content-hash order, so
    the choice does not depend on ids), and examples that share an n-gram with a loaded benchmark."""
    if not recipe.get("dedupe") and not recipe.get("exclude_contaminated"):
        return set()
    rows = list(examples.order_by("content_hash").values_list("id", "query__text", "passage__text"))
    ids = [r[0] for r in rows]
    queries = [r[1] for r in rows]
    passages = [r[2] for r in rows]
    drop: set[int] = set()
    if recipe.get("dedupe") in ("queries", "both"):
        drop |= diag.one_per_cluster(keys=ids, texts=queries, kind="query")
    if recipe.get("dedupe") in ("passages", "both"):
        drop |= diag.one_per_cluster(keys=ids, texts=passages, kind="passage")
    if recipe.get("exclude_contaminated"):
        for hits in diag.contaminated(queries=queries, passages=passages).values():
            drop.update(ids[i] for i in set(hits["queries"]) | set(hits["passages"]))
    return drop
