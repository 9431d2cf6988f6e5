"""Upload seeds, personas or Rank1-format examples from the browser (admins); same service as the commands."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect, render

from curation.models import Dataset
from curation.services import imports as services
from limrank_app.roles import admin_required


class ImportForm(forms.Form):
    kind = forms.ChoiceField(label="What", choices=[("seeds", "Seed queries (MS MARCO TSV or JSONL)"),
                                                   ("personas", "Personas (PersonaHub JSONL)"),
                                                   ("examples", "Examples (Rank1-format JSONL)"),
                                                   ("rank1-hf", "Rank1's released training data (jhu-clsp/rank1-training-data: parquet, JSONL)"),
                                                   ("limrank-hf", "LimRank's released training data (train_limrank.json)")])
    file = forms.FileField(label="File")
    origin = forms.ChoiceField(label="Origin of examples", choices=[("rank1", "Rank1"), ("imported", "Imported")], required=False)
    dataset = forms.CharField(label="Dataset for examples (created if missing)", max_length=120, required=False)


@admin_required
def import_upload(request):
    error = None
    if request.method == "POST":
        form = ImportForm(request.POST, request.FILES)
        if form.is_valid():
            upload, kind = form.cleaned_data["file"], form.cleaned_data["kind"]
            try:
                with transaction.atomic():
                    if kind == "seeds":
                        result = services.seeds_import(file=upload, filename=upload.name)
                    elif kind == "personas":
                        result = services.personas_import(file=upload, filename=upload.name)
                    else:
                        name = form.cleaned_data["dataset"].strip()
                        dataset = Dataset.objects.get_or_create(name=name, defaults={"created_by": request.user})[0] if name else None
                        if kind in services.AUTHORS_FORMATS:
                            result = services.examples_import_authors(format=kind, file=upload, filename=upload.name, dataset=dataset)
                        else:
                            result = services.examples_import(file=upload, filename=upload.name, origin=form.cleaned_data["origin"] or "rank1", dataset=dataset)
            except services.ImportValidationError as exc:
                error = exc
            else:
                messages.success(request, f"{result.filename}: {result.created} {result.kind} imported, {result.duplicates} duplicates skipped.")
                return redirect("curation:import_upload")
    else:
        form = ImportForm()
    return render(request, "curation/imports.html", {"form": form, "error": error}, status=400 if error else 200)
