"""Input serializers validate, output serializers answer; writes go through curation.services."""
from __future__ import annotations

from dataclasses import fields as dataclass_fields

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from curation.exports import FORMATS
from curation.generation_params import DEFAULTS, LIMITS, GenerationParams
from curation.models import (
    BulkDecision, Dataset, DatasetVersion, DatasetVersionBuild, Example, GeneratedQuery, GenerationRun, Passage, Persona,
    Review, SeedQuery,
)


class PersonaSerializer(serializers.ModelSerializer):
    class Meta:
        model = Persona
        fields = ["id", "text", "domain", "source", "text_hash", "created_at"]
        read_only_fields = fields


class SeedQuerySerializer(serializers.ModelSerializer):
    class Meta:
        model = SeedQuery
        fields = ["id", "external_id", "text", "source", "text_hash", "created_at"]
        read_only_fields = fields


class GeneratedQuerySerializer(serializers.ModelSerializer):
    class Meta:
        model = GeneratedQuery
        fields = ["id", "text", "instruction", "variant", "domain", "seed", "persona", "generation_run"]
        read_only_fields = fields


class PassageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Passage
        fields = ["id", "title", "text", "kind", "source"]
        read_only_fields = fields


class ExampleSerializer(serializers.ModelSerializer):
    query = GeneratedQuerySerializer(read_only=True)
    passage = PassageSerializer(read_only=True)
    judgment_agrees = serializers.BooleanField(read_only=True, allow_null=True)
    reviews_done = serializers.SerializerMethodField(
        help_text="live reviews so far; null for a reviewer on a dataset that needs more than one review (blind review)"
    )

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_reviews_done(self, obj) -> int | None:
        if self.context.get("reviews_visible", True):
            return obj.reviews_done
        dataset = obj.dataset
        return obj.reviews_done if dataset is None or dataset.reviews_required <= 1 else None

    class Meta:
        model = Example
        fields = [
            "id", "dataset", "status", "origin", "query", "passage", "intended_label", "reasoning_trace",
            "reasoner_judgment", "judgment_agrees", "judgment_votes", "filter_reason", "generation_run",
            "prompt_versions", "reasoner_model", "content_hash", "reviews_done", "created_at", "updated_at",
        ]
        read_only_fields = fields


class ReviewSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.username", read_only=True)

    class Meta:
        model = Review
        fields = [
            "id", "example", "reviewer", "decision", "edits", "reason", "reason_code", "seconds_spent",
            "is_adjudication", "undone", "created_at",
        ]
        read_only_fields = fields


def _generation_param_field(f) -> serializers.Field:
    """A GenerationParams field as an input field, with the dataclass's default and limits."""
    lo, hi = LIMITS.get(f.name, (None, None))
    default = getattr(DEFAULTS, f.name)
    if f.type in ("int", int):
        return serializers.IntegerField(min_value=lo, max_value=hi, default=default)
    if f.type in ("float", float):
        return serializers.FloatField(min_value=lo, max_value=hi, default=default)
    return serializers.CharField(max_length=200, allow_blank=True, default=default)


# Input of POST /api/generation-runs/: where the examples go, and every GenerationParams field (all optional).
GenerationRunLaunchIn = type("GenerationRunLaunchIn", (serializers.Serializer,), {
    "name": serializers.CharField(max_length=200, allow_blank=True, default=""),
    "dataset": serializers.PrimaryKeyRelatedField(queryset=Dataset.objects.all(), allow_null=True, default=None),
    **{f.name: _generation_param_field(f) for f in dataclass_fields(GenerationParams)},
})


class GenerationRunSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)
    progress_percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = GenerationRun
        fields = [
            "id", "name", "dataset", "status", "progress_done", "progress_total", "progress_percent", "attempts",
            "max_attempts", "error", "params", "stats", "cancel_requested", "created_by", "created_at", "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class DatasetSerializer(serializers.ModelSerializer):
    """Output, and input for create/update (the service validates again with full_clean)."""

    example_total = serializers.IntegerField(read_only=True, default=0)
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Dataset
        fields = [
            "id", "name", "description", "guidelines", "reviews_required", "claim_minutes", "example_total",
            "created_by", "created_at",
        ]
        read_only_fields = ["id", "example_total", "created_by", "created_at"]
        extra_kwargs = {"reviews_required": {"min_value": 1, "max_value": 20}, "claim_minutes": {"min_value": 1, "max_value": 1440}}


class DatasetVersionSerializer(serializers.ModelSerializer):
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)
    export_urls = serializers.SerializerMethodField()

    class Meta:
        model = DatasetVersion
        fields = [
            "id", "dataset", "dataset_name", "version", "name", "filters", "recipe", "content_hash", "example_count",
            "status", "error", "created_by", "created_at", "export_urls",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "string", "format": "uri"}})
    def get_export_urls(self, obj) -> dict:
        base = reverse("api-dataset-version-export", args=[obj.pk])
        request = self.context.get("request")
        url = request.build_absolute_uri(base) if request else base
        return {fmt: f"{url}?format={fmt}" for fmt in FORMATS}


_JOB_FIELDS = ["status", "progress_done", "progress_total", "progress_percent", "attempts", "max_attempts", "error",
               "requested_by", "created_at", "started_at", "finished_at"]


class DatasetVersionBuildJobSerializer(serializers.ModelSerializer):
    """The job that writes a large version's members; `url` is where to follow it."""

    requested_by = serializers.CharField(source="requested_by.username", read_only=True, allow_null=True, default=None)
    progress_percent = serializers.IntegerField(read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = DatasetVersionBuild
        fields = ["id", "version", "url", *_JOB_FIELDS]
        read_only_fields = fields

    def get_url(self, obj) -> str:
        url = reverse("api-dataset-version-build", args=[obj.version_id])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class BulkDecisionSerializer(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, allow_null=True, default=None)
    progress_percent = serializers.IntegerField(read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = BulkDecision
        fields = ["id", "url", "filters", "decision", "reason", "changed", *_JOB_FIELDS]
        read_only_fields = fields

    def get_url(self, obj) -> str:
        url = reverse("api-bulk-decision-detail", args=[obj.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class BulkDecisionIn(serializers.Serializer):
    """Approve or reject the examples the browser's filters select (at least one filter). More than
    LIMRANK_BULK_JOB_THRESHOLD examples: queued for a worker (202); fewer: decided in the request (201)."""

    filters = serializers.DictField(child=serializers.CharField(allow_blank=True), help_text=(
        'the browser\'s filters: dataset, status, origin, variant, domain, prompt ("reasoner:2"), decision, reviewer, '
        'q (full-text search), e.g. {"dataset": "3", "status": "pending_review"}'))
    decision = serializers.ChoiceField(choices=Review.Decision.choices)
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class DatasetVersionBuildSerializer(serializers.Serializer):
    """A build request. `filters` keys: status (default ["approved"], or "any"), origin, variant, domain,
    label, prompt_versions ({"reasoner": 2}), reasoner_model, generation_run, datasets (ids or names; default
    this dataset; "all"). `recipe`: {"seed": int, "mix": {"rank1": 14000, "synthetic": 6000}, "shuffle": true};
    without `mix` every matching example is taken."""

    dataset = serializers.PrimaryKeyRelatedField(queryset=Dataset.objects.all())
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    filters = serializers.DictField(required=False, default=dict)
    recipe = serializers.DictField(required=False, default=dict)


class ImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JSONL (personas, examples) or JSONL / qid<TAB>query TSV (seed queries)")
    source = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class ExampleImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text='JSONL: {"query","passage","reasoning","label",...} or alpaca-style Rank1 rows; '
                                           "with format rank1-hf / limrank-hf, the authors' released file (parquet, JSONL, JSON array)")
    format = serializers.ChoiceField(choices=["studio", "rank1-hf", "limrank-hf"], default="studio",
                                     help_text="rank1-hf / limrank-hf: the authors' published schema (origin rank1 / synthetic)")
    origin = serializers.ChoiceField(choices=[Example.Origin.RANK1, Example.Origin.IMPORTED], default=Example.Origin.RANK1)
    dataset = serializers.PrimaryKeyRelatedField(queryset=Dataset.objects.all(), required=False, allow_null=True, default=None)
    status = serializers.ChoiceField(choices=Example.Status.choices, required=False, allow_null=True, default=None)


class ImportResultSerializer(serializers.Serializer):
    kind = serializers.CharField()
    filename = serializers.CharField()
    lines = serializers.IntegerField()
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    details = serializers.DictField()


class ImportErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="the whole message: file, line, field, what is wrong")
    message = serializers.CharField()
    line = serializers.IntegerField(allow_null=True)
    field = serializers.CharField(allow_blank=True)
    filename = serializers.CharField(allow_blank=True)


@extend_schema_field(OpenApiTypes.OBJECT)
class _AnyObject(serializers.DictField):
    pass


class DatasheetSerializer(serializers.Serializer):
    version = DatasetVersionSerializer()
    total = serializers.IntegerField()
    by_origin = serializers.ListField(child=serializers.ListField())
    by_variant = serializers.ListField(child=serializers.ListField())
    by_domain = serializers.ListField(child=serializers.ListField())
    by_label = serializers.ListField(child=serializers.ListField())
    by_origin_label = serializers.ListField(child=serializers.ListField())
    prompt_versions = serializers.ListField(child=serializers.ListField())
    reasoner_models = serializers.ListField(child=serializers.ListField())
    judgment_agrees = serializers.IntegerField()
    judged = serializers.IntegerField()
    reviewers = serializers.ListField(child=_AnyObject())
    agreement = _AnyObject()
    audits = serializers.ListField(child=_AnyObject(), required=False,
                                   help_text="report cards of the blind audits that sampled this version's examples")
    diagnostics = _AnyObject(required=False, help_text="shortcut AUCs, near-duplicates, contamination (curation.diagnostics)")
