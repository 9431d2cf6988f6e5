"""Admin pages: job list, launch form (from presets), job page with live progress, loss plot, log, cancel."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from limrank_app.jobs import job_resume as resume
from limrank_app.roles import admin_required

from . import selectors, services
from .forms import TrainingLaunchForm
from .models import TrainingJob
from .plots import loss_plot_svg
from .presets import PRESETS


@admin_required
def job_list(request):
    page = Paginator(selectors.training_job_list(), 50).get_page(request.GET.get("page"))
    artifacts = selectors.model_artifact_list()[:20]
    return render(request, "training/job_list.html", {"page": page, "artifacts": artifacts})


@admin_required
def job_launch(request):
    preset = request.POST.get("preset") or request.GET.get("preset") or "released"
    if request.method == "POST":
        form = TrainingLaunchForm(request.POST, preset=preset)
        if form.is_valid():
            values = form.config_values()
            try:
                job = services.training_job_create(
                    dataset_version=form.cleaned_data["dataset_version"],
                    backbone=values.pop("backbone"), base_model=values.pop("base_model"),
                    num_processes=values.pop("num_processes"),
                    preset=None if preset == "custom" else preset, overrides=values, created_by=request.user,
                    name=form.cleaned_data["name"],
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                messages.success(request, f"Training job {job.pk} queued on the gpu queue.")
                return redirect("training:job_detail", pk=job.pk)
    else:
        form = TrainingLaunchForm(preset=preset, initial={"dataset_version": request.GET.get("dataset_version")})
    return render(request, "training/job_form.html", {"form": form, "presets": PRESETS.values(), "preset": preset})


def _job_context(job: TrainingJob) -> dict:
    metrics = job.metrics or {}
    return {
        "job": job,
        "metrics": metrics,
        "eta": selectors.eta_display(metrics.get("eta_seconds")) if job.status == "running" else "—",
        "last_loss": (metrics.get("loss") or [[None, None]])[-1][1],
        "loss_svg": loss_plot_svg(selectors.training_loss_series(job=job)),
    }


@admin_required
def job_detail(request, pk: int):
    job = get_object_or_404(selectors.training_job_list(), pk=pk)
    return render(request, "training/job_detail.html", _job_context(job))


@admin_required
def job_progress_partial(request, pk: int):
    job = get_object_or_404(selectors.training_job_list(), pk=pk)
    return render(request, "training/_job_live.html", _job_context(job))


@admin_required
@require_POST
def job_cancel(request, pk: int):
    job = get_object_or_404(TrainingJob, pk=pk)
    services.training_job_cancel(job=job)
    messages.info(request, "Cancel requested." if not job.is_finished or job.status == "cancelled" else "The job had already finished.")
    return redirect("training:job_detail", pk=pk)


@admin_required
@require_POST
def job_resume(request, pk: int):
    """Resume or retry a failed, cancelled or stuck job (the broker down: 503 from the request guard, still queued)."""
    job = get_object_or_404(TrainingJob, pk=pk)
    if resume(job):
        messages.info(request, f"Job {job.pk} queued again.")
    else:
        messages.info(request, f"Job {job.pk} is {job.get_status_display().lower()}: nothing to resume.")
    return redirect("training:job_detail", pk=pk)
