"""Reads of curation data. Views, API and tasks read through here."""
from __future__ import annotations

from django.db.models import Count, Exists, OuterRef, QuerySet

from curation.models import Audit, AuditMember, Dataset, Example
from curation.selectors.aggregates import home_counts_cached
from curation.selectors.review import example_browse
from limrank_app.roles import user_is_admin


def example_list(*, filters: dict | None = None, viewer=None) -> QuerySet[Example]:
    """Examples with what list pages show, filtered like the admin browser (one filter implementation).
    With a viewer who is not an admin, examples sampled by an open audit are left out: their label, the reasoner's
    judgment and the status would tell an auditor what the blind card hides."""
    qs = example_browse(filters=filters or {}).select_related("query", "query__persona", "passage", "dataset")
    if viewer is not None and not user_is_admin(viewer):
        audited = AuditMember.objects.filter(example=OuterRef("pk"), audit__state=Audit.State.OPEN)
        qs = qs.filter(~Exists(audited))
    return qs


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
