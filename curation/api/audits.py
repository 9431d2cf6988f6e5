"""Blind audit rounds over JSON: start one (admins), read its report card (admins), apply its verdicts (admins).
Reviewers work an audit through the review endpoints with {"audit": id} (curation/api/review.py)."""
from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.models import Audit, AuditVerdict, Dataset, Example, GenerationRun
from curation.selectors import audits as sel
from curation.services import audits as svc
from curation.services.review import ReviewError
from limrank_app.api.permissions import IsAdmin

MAX_ID = 2**63 - 1


def _id_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


def _django_errors(exc: DjangoValidationError) -> serializers.ValidationError:
    return serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages})


class AuditIn(serializers.Serializer):
    dataset = _id_field(required=False)
    generation_run = _id_field(required=False)
    size = serializers.IntegerField(min_value=1, max_value=svc.MAX_AUDIT_SIZE)
    seed = serializers.IntegerField(min_value=0, max_value=MAX_ID, default=0)
    double = serializers.IntegerField(min_value=0, max_value=svc.MAX_AUDIT_SIZE, default=0,
                                      help_text="how many sampled examples get two auditors (human agreement)")

    def validate(self, attrs):
        if bool(attrs.get("dataset")) == bool(attrs.get("generation_run")):
            raise serializers.ValidationError("give exactly one of dataset or generation_run")
        return attrs


class AuditOut(serializers.ModelSerializer):
    class Meta:
        model = Audit
        fields = ["id", "dataset", "generation_run", "size", "seed", "double", "state", "applied_at", "created_at"]


class BlindExampleOut(serializers.ModelSerializer):
    """The example as an auditor sees it before deciding: no intended label, reasoner judgment, votes or trace, no
    status (filtered out would tell the filter's verdict) and no passage kind (a hard negative tells the label).
    The review queue's ClaimedExampleOut adds those to it."""

    query = serializers.CharField(source="query.text")
    instruction = serializers.CharField(source="query.instruction")
    persona = serializers.CharField(source="query.persona.text", default=None)
    variant = serializers.CharField(source="query.variant")
    domain = serializers.CharField(source="query.domain")
    passage_title = serializers.CharField(source="passage.title")
    passage = serializers.CharField(source="passage.text")

    class Meta:
        model = Example
        fields = ["id", "query", "instruction", "persona", "variant", "domain", "passage_title", "passage", "origin"]


class BlindClaimOut(serializers.Serializer):
    audit = serializers.IntegerField()
    example = BlindExampleOut()
    expires_at = serializers.DateTimeField()


class AuditVerdictOut(serializers.ModelSerializer):
    audit = serializers.IntegerField(source="member.audit_id")
    example = serializers.IntegerField(source="member.example_id")

    class Meta:
        model = AuditVerdict
        fields = ["id", "audit", "example", "verdict", "reason", "seconds_spent", "created_at"]


class IntervalField(serializers.ListField):
    def __init__(self, **kwargs):
        super().__init__(child=serializers.FloatField(), allow_null=True, min_length=2, max_length=2, **kwargs)


class MetricsOut(serializers.Serializer):
    n = serializers.IntegerField()
    kept = serializers.IntegerField()
    correct = serializers.IntegerField()
    correct_and_kept = serializers.IntegerField()
    precision = serializers.FloatField(allow_null=True)
    recall = serializers.FloatField(allow_null=True)
    f1 = serializers.FloatField(allow_null=True)
    kappa = serializers.FloatField(allow_null=True)
    precision_ci = IntervalField()
    recall_ci = IntervalField()
    f1_ci = IntervalField(required=False)
    kappa_ci = IntervalField(required=False)


class BreakdownRowOut(MetricsOut):
    value = serializers.CharField()


class ReportOut(serializers.Serializer):
    audit = serializers.IntegerField()
    scope = serializers.DictField()
    size = serializers.IntegerField()
    seed = serializers.IntegerField()
    audited = serializers.IntegerField()
    state = serializers.CharField()
    applied_at = serializers.CharField(allow_null=True)
    precision = serializers.FloatField(allow_null=True)
    recall = serializers.FloatField(allow_null=True)
    f1 = serializers.FloatField(allow_null=True)
    kappa = serializers.FloatField(allow_null=True)
    precision_ci = IntervalField()
    recall_ci = IntervalField()
    f1_ci = IntervalField()
    kappa_ci = IntervalField()
    overall = MetricsOut()
    verdicts = serializers.DictField(child=serializers.IntegerField())
    breakdowns = serializers.DictField(child=BreakdownRowOut(many=True),
                                       help_text="by vote_agreement, origin, variant, domain, prompt_version, reasoner_model")
    human_agreement = serializers.DictField()
    threshold_curve = serializers.ListField(child=serializers.DictField())
    cost = serializers.DictField()


class ApplyOut(serializers.Serializer):
    changed = serializers.IntegerField()


@extend_schema(tags=["audits"])
class AuditListView(APIView):
    """Blind audit rounds of the LLM filter (admins)."""

    permission_classes = [IsAdmin]

    @extend_schema(responses={200: AuditOut(many=True)})
    def get(self, request):
        return Response(AuditOut(sel.audit_list()[:500], many=True).data)

    @extend_schema(request=AuditIn, responses={201: AuditOut})
    def post(self, request):
        ser = AuditIn(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        dataset = generation_run = None
        if d.get("dataset"):
            dataset = Dataset.objects.filter(pk=d["dataset"]).first()
            if dataset is None:
                raise serializers.ValidationError({"dataset": f"no dataset {d['dataset']}"})
        else:
            generation_run = GenerationRun.objects.filter(pk=d["generation_run"]).first()
            if generation_run is None:
                raise serializers.ValidationError({"generation_run": f"no generation run {d['generation_run']}"})
        try:
            audit = svc.audit_create(admin=request.user, dataset=dataset, generation_run=generation_run,
                                     size=d["size"], seed=d["seed"], double=d["double"])
        except DjangoValidationError as exc:
            raise _django_errors(exc) from None
        return Response(AuditOut(audit).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["audits"])
class AuditReportView(APIView):
    """The filter's report card: precision, recall, F1, Cohen's kappa with 95% intervals, breakdowns, human
    agreement, the vote-threshold curve and the cost per correctly kept example (admins)."""

    permission_classes = [IsAdmin]

    @extend_schema(responses={200: ReportOut})
    def get(self, request, pk: int):
        audit = get_object_or_404(Audit.objects.select_related("dataset", "generation_run"), pk=pk)
        return Response(ReportOut(sel.audit_report(audit=audit)).data)


@extend_schema(tags=["audits"])
class AuditApplyView(APIView):
    """Apply the audit's agreed verdicts to the examples' statuses and close it (admins)."""

    permission_classes = [IsAdmin]

    @extend_schema(request=None, responses={200: ApplyOut, 409: OpenApiResponse(description="already applied")})
    def post(self, request, pk: int):
        audit = get_object_or_404(Audit, pk=pk)
        try:
            changed = svc.audit_apply(admin=request.user, audit=audit)
        except ReviewError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response({"changed": changed})
