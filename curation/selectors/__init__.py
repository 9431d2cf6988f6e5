"""Reads of curation data. Views, API and tasks read through here."""
from __future__ import annotations

from django.db.models import Count, QuerySet

from curation.models import Dataset, Example
from curation.selectors.aggregates import home_counts_cached
from curation.selectors.review import example_browse


def example_list(*, filters: dict | None = None) -> QuerySet[Example]:
    """Examples with what list pages show, filtered like the admin browser (one filter implementation)."""
    return example_browse(filters=filters or {}).select_related("query", "query__persona", "passage", "dataset")


def example_status_counts(*, dataset: Dataset | None = None) -> dict[str, int]:
    qs = Example.objects.all() if dataset is None else Example.objects.filter(dataset=dataset)
    return {row["status"]: row["n"] for row in qs.values("status").annotate(n=Count("id"))}


def home_summary(*, user, admin: bool) -> dict:
    """The home page's figures: counts over all examples cached (curation.selectors.aggregates), with `as_of`."""
    cached = home_counts_cached()
    counts = cached["counts"]
    return {
        "pending": counts.get(Example.Status.PENDING_REVIEW, 0),
        "approved": counts.get(Example.Status.APPROVED, 0),
        "rejected": counts.get(Example.Status.REJECTED, 0),
        "total": sum(counts.values()),
        "my_reviews": user.reviews.filter(undone=False).count(),
        "datasets": cached["datasets"],
        "as_of": cached["as_of"],
    }
