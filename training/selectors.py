"""Reads for training pages and the API."""
from __future__ import annotations

from django.db.models import QuerySet

from .models import ModelArtifact, TrainingJob


def training_job_list() -> QuerySet[TrainingJob]:
    return TrainingJob.objects.select_related("dataset_version__dataset", "created_by").order_by("-id")


def training_job_get(*, pk: int) -> TrainingJob:
    return training_job_list().get(pk=pk)


def model_artifact_list() -> QuerySet[ModelArtifact]:
    return ModelArtifact.objects.select_related("training_job").order_by("-id")


def training_loss_series(*, job: TrainingJob) -> list[tuple[int, float]]:
    return [(int(s), float(v)) for s, v in (job.metrics or {}).get("loss", [])]


def eta_display(seconds) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s"
