"""Prompt templates (admins): see every version, save an edit as a new version, go back to an old one."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from curation.models import PromptTemplate
from curation.selectors.generation import prompt_versions_by_name
from curation.services.prompts import PROMPT_FIELDS, prompt_activate, prompt_active, prompt_version_create
from limrank_app.roles import admin_required


class PromptEditForm(forms.Form):
    text = forms.CharField(label="Template", widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false"}))
    notes = forms.CharField(label="What changed", max_length=500, required=False)


@admin_required
def prompt_list(request):
    return render(request, "curation/prompts.html", {"prompts": prompt_versions_by_name()})


@admin_required
def prompt_edit(request, name: str):
    if name not in PromptTemplate.Name.values:
        raise Http404("unknown prompt")
    current = prompt_active(name=name)
    if request.method == "POST":
        form = PromptEditForm(request.POST)
        if form.is_valid():
            try:
                prompt = prompt_version_create(name=name, text=form.cleaned_data["text"], notes=form.cleaned_data["notes"], created_by=request.user)
            except ValidationError as exc:
                form.add_error("text", exc)
            else:
                messages.success(request, f"Saved {prompt.name} version {prompt.version}; new runs use it.")
                return redirect("curation:prompt_list")
    else:
        form = PromptEditForm(initial={"text": current.text})
    return render(request, "curation/prompt_edit.html", {
        "form": form, "name": name, "label": PromptTemplate.Name(name).label, "current": current,
        "fields": sorted(PROMPT_FIELDS[name]),
        "next_version": (PromptTemplate.objects.filter(name=name).order_by("-version").values_list("version", flat=True).first() or 0) + 1,
    })


@admin_required
@require_POST
def prompt_activate_view(request, pk: int):
    prompt = prompt_activate(prompt=get_object_or_404(PromptTemplate, pk=pk))
    messages.success(request, f"{prompt.name} version {prompt.version} is active again.")
    return redirect("curation:prompt_list")
