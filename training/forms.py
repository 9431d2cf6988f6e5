"""The launch form: every TrainingConfig value is a field, initialised from the chosen preset."""
from __future__ import annotations

from django import forms

from curation.models import DatasetVersion

from .presets import BACKBONES, EDITABLE_FIELDS, FIELD_TYPES, LOSSES, PRESETS, SCHEDULERS, TrainingConfig, preset_values

HELP = {
    "base_model": "a hub id (e.g. Qwen/Qwen2.5-7B) or a local model directory",
    "effective_batch_size": "> 0: accumulation = effective / (per-device × processes); 0: use gradient_accumulation_steps",
    "max_steps": "-1: train for `epochs`; > 0 stops after this many optimizer steps",
    "max_length": "cutoff in tokens (prompt + completion)",
    "bf16": "used only where the GPU supports it; CPU runs in fp32",
    "save_steps": "checkpoint every N optimizer steps (a killed worker resumes from the last one)",
    "lora_target_modules": "all-linear, or a comma-separated list such as q_proj,v_proj",
    "loss": "cross-encoder only: bce (each pair alone) or listwise (one positive against group size - 1 negatives)",
    "group_size": "listwise loss: pairs per group (one positive, the rest the query's negatives)",
    "num_processes": "> 1 runs under accelerate launch on this many GPUs",
}


class TrainingLaunchForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    dataset_version = forms.ModelChoiceField(queryset=DatasetVersion.objects.none())
    preset = forms.ChoiceField(choices=[(k, p.title) for k, p in PRESETS.items()] + [("custom", "Custom")])

    def __init__(self, *args, preset: str = "released", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset_version"].queryset = (
            DatasetVersion.objects.filter(status=DatasetVersion.Status.READY).select_related("dataset").order_by("-id")
        )
        start = preset_values(preset) if preset in PRESETS else {}
        defaults = TrainingConfig()
        self.fields["preset"].initial = preset
        for name in EDITABLE_FIELDS:
            typ = FIELD_TYPES[name]
            initial = start.get(name, getattr(defaults, name))
            label = name.replace("_", " ")
            if name == "backbone":
                field = forms.ChoiceField(choices=[(b, b) for b in BACKBONES])
            elif name == "loss":
                field = forms.ChoiceField(choices=[(loss, loss) for loss in LOSSES])
            elif name == "lr_scheduler":
                field = forms.ChoiceField(choices=[(s, s) for s in SCHEDULERS])
            elif typ == "bool":
                field = forms.BooleanField(required=False)
            elif typ == "int":
                field = forms.IntegerField()
            elif typ == "float":
                field = forms.FloatField(widget=forms.NumberInput(attrs={"step": "any"}))
            else:
                field = forms.CharField(max_length=500)
            field.label = label
            field.initial = initial
            field.help_text = HELP.get(name, "")
            self.fields[name] = field

    def config_values(self) -> dict:
        return {name: self.cleaned_data[name] for name in EDITABLE_FIELDS if name in self.cleaned_data}
