"""Training API: list/retrieve/launch/cancel jobs, list artifacts and presets. Reviewers read; admins launch."""
from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from limrank_app.api.permissions import ReviewerReadAdminWrite
from limrank_app.jobs import JobStatus, job_resume
from training import selectors, services
from training.models import TrainingJob
from training.presets import PRESETS, preset_values

from . import serializers as s


def _django_errors(exc: DjangoValidationError):
    return exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}


class TrainingJobFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=JobStatus.choices)
    backbone = django_filters.ChoiceFilter(choices=TrainingJob.Backbone.choices)
    dataset_version = django_filters.NumberFilter(field_name="dataset_version_id")

    class Meta:
        model = TrainingJob
        fields = []


class TrainingJobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    permission_classes = [ReviewerReadAdminWrite]
    filterset_class = TrainingJobFilter

    def get_queryset(self):
        return selectors.training_job_list().select_related("artifact")

    def get_serializer_class(self):
        if self.action == "create":
            return s.TrainingJobLaunchIn
        return s.TrainingJobDetailOut if self.action in ("retrieve", "cancel", "resume") else s.TrainingJobOut

    @extend_schema(request=s.TrainingJobLaunchIn, responses={201: s.TrainingJobDetailOut})
    def create(self, request, *args, **kwargs):
        data = s.TrainingJobLaunchIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        preset = v["preset"] if v["preset"] != "custom" else None
        try:
            job = services.training_job_create(
                dataset_version=v["dataset_version"], backbone=v.get("backbone"), base_model=v.get("base_model"),
                preset=preset, overrides=v.get("overrides") or {}, created_by=request.user,
                num_processes=v["num_processes"], name=v.get("name", ""),
            )
        except DjangoValidationError as exc:
            raise ValidationError(_django_errors(exc)) from None
        return Response(s.TrainingJobDetailOut(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: s.TrainingJobDetailOut, 409: OpenApiResponse(description="succeeded, or running on a live worker"),
                                            503: OpenApiResponse(description="the broker is unreachable; the job stays queued")})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Resume or retry a failed, cancelled or stuck job (admins)."""
        job = self.get_object()
        if not job_resume(job):
            return Response({"detail": f"job {job.pk} is {job.status}: nothing to resume"}, status=status.HTTP_409_CONFLICT)
        return Response(s.TrainingJobDetailOut(job).data)

    @extend_schema(request=None, responses={200: s.TrainingJobDetailOut})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = services.training_job_cancel(job=self.get_object())
        return Response(s.TrainingJobDetailOut(job).data)


class ModelArtifactViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [ReviewerReadAdminWrite]
    serializer_class = s.ModelArtifactOut

    def get_queryset(self):
        return selectors.model_artifact_list().prefetch_related("rerankers")


class TrainingPresetViewSet(viewsets.ViewSet):
    permission_classes = [ReviewerReadAdminWrite]
    pagination_class = None

    @extend_schema(responses={200: s.PresetOut(many=True)})
    def list(self, request):
        data = [{"name": p.name, "title": p.title, "description": p.description, "values": preset_values(p.name)}
                for p in PRESETS.values()]
        return Response(s.PresetOut(data, many=True).data)
