"""Training API serializers: an input serializer for launching, output serializers for jobs and artifacts."""
from __future__ import annotations

from rest_framework import serializers

from curation.models import DatasetVersion
from training.models import ModelArtifact, TrainingJob
from training.presets import PRESETS


class TrainingJobLaunchIn(serializers.Serializer):
    dataset_version = serializers.PrimaryKeyRelatedField(queryset=DatasetVersion.objects.all())
    preset = serializers.ChoiceField(choices=[*PRESETS, "custom"], default="released",
                                     help_text="start from this preset; 'custom' starts from the dataclass defaults")
    backbone = serializers.ChoiceField(choices=TrainingJob.Backbone.choices, required=False)
    base_model = serializers.CharField(required=False, max_length=500, help_text="hub id (org/name) or local path")
    overrides = serializers.DictField(required=False, default=dict,
                                      help_text="any TrainingConfig field -> value, e.g. {\"learning_rate\": 3e-5}")
    num_processes = serializers.IntegerField(required=False, default=1, min_value=1, max_value=64,
                                             help_text=">1 runs under accelerate launch")
    name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class TrainingJobOut(serializers.ModelSerializer):
    dataset_version_label = serializers.CharField(source="dataset_version.__str__", read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    progress_percent = serializers.IntegerField(read_only=True)
    artifact = serializers.SerializerMethodField()

    class Meta:
        model = TrainingJob
        fields = [
            "id", "name", "status", "dataset_version", "dataset_version_label", "backbone", "base_model", "preset",
            "hyperparameters", "num_processes", "progress_done", "progress_total", "progress_percent", "attempts",
            "max_attempts", "cancel_requested", "error", "metrics", "output_dir", "artifact", "created_by",
            "created_at", "started_at", "finished_at",
        ]

    def get_artifact(self, obj) -> int | None:
        artifact = getattr(obj, "artifact", None)
        return artifact.pk if artifact else None


class TrainingJobDetailOut(TrainingJobOut):
    class Meta(TrainingJobOut.Meta):
        fields = [*TrainingJobOut.Meta.fields, "log"]


class ModelArtifactOut(serializers.ModelSerializer):
    rerankers = serializers.SerializerMethodField()

    class Meta:
        model = ModelArtifact
        fields = ["id", "name", "kind", "path", "base_model", "dataset_hash", "hyperparameters", "size_bytes",
                  "training_job", "rerankers", "created_at"]

    def get_rerankers(self, obj) -> list[int]:
        return [r.pk for r in obj.rerankers.all()]


class PresetOut(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    values = serializers.DictField()
