"""Generation runs in the browser (admins): list + new-run form, run page with a live progress bar."""
from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from curation.models import Dataset, GenerationRun
from curation.selectors import generation as selectors
from curation.services import generation as services
from limrank_app.roles import admin_required


class GenerationRunForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    n_seeds = forms.IntegerField(label="Seed queries (sample size)", min_value=0, initial=10)
    n_personas = forms.IntegerField(label="Personas (sample size)", min_value=0, initial=5)
    random_seed = forms.IntegerField(label="Random seed", initial=12345)
    generator_model = forms.CharField(label="Generator model", max_length=200, required=False)
    reasoner_model = forms.CharField(label="Reasoner model", max_length=200, required=False)
    in_flight = forms.IntegerField(label="Calls in flight", min_value=1, max_value=512, initial=16)
    consistency_k = forms.IntegerField(label="Reasoner samples k (self-consistency)", min_value=1, max_value=15, initial=1)
    n_hard_negatives = forms.IntegerField(label="Hard negatives per query", min_value=1, max_value=5, initial=2)
    dataset = forms.ModelChoiceField(label="Dataset", queryset=Dataset.objects.order_by("name"), required=False)
    new_dataset = forms.CharField(label="…or a new dataset named", max_length=120, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["generator_model"].widget.attrs["placeholder"] = settings.LIMRANK_GENERATOR_MODEL
        self.fields["reasoner_model"].widget.attrs["placeholder"] = settings.LIMRANK_REASONER_MODEL


@admin_required
def run_list(request):
    if request.method == "POST":
        form = GenerationRunForm(request.POST)
        if form.is_valid():
            data = dict(form.cleaned_data)
            new_dataset = data.pop("new_dataset").strip()
            try:
                with transaction.atomic():
                    if new_dataset:
                        data["dataset"] = Dataset.objects.get_or_create(name=new_dataset, defaults={"created_by": request.user})[0]
                    run = services.generation_run_create(created_by=request.user, **data)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Run {run.pk} queued: {run.progress_total} examples expected.")
                return redirect("curation:run_detail", pk=run.pk)
    else:
        form = GenerationRunForm()
    page = Paginator(selectors.generation_run_list(), 25).get_page(request.GET.get("page"))
    return render(request, "curation/run_list.html", {"form": form, "page": page})


@admin_required
@never_cache
def run_detail(request, pk: int):
    run = get_object_or_404(GenerationRun.objects.select_related("dataset", "created_by"), pk=pk)
    context = {"run": run, "stats": selectors.generation_run_live_stats(run=run)}
    if request.headers.get("HX-Request"):
        return render(request, "curation/partials/run_progress.html", context)
    filtered = Paginator(selectors.generation_run_filtered_examples(run=run), 25).get_page(request.GET.get("page"))
    context.update(filtered=filtered, failed_calls=selectors.generation_run_failed_calls(run=run))
    return render(request, "curation/run_detail.html", context)


@admin_required
@require_POST
def run_cancel(request, pk: int):
    run = get_object_or_404(GenerationRun, pk=pk)
    services.generation_run_cancel(run=run)
    messages.info(request, f"Run {run.pk}: cancel requested.")
    return redirect("curation:run_detail", pk=pk)


@admin_required
@require_POST
def run_resume(request, pk: int):
    run = get_object_or_404(GenerationRun, pk=pk)
    run = services.generation_run_resume(run=run)
    messages.info(request, f"Run {run.pk} queued again; it continues where it stopped." if run.status == "queued" else "Run already succeeded.")
    return redirect("curation:run_detail", pk=pk)
