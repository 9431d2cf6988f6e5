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

from curation.generation_params import DEFAULTS, FIELD_NAMES, LIMITS, GenerationParams
from curation.models import Dataset, GenerationRun
from curation.selectors import generation as selectors
from curation.services import generation as services
from limrank_app.roles import admin_required


def _int_field(name: str, label: str) -> forms.IntegerField:
    lo, hi = LIMITS.get(name, (None, None))
    return forms.IntegerField(label=label, min_value=lo, max_value=hi, initial=getattr(DEFAULTS, name))


class GenerationRunForm(forms.Form):
    """The fields of GenerationParams (their defaults and limits come from there) plus where the examples go."""

    name = forms.CharField(max_length=200, required=False)
    n_seeds = _int_field("n_seeds", "Seed queries (sample size)")
    n_personas = _int_field("n_personas", "Personas (sample size)")
    random_seed = _int_field("random_seed", "Random seed")
    generator_model = forms.CharField(label="Generator model", max_length=200, required=False)
    reasoner_model = forms.CharField(label="Reasoner model", max_length=200, required=False)
    in_flight = _int_field("in_flight", "Calls in flight")
    consistency_k = _int_field("consistency_k", "Reasoner samples k (self-consistency)")
    n_hard_negatives = _int_field("n_hard_negatives", "Hard negatives per query")
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
            data = form.cleaned_data
            new_dataset = data["new_dataset"].strip()
            try:
                params = GenerationParams.build(**{k: v for k, v in data.items() if k in FIELD_NAMES})
                with transaction.atomic():
                    dataset = data["dataset"]
                    if new_dataset:
                        dataset = Dataset.objects.get_or_create(name=new_dataset, defaults={"created_by": request.user})[0]
                    run = services.generation_run_create(created_by=request.user, name=data["name"], dataset=dataset,
                                                         params=params)
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
