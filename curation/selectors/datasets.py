"""Reads of datasets and dataset versions: lists, members, the datasheet."""
from __future__ import annotations

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count, Q, QuerySet

from curation.models import Dataset, DatasetVersion, DatasetVersionMember, Review
from curation.selectors.agreement import agreement_alpha


def dataset_list() -> QuerySet[Dataset]:
    return Dataset.objects.annotate(example_total=Count("examples", distinct=True)).order_by("name")


def dataset_version_list(*, dataset: Dataset | None = None) -> QuerySet[DatasetVersion]:
    qs = DatasetVersion.objects.select_related("dataset", "created_by").order_by("-id")
    return qs if dataset is None else qs.filter(dataset=dataset)


def dataset_version_members(*, version: DatasetVersion) -> QuerySet[DatasetVersionMember]:
    return DatasetVersionMember.objects.filter(version=version).order_by("position")


def _counts(qs, field: str) -> list[tuple]:
    rows = qs.values(field).annotate(n=Count("id")).order_by("-n", field)
    return [(r[field], r["n"]) for r in rows]


def dataset_version_agreement(*, example_ids) -> dict:
    """Agreement between reviewers on these examples (non-undone, non-adjudication reviews): percent of
    multiply-reviewed examples whose reviewers all agree, and Krippendorff's alpha (nominal). In SQL:
    curation.selectors.agreement."""
    figures = agreement_alpha(example_ids_sql=example_ids.query.sql_with_params())
    return {"reviewed_examples": figures["reviewed"], "multiply_reviewed": figures["units"],
            "percent_agreement": figures["unanimous"] / figures["units"] if figures["units"] else None,
            "krippendorff_alpha": figures["alpha"]}


def dataset_version_datasheet(*, version: DatasetVersion) -> dict:
    """Everything a reader of the data needs to know about a version: the figures stored when it was built (a version
    never changes); computed now for a version built before they were stored."""
    figures = version.datasheet or dataset_version_datasheet_compute(version=version)
    return {"version": version, **figures}


def dataset_version_datasheet_compute(*, version: DatasetVersion) -> dict:
    """The datasheet's figures (JSON: stored in DatasetVersion.datasheet at build), from the version's frozen members
    and the reviews of their examples at that time."""
    members = DatasetVersionMember.objects.filter(version=version)
    labels = dict(_counts(members, "label"))
    prompt_versions = []
    for value, n in _counts(members, "prompt_versions"):
        if isinstance(value, str):  # SQLite returns the JSON text when grouping
            value = json.loads(value or "{}")
        prompt_versions.append((", ".join(f"{k} v{v}" for k, v in sorted((value or {}).items())) or "—", n))
    example_ids = members.values("example_id")
    reviewers = list(
        Review.objects.filter(example_id__in=example_ids, undone=False)
        .values("reviewer__username")
        .annotate(
            n=Count("id"),
            approvals=Count("id", filter=Q(decision=Review.Decision.APPROVE)),
            rejections=Count("id", filter=Q(decision=Review.Decision.REJECT)),
            adjudications=Count("id", filter=Q(is_adjudication=True)),
        )
        .order_by("-n", "reviewer__username")
    )
    judged = members.exclude(reasoner_judgment__isnull=True)
    sheet = {
        "total": version.example_count,
        "by_origin": _counts(members, "origin"),
        "by_variant": _counts(members, "variant"),
        "by_domain": _counts(members, "domain"),
        "by_label": [("relevant (true)", labels.get(True, 0)), ("not relevant (false)", labels.get(False, 0))],
        "by_origin_label": [
            (r["origin"], r["label"], r["n"])
            for r in members.values("origin", "label").annotate(n=Count("id")).order_by("origin", "-label")
        ],
        "prompt_versions": prompt_versions,
        "reasoner_models": _counts(members, "reasoner_model"),
        "judgment_agrees": judged.filter(Q(reasoner_judgment=True, label=True) | Q(reasoner_judgment=False, label=False)).count(),
        "judged": judged.count(),
        "reviewers": reviewers,
        "agreement": dataset_version_agreement(example_ids=example_ids),
    }
    return json.loads(json.dumps(sheet, cls=DjangoJSONEncoder))  # what the JSON field gives back, stored or not
