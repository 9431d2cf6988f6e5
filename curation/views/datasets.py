"""Dataset versions in the browser: the list, the build form (admins), the datasheet with export buttons."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from curation import audit_charts
from curation.exports import FORMATS
from curation.models import Dataset, DatasetVersionBuild, Example, GeneratedQuery
from curation.selectors import audits as audit_selectors
from curation.selectors import datasets as selectors
from curation.services.datasets import dataset_version_build_resume, dataset_version_request
from limrank_app.roles import admin_required, reviewer_required, user_is_admin

ORIGINS = Example.Origin.choices


class VersionBuildForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"), label="Dataset")
    name = forms.CharField(max_length=200, required=False, label="Version name")
    status = forms.MultipleChoiceField(
        choices=Example.Status.choices, initial=[Example.Status.APPROVED], widget=forms.CheckboxSelectMultiple, label="Status"
    )
    origin = forms.MultipleChoiceField(choices=ORIGINS, required=False, widget=forms.CheckboxSelectMultiple, label="Origin (empty: all)")
    variant = forms.MultipleChoiceField(
        choices=GeneratedQuery.Variant.choices, required=False, widget=forms.CheckboxSelectMultiple, label="Query variant (empty: all)"
    )
    domain = forms.CharField(required=False, label="Domains", help_text="comma-separated; empty: all")
    label = forms.ChoiceField(
        choices=[("", "both"), ("true", "relevant only"), ("false", "not relevant only")], required=False, label="Label"
    )
    all_datasets = forms.BooleanField(required=False, label="Take examples from every dataset (e.g. the imported Rank1 data)")
    seed = forms.IntegerField(initial=12345, label="Seed")
    shuffle = forms.BooleanField(initial=True, required=False, label="Shuffle the final order (with the seed)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for value, text in ORIGINS:
            self.fields[f"mix_{value}"] = forms.IntegerField(
                min_value=0, required=False, label=f"Mix: {text} examples", help_text="empty: not part of the mix"
            )

    def filters_and_recipe(self) -> tuple[dict, dict]:
        d = self.cleaned_data
        filters: dict = {"status": d["status"]}
        for key in ("origin", "variant"):
            if d[key]:
                filters[key] = d[key]
        domains = [x.strip() for x in d["domain"].split(",") if x.strip()]
        if domains:
            filters["domain"] = domains
        if d["label"]:
            filters["label"] = d["label"] == "true"
        if d["all_datasets"]:
            filters["datasets"] = "all"
        mix = {value: d[f"mix_{value}"] for value, _ in ORIGINS if d.get(f"mix_{value}") is not None}
        recipe = {"seed": d["seed"], "shuffle": d["shuffle"]}
        if mix:
            recipe["mix"] = mix
        return filters, recipe


@reviewer_required
def version_list(request):
    return render(request, "curation/version_list.html", {"versions": selectors.dataset_version_list()[:200]})


@admin_required
def version_build(request):
    form = VersionBuildForm(request.POST or None, initial={"dataset": request.GET.get("dataset")})
    if request.method == "POST" and form.is_valid():
        filters, recipe = form.filters_and_recipe()
        try:
            version, job = dataset_version_request(
                dataset=form.cleaned_data["dataset"], filters=filters, recipe=recipe,
                created_by=request.user, name=form.cleaned_data["name"],
            )
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error(None, message)
        else:
            if job is not None:
                messages.info(request, f"{version} is large: a worker builds it; its progress is shown here.")
            else:
                messages.success(request, f"Built {version} ({version.example_count} examples); its export files are "
                                          "being rendered.")
            return redirect("curation:version_detail", pk=version.pk)
    available = (
        Example.objects.values("dataset__name", "origin", "status").annotate(n=Count("id")).order_by("dataset__name", "origin", "status")
    )
    return render(request, "curation/version_build.html", {"form": form, "available": available}, status=400 if form.errors else 200)


@reviewer_required
@never_cache
def version_detail(request, pk: int):
    version = get_object_or_404(selectors.dataset_version_list(), pk=pk)
    sheet = selectors.dataset_version_datasheet(version=version)
    sheet["audits"] = audit_selectors.audit_reports_for_version(version=version)
    shortcuts = (version.diagnostics or {}).get("shortcuts")
    shortcut_svg = audit_charts.chart_shortcut_aucs(features=shortcuts["features"], threshold=shortcuts["threshold"]) \
        if shortcuts else ""
    return render(request, "curation/version_detail.html", {"sheet": sheet, "version": version, "formats": FORMATS,
                                                            "is_admin": user_is_admin(request.user),
                                                            "shortcut_svg": shortcut_svg,
                                                            "build": DatasetVersionBuild.objects.filter(version=version).first()})


@admin_required
@require_POST
def version_resume(request, pk: int):
    version = get_object_or_404(selectors.dataset_version_list(), pk=pk)
    if dataset_version_build_resume(version=version):
        messages.info(request, f"The build of {version} is queued again.")
    else:
        messages.error(request, f"{version}: nothing to resume.")
    return redirect("curation:version_detail", pk=pk)
