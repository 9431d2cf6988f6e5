"""Evaluation API: thin views over the same services and selectors as the pages.
Reviewers read; admins import benchmarks, register models and launch eval runs."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from limrank_app.api.parsers import HardenedJSONParser
from limrank_app.api.permissions import IsReviewer, ReviewerReadAdminWrite
from limrank_app.jobs import job_resume

from .. import selectors, services
from ..benchmarks import BenchmarkFormatError, run_name_from_path
from ..models import Benchmark, EvalRun, ReferenceResult, RerankerModel
from ..views import run_file_response
from . import serializers as s


class BenchmarkViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Benchmarks. POST (admin, multipart) imports one: all-or-nothing, errors name file, line and field."""

    queryset = Benchmark.objects.all()
    serializer_class = s.BenchmarkSerializer
    permission_classes = [ReviewerReadAdminWrite]
    parser_classes = [MultiPartParser, FormParser, HardenedJSONParser]
    filterset_fields = ["format", "group"]

    @extend_schema(request=s.BenchmarkImportSerializer, responses={201: s.BenchmarkSerializer})
    def create(self, request, *args, **kwargs):
        inp = s.BenchmarkImportSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        d = inp.validated_data
        tmp = Path(tempfile.mkdtemp(prefix="limrank-api-import-"))

        def save(upload, dest):
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(dest, "wb") as fh:
                for chunk in upload.chunks():
                    fh.write(chunk)
            return dest

        gz = lambda u, base: base + (".gz" if u.name.endswith(".gz") else "")  # noqa: E731
        try:
            if d["format"] == "beir":
                if "corpus" not in d:
                    return Response({"corpus": ["BEIR needs a corpus"]}, status=400)
                save(d["corpus"], tmp / gz(d["corpus"], "corpus.jsonl"))
                save(d["queries"], tmp / gz(d["queries"], "queries.jsonl"))
                save(d["qrels"], tmp / "qrels" / "test.tsv")
                benches = services.benchmark_import_path(format="beir", path=tmp, name=d["name"])
            elif d["format"] == "trec":
                files = {"topics": save(d["queries"], tmp / gz(d["queries"], "topics")), "qrels": save(d["qrels"], tmp / "qrels")}
                if "run" in d:
                    files["run"] = save(d["run"], tmp / Path(d["run"].name).name)
                if "corpus" in d:
                    files["corpus"] = save(d["corpus"], tmp / Path(d["corpus"].name).name)
                benches = services.benchmark_import_path(format="trec", path=None, name=d["name"], files=files)
            else:
                if "changed_qrels" not in d:
                    return Response({"changed_qrels": ["FollowIR needs the changed-instruction qrels"]}, status=400)
                save(d["queries"], tmp / "queries.jsonl")
                save(d["qrels"], tmp / "qrels" / "og.tsv")
                save(d["changed_qrels"], tmp / "qrels" / "changed.tsv")
                if "corpus" in d:
                    save(d["corpus"], tmp / gz(d["corpus"], "corpus.jsonl"))
                if "run" in d:  # FollowIR's top_ranked.jsonl (qid, pid), a TREC run or a score.json
                    save(d["run"], tmp / ("top_ranked.jsonl" if d["run"].name.endswith(".jsonl") else "top_ranked.trec"))
                benches = services.benchmark_import_path(format="followir", path=tmp, name=d["name"])
        except BenchmarkFormatError as exc:
            return Response({"detail": f"nothing imported: {exc}", "file": Path(exc.file).name, "line": exc.line,
                             "field": exc.field}, status=status.HTTP_400_BAD_REQUEST)
        except services.EvaluationError as exc:
            return Response({"detail": f"nothing imported: {exc}"}, status=status.HTTP_400_BAD_REQUEST)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return Response(s.BenchmarkSerializer(benches[0]).data, status=status.HTTP_201_CREATED)


    @extend_schema(request=s.BenchmarkRunUploadSerializer, responses={201: dict})
    @action(detail=True, methods=["post"], url_path="runs", parser_classes=[MultiPartParser, FormParser])
    def runs(self, request, pk=None):
        """Attach a first-stage run (TREC or score.json) to this benchmark (admin)."""
        bench = self.get_object()
        inp = s.BenchmarkRunUploadSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        upload = inp.validated_data["file"]
        name = inp.validated_data.get("name") or run_name_from_path(upload.name)
        tmp = Path(tempfile.mkdtemp(prefix="limrank-api-run-"))
        try:
            path = tmp / Path(upload.name).name
            with open(path, "wb") as fh:
                for chunk in upload.chunks():
                    fh.write(chunk)
            services.benchmark_run_attach(benchmark=bench, name=name, path=path)
        except BenchmarkFormatError as exc:
            return Response({"detail": f"run not attached: {exc}", "file": Path(exc.file).name, "line": exc.line,
                             "field": exc.field}, status=status.HTTP_400_BAD_REQUEST)
        except services.EvaluationError as exc:
            return Response({"detail": f"run not attached: {exc}"}, status=status.HTTP_400_BAD_REQUEST)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return Response({"benchmark": bench.pk, "name": name, "first_stages": services.benchmark_first_stages(bench)},
                        status=status.HTTP_201_CREATED)


class RerankerModelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    queryset = RerankerModel.objects.all()
    serializer_class = s.RerankerModelSerializer
    permission_classes = [ReviewerReadAdminWrite]
    filterset_fields = ["kind"]

    def perform_create(self, serializer):
        d = serializer.validated_data
        serializer.instance = services.reranker_model_register(
            name=d["name"], kind=d["kind"], path=d.get("path", ""), base_model=d.get("base_model", ""),
            config=d.get("config") or {}, artifact=d.get("artifact"))


class EvalRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Eval runs. POST (admin) launches one on the gpu queue."""

    queryset = EvalRun.objects.select_related("benchmark", "model")
    serializer_class = s.EvalRunSerializer
    permission_classes = [ReviewerReadAdminWrite]
    filterset_fields = ["benchmark", "model", "status"]

    @extend_schema(request=s.EvalRunCreateSerializer, responses={201: s.EvalRunSerializer})
    def create(self, request, *args, **kwargs):
        inp = s.EvalRunCreateSerializer(data=request.data)
        inp.is_valid(raise_exception=True)
        try:
            data = dict(inp.validated_data)
            params = {"smoke": True} if data.pop("smoke", False) else {}
            run = services.eval_run_create(**data, params=params, created_by=request.user)
        except services.EvaluationError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(s.EvalRunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: s.EvalRunSerializer, 409: OpenApiResponse(description="succeeded, or running on a live worker"),
                                            503: OpenApiResponse(description="the broker is unreachable; the run stays queued")})
    @action(detail=True, methods=["post"], filterset_fields=None)
    def resume(self, request, pk=None):
        """Resume or retry a failed, cancelled or stuck eval run (admins)."""
        run = self.get_object()
        if not job_resume(run):
            return Response({"detail": f"eval run {run.pk} is {run.status}: nothing to resume"}, status=status.HTTP_409_CONFLICT)
        return Response(s.EvalRunSerializer(run).data)

    @extend_schema(responses=s.EvalQueryResultSerializer(many=True))
    @action(detail=True, methods=["get"])
    def queries(self, request, pk=None):
        run = self.get_object()
        page = self.paginate_queryset(run.query_results.order_by("id"))
        return self.get_paginated_response(s.EvalQueryResultSerializer(page, many=True).data)

    @extend_schema(responses={(200, "text/plain"): bytes, (200, "application/json"): dict},
                   parameters=[OpenApiParameter("side", str, enum=["og", "changed"], required=False),
                               OpenApiParameter("file_format", str, enum=["trec", "json"], required=False,
                                                description="trec (default) or json: score.json, {qid: {docid: score}}")])
    @action(detail=True, methods=["get"], url_path="run-file")
    def run_file(self, request, pk=None):
        run = self.get_object()
        side = "changed" if request.query_params.get("side") == "changed" else "og"
        as_json = request.query_params.get("file_format") == "json"
        try:
            scores = selectors.eval_run_file(run=run, side=side)
        except FileNotFoundError as exc:
            raise Http404(str(exc)) from None
        return run_file_response(scores, filename=f"evalrun-{run.pk}{'-changed' if side == 'changed' else ''}",
                                          as_json=as_json, tag=f"limrank-{run.model.name}-{run.first_stage}")


class ReferenceResultViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = ReferenceResult.objects.all()
    serializer_class = s.ReferenceResultSerializer
    permission_classes = [IsReviewer]
    filterset_fields = ["benchmark", "metric", "system"]


class LeaderboardView(APIView):
    """Models x benchmarks: measured cells (percent, with their eval run id) and reported figures (with citation)."""

    permission_classes = [IsReviewer]

    @extend_schema(responses={200: dict}, parameters=[OpenApiParameter("sort", str, required=False),
                                                       OpenApiParameter("dir", str, enum=["asc", "desc"], required=False),
                                                       OpenApiParameter("smoke", str, enum=["1"], required=False)])
    def get(self, request):
        board = selectors.leaderboard(sort=request.query_params.get("sort", ""),
                                      descending=request.query_params.get("dir", "desc") != "asc",
                                      include_smoke=request.query_params.get("smoke") == "1")
        columns = [{k: c[k] for k in ("key", "label", "group", "metric", "is_avg")} for c in board["columns"]]
        rows = [{**{k: r[k] for k in ("kind", "label", "first_stage", "citation", "url", "cells")},
                 "smoke": r.get("smoke", False)} for r in board["rows"]]
        return Response({"columns": columns, "rows": rows})
