"""Curation REST resources. Thin: serializers validate, services write, selectors read."""
from __future__ import annotations

import json
import os
import re

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.http import FileResponse, HttpResponse, HttpResponseNotModified, JsonResponse
from django.utils.http import parse_etags
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from curation import exports
from curation.api import filters
from curation.api import serializers as s
from curation.generation_params import FIELD_NAMES as GENERATION_FIELDS
from curation.generation_params import GenerationParams
from curation.models import BulkDecision, DatasetVersion, DatasetVersionBuild, GenerationRun, Persona, Review, SeedQuery
from curation.selectors import audits as audit_selectors
from curation.selectors import datasets as dataset_selectors
from curation.selectors import example_list
from curation.services import datasets as dataset_services
from curation.services import imports
from curation.services import review as review_services
from curation.services.generation import generation_run_create
from limrank_app.api.permissions import IsAdmin, IsReviewer, ReviewerReadAdminWrite
from limrank_app.jobs import job_resume
from limrank_app.roles import user_is_admin


def _django_errors(exc: DjangoValidationError) -> dict:
    return exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}


class ImportActionMixin:
    """`POST .../import/` with a multipart JSONL file: all-or-nothing, 400 naming the line and field."""

    def _import(self, request, fn, **kwargs):
        upload = kwargs.pop("file")
        try:
            result = fn(file=upload, filename=upload.name, **kwargs)
        except imports.ImportValidationError as exc:
            return Response(exc.as_dict(), status=status.HTTP_400_BAD_REQUEST)
        return Response(s.ImportResultSerializer(result.as_dict()).data, status=status.HTTP_201_CREATED)


_import_schema = dict(
    request={"multipart/form-data": s.ImportSerializer},
    responses={201: s.ImportResultSerializer, 400: s.ImportErrorSerializer},
)


@extend_schema_view(import_file=extend_schema(summary="Import personas (PersonaHub JSONL)", **_import_schema))
class PersonaViewSet(ImportActionMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Persona.objects.all()
    serializer_class = s.PersonaSerializer
    permission_classes = [ReviewerReadAdminWrite]
    filterset_class = filters.PersonaFilter

    @action(detail=False, methods=["post"], url_path="import", parser_classes=[MultiPartParser, FormParser])
    def import_file(self, request):
        data = self._validated(s.ImportSerializer, request)
        return self._import(request, imports.personas_import, file=data["file"], source=data["source"] or "personahub")

    def _validated(self, serializer_class, request):
        ser = serializer_class(data=request.data)
        ser.is_valid(raise_exception=True)
        return ser.validated_data


@extend_schema_view(import_file=extend_schema(summary="Import seed queries (MS MARCO TSV or JSONL)", **_import_schema))
class SeedQueryViewSet(PersonaViewSet):
    queryset = SeedQuery.objects.all()
    serializer_class = s.SeedQuerySerializer
    filterset_class = filters.SeedQueryFilter

    @action(detail=False, methods=["post"], url_path="import", parser_classes=[MultiPartParser, FormParser])
    def import_file(self, request):
        data = self._validated(s.ImportSerializer, request)
        return self._import(request, imports.seeds_import, file=data["file"], source=data["source"])


@extend_schema_view(
    import_file=extend_schema(
        summary="Import examples (Rank1 JSONL)",
        request={"multipart/form-data": s.ExampleImportSerializer},
        responses={201: s.ImportResultSerializer, 400: s.ImportErrorSerializer},
    )
)
class ExampleViewSet(ImportActionMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.ExampleSerializer
    permission_classes = [ReviewerReadAdminWrite]
    filterset_class = filters.ExampleFilter

    def get_queryset(self):
        viewer = None if getattr(self, "swagger_fake_view", False) else self.request.user
        return example_list(viewer=viewer).select_related("passage", "query", "dataset")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "reviews_visible": filters.example_reviews_visible_to_all(user=self.request.user)}

    @action(detail=False, methods=["post"], url_path="import", parser_classes=[MultiPartParser, FormParser])
    def import_file(self, request):
        ser = s.ExampleImportSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        if d["format"] != "studio":
            return self._import(request, imports.examples_import_authors, file=d["file"], format=d["format"],
                                dataset=d["dataset"], status=d["status"])
        return self._import(request, imports.examples_import, file=d["file"], origin=d["origin"], dataset=d["dataset"], status=d["status"])


class ReviewViewSet(viewsets.ReadOnlyModelViewSet):
    """Reviews: a reviewer sees their own, an admin sees all. Decisions are made through the review workbench."""

    serializer_class = s.ReviewSerializer
    permission_classes = [IsReviewer]
    filterset_class = filters.ReviewFilter

    def get_queryset(self):
        qs = Review.objects.select_related("reviewer")
        if getattr(self, "swagger_fake_view", False) or user_is_admin(self.request.user):
            return qs
        return qs.filter(reviewer=self.request.user)


class JobNotResumable(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "not_resumable"


class GenerationRunViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    queryset = GenerationRun.objects.select_related("created_by")
    serializer_class = s.GenerationRunSerializer
    permission_classes = [IsAdmin]
    filterset_class = filters.GenerationRunFilter

    @extend_schema(request=s.GenerationRunLaunchIn, responses={201: s.GenerationRunSerializer})
    def create(self, request, *args, **kwargs):
        """Start a generation run (queued on the `llm` queue); every parameter is optional."""
        inp = s.GenerationRunLaunchIn(data=request.data)
        inp.is_valid(raise_exception=True)
        data = inp.validated_data
        try:
            params = GenerationParams.build(**{k: v for k, v in data.items() if k in GENERATION_FIELDS})
            run = generation_run_create(created_by=request.user, name=data["name"], dataset=data["dataset"], params=params)
        except DjangoValidationError as exc:
            raise ValidationError(_django_errors(exc)) from None
        return Response(s.GenerationRunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: s.GenerationRunSerializer, 409: OpenApiResponse(description="succeeded, or running on a live worker"),
                                            503: OpenApiResponse(description="the broker is unreachable; the run stays queued")})
    @action(detail=True, methods=["post"], filterset_class=None)
    def resume(self, request, pk=None):
        """Resume or retry: a failed, cancelled or stuck run goes back to the queue and continues from what it wrote."""
        run = self.get_object()
        if not job_resume(run):
            raise JobNotResumable(f"run {run.pk} is {run.status}: nothing to resume")
        return Response(self.get_serializer(run).data)


class BulkDecisionViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Bulk approve / reject of the browser's filtered set (admins, as in the browser)."""

    queryset = BulkDecision.objects.select_related("requested_by").order_by("-id")
    serializer_class = s.BulkDecisionSerializer
    permission_classes = [IsAdmin]

    @extend_schema(request=s.BulkDecisionIn, responses={
        201: OpenApiResponse(s.BulkDecisionSerializer, description="decided in the request (`changed` examples)"),
        202: OpenApiResponse(s.BulkDecisionSerializer, description="queued for a worker: follow it at `url`"),
        400: OpenApiResponse(description="no filter, or an invalid decision")})
    def create(self, request, *args, **kwargs):
        inp = s.BulkDecisionIn(data=request.data)
        inp.is_valid(raise_exception=True)
        d = inp.validated_data
        try:
            job = review_services.bulk_decision_request(admin=request.user, filters=d["filters"],
                                                        decision=d["decision"], reason=d["reason"])
        except DjangoValidationError as exc:
            raise ValidationError(_django_errors(exc)) from None
        body = self.get_serializer(job).data
        if job.is_finished:
            return Response(body, status=status.HTTP_201_CREATED)
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})

    @extend_schema(request=None, responses={200: s.BulkDecisionSerializer,
                                            409: OpenApiResponse(description="succeeded, or running on a live worker")})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Resume a failed or lost bulk decision: examples already decided are not decided again."""
        job = self.get_object()
        if not job_resume(job):
            raise JobNotResumable(f"bulk decision {job.pk} is {job.status}: nothing to resume")
        return Response(self.get_serializer(job).data)


class DatasetViewSet(mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.DatasetSerializer
    permission_classes = [ReviewerReadAdminWrite]

    def get_queryset(self):
        return dataset_selectors.dataset_list().select_related("created_by").order_by("-id")

    def perform_create(self, serializer):
        try:
            serializer.instance = dataset_services.dataset_create(created_by=self.request.user, **serializer.validated_data)
        except DjangoValidationError as exc:
            raise ValidationError(_django_errors(exc)) from None

    def perform_update(self, serializer):
        try:
            serializer.instance = dataset_services.dataset_update(dataset=serializer.instance, **serializer.validated_data)
        except DjangoValidationError as exc:
            raise ValidationError(_django_errors(exc)) from None


# ---------------------------------------------------------------- dataset versions and their export


class _JsonBodyMixin:
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Only error bodies are rendered (an export answers with a streaming response of its own).
        return json.dumps(data).encode("utf-8")


class JSONLinesRenderer(_JsonBodyMixin, BaseRenderer):
    media_type = "application/x-ndjson"
    format = "jsonl"


class Rank1Renderer(_JsonBodyMixin, BaseRenderer):
    media_type = "application/x-ndjson"
    format = "rank1"


class ParquetRenderer(_JsonBodyMixin, BaseRenderer):
    media_type = "application/vnd.apache.parquet"
    format = "parquet"
    charset = None


EXPORT_RETRY_AFTER_S = 5  # what a client waiting for a version's files is told to wait between tries


_BYTE_RANGE = re.compile(r"(\d*)-(\d*)")
_UNSATISFIABLE = "unsatisfiable"


def _byte_range(header: str, size: int):
    """A single `bytes=` range of a `size`-byte body: (first, last) inclusive, _UNSATISFIABLE (answer 416), or
    None to ignore the header and send the whole body (another unit, or several ranges: RFC 9110 allows both)."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    if "," in spec:
        return None
    m = _BYTE_RANGE.fullmatch(spec.strip())
    if not m or not (m[1] or m[2]):
        return _UNSATISFIABLE
    if not m[1]:  # suffix: the last N bytes
        n = int(m[2])
        return (max(0, size - n), size - 1) if n and size else _UNSATISFIABLE
    first = int(m[1])
    last = int(m[2]) if m[2] else size - 1
    if (m[2] and last < first) or first >= size:
        return _UNSATISFIABLE
    return first, min(last, size - 1)


class _FileSlice:
    """`length` bytes of an unbuffered file from `offset`: read() for any WSGI server, and a descriptor positioned
    at `offset` for a server that sends it with sendfile (gunicorn bounds it by Content-Length)."""

    def __init__(self, file, offset: int, length: int):
        self._file = file
        self._left = length
        file.seek(offset)

    def read(self, size: int = -1) -> bytes:
        n = self._left if size is None or size < 0 else min(size, self._left)
        data = self._file.read(n) if n > 0 else b""
        self._left -= len(data)
        return data

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()


def _export_from_file(file, *, start: int, range_header: str | None, content_type: str, head: bool) -> HttpResponse:
    """The export (from row `start`) out of its rendered file, or the byte range asked of it; for HEAD, the
    headers alone."""
    try:
        size = os.fstat(file.fileno()).st_size
        base = exports.export_row_offset(file, start) if start else 0
        length = size - base
        span = _byte_range(range_header, length) if range_header else None
        if span == _UNSATISFIABLE:
            file.close()
            response = JsonResponse({"detail": "range not satisfiable"}, status=416)
            response["Content-Range"] = f"bytes */{length}"
            return response
        first, last = span or (0, length - 1)
        status_code = 206 if span else 200
        if head:
            file.close()
            response = HttpResponse(status=status_code, content_type=content_type)
        else:
            response = FileResponse(_FileSlice(file, base + first, last - first + 1), status=status_code,
                                    content_type=content_type)
            response.block_size = 1 << 20  # servers without sendfile read it in 1 MB blocks
    except BaseException:
        file.close()
        raise
    response["Content-Length"] = str(last - first + 1)
    if span:
        response["Content-Range"] = f"bytes {first}-{last}/{length}"
    return response


def _not_yet(detail: str, *, status_code: int, retry_after: int | None = None) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=status_code)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


class DatasetVersionViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Frozen versions: built (POST) from a filter and a mixing recipe, never changed afterwards."""

    serializer_class = s.DatasetVersionSerializer
    permission_classes = [ReviewerReadAdminWrite]
    filterset_class = filters.DatasetVersionFilter

    def get_queryset(self):
        return dataset_selectors.dataset_version_list()

    @extend_schema(
        request=s.DatasetVersionBuildSerializer,
        responses={201: s.DatasetVersionSerializer,
                   202: OpenApiResponse(s.DatasetVersionBuildJobSerializer, description=(
                       "more than LIMRANK_BULK_JOB_THRESHOLD members: the version is created (building) and a worker "
                       "writes its members; follow the job at its `url` (also the Location header)")),
                   400: OpenApiResponse(description="invalid filter or recipe, or not enough examples")},
    )
    def create(self, request, *args, **kwargs):
        ser = s.DatasetVersionBuildSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        try:
            version, job = dataset_services.dataset_version_request(
                dataset=d["dataset"], filters=d["filters"], recipe=d["recipe"], created_by=request.user, name=d["name"]
            )
        except DjangoValidationError as exc:
            raise ValidationError(_django_errors(exc)) from None
        if job is not None:
            body = s.DatasetVersionBuildJobSerializer(job, context=self.get_serializer_context()).data
            return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})
        return Response(self.get_serializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: s.DatasetVersionBuildJobSerializer,
                              404: OpenApiResponse(description="the version was built in the request: no job")},
                   filters=False)
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def build(self, request, pk=None):
        """The job writing a large version's members: status and progress (done / total)."""
        job = get_object_or_404(DatasetVersionBuild.objects.select_related("requested_by"), version=self.get_object())
        return Response(s.DatasetVersionBuildJobSerializer(job, context=self.get_serializer_context()).data)

    @extend_schema(request=None, responses={200: s.DatasetVersionBuildJobSerializer,
                                            409: OpenApiResponse(description="built, running on a live worker, or no job")},
                   filters=False)
    @action(detail=True, methods=["post"], pagination_class=None, filterset_class=None)
    def resume(self, request, pk=None):
        """Resume a failed or lost build (its worker died): queued again, it builds the same version."""
        version = self.get_object()
        if not dataset_services.dataset_version_build_resume(version=version):
            raise JobNotResumable(f"version {version.pk} is {version.status}: no build to resume")
        job = DatasetVersionBuild.objects.get(version=version)
        return Response(s.DatasetVersionBuildJobSerializer(job, context=self.get_serializer_context()).data)

    @extend_schema(responses=s.DatasheetSerializer, filters=False)
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def datasheet(self, request, pk=None):
        version = self.get_object()
        sheet = dataset_selectors.dataset_version_datasheet(version=version)
        sheet.update(audits=audit_selectors.audit_reports_for_version(version=version), diagnostics=version.diagnostics)
        return Response(s.DatasheetSerializer(sheet, context={"request": request}).data)

    @extend_schema(
        summary="Export the version: JSONL with every field, Rank1 training rows, or parquet",
        description=(
            "A version's files are rendered once, when it is built, and served from storage with byte ranges "
            "(Range, If-Range) to resume a download. While the version is building the answer is 409 with "
            "Retry-After; a ready version whose file is not (or no longer) there answers 202 and renders it."
        ),
        filters=False,
        parameters=[
            OpenApiParameter("format", str, enum=list(exports.FORMATS), description="jsonl (default), rank1 or parquet"),
            OpenApiParameter("offset", int, description="resume: skip the first N rows (jsonl and rank1)"),
            OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, description="the ETag (content hash) you have: 304 if unchanged"),
            OpenApiParameter("Range", str, OpenApiParameter.HEADER, description="one byte range, e.g. bytes=1048576- (of the export after `offset`)"),
            OpenApiParameter("If-Range", str, OpenApiParameter.HEADER, description="the ETag: apply Range only if it still matches"),
        ],
        responses={
            (200, "application/x-ndjson"): OpenApiTypes.BINARY,
            (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
            (206, "application/x-ndjson"): OpenApiTypes.BINARY,
            (206, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
            202: OpenApiResponse(description="the file is being rendered: try again after Retry-After seconds"),
            304: OpenApiResponse(description="the client's copy has this content hash"),
            400: OpenApiResponse(description="bad offset"),
            409: OpenApiResponse(description="the version is still building (Retry-After) or failed"),
            416: OpenApiResponse(description="the byte range is invalid or past the end (Content-Range: bytes */size)"),
        },
    )
    @action(
        detail=True, methods=["get"], url_path="export", url_name="export", pagination_class=None, filterset_class=None,
        renderer_classes=[JSONLinesRenderer, Rank1Renderer, ParquetRenderer],
    )
    def export(self, request, pk=None):
        version = self.get_object()
        fmt = request.accepted_renderer.format
        if version.status == DatasetVersion.Status.BUILDING:
            return _not_yet(f"version {version.pk} is still building: its files are being rendered; try again shortly",
                            status_code=409, retry_after=EXPORT_RETRY_AFTER_S)
        if version.status == DatasetVersion.Status.FAILED:
            return _not_yet(f"version {version.pk} failed to build: {version.error or 'no reason recorded'}",
                            status_code=409)
        etag = f'"{version.content_hash}"'
        # If-None-Match uses weak comparison: W/"x" matches "x".
        client_tags = {t.removeprefix("W/") for t in parse_etags(request.headers.get("If-None-Match", ""))}
        if etag in client_tags or "*" in client_tags:
            response = HttpResponseNotModified()
            response["ETag"] = etag
            return response
        offset = request.query_params.get("offset", "0")
        if not offset.isdigit() or (fmt == "parquet" and offset != "0"):
            raise ValidationError({"offset": "a non-negative row number (jsonl and rank1 only)"})
        start = int(offset)
        range_header = request.headers.get("Range")
        if range_header and request.headers.get("If-Range", etag).strip() != etag:  # strong comparison; dates never match
            range_header = None
        if range_header and _byte_range(range_header, 0) is None:  # another unit or several ranges: ignored
            range_header = None
        file = exports.export_open(version, fmt)
        if file is None:  # ready, but its file is gone from storage (or predates rendered files): render it again
            dataset_services.dataset_version_render_enqueue(version=version)
            return _not_yet(f"the {fmt} file of version {version.pk} is being rendered; try again shortly",
                            status_code=202, retry_after=EXPORT_RETRY_AFTER_S)
        response = _export_from_file(file, start=start, range_header=range_header,
                                     content_type=exports.MEDIA_TYPES[fmt], head=request.method == "HEAD")
        response["ETag"] = etag
        response["Accept-Ranges"] = "bytes"
        response["Content-Disposition"] = f'attachment; filename="{exports.export_filename(version, fmt)}"'
        response["X-Content-Hash"] = version.content_hash
        response["X-Row-Count"] = str(max(0, version.example_count - start))
        response["Cache-Control"] = "private, max-age=0"
        return response

    def handle_exception(self, exc):
        # Errors of the export action are JSON, whatever format was asked for.
        response = super().handle_exception(exc)
        if getattr(self, "action", None) == "export":
            self.request.accepted_renderer = JSONRenderer()
            self.request.accepted_media_type = "application/json"
        return response

