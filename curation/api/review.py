"""The review workbench over JSON: claim the next example, submit, skip, undo; agreement for admins.
Thin views: an input serializer validates, a service acts, an output serializer answers. Authentication, permissions,
parsers and renderers are the project's defaults, as on every other endpoint."""
from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist, ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.api.audits import AuditVerdictOut, BlindClaimOut, BlindExampleOut
from curation.models import Audit, AuditVerdict, Dataset, Review
from curation.selectors import audits as audit_sel
from curation.selectors import review as sel
from curation.services import audits as audit_svc
from curation.services import review as svc
from limrank_app.api.permissions import IsAdmin, IsReviewer

# Ids are 64-bit in the database: a larger number is bad input (400), not a database overflow (500).
MAX_ID = 2**63 - 1


def _id_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


class ScopeIn(serializers.Serializer):
    dataset = _id_field(required=False)
    generation_run = _id_field(required=False)

    def validate(self, attrs):
        if bool(attrs.get("dataset")) == bool(attrs.get("generation_run")):
            raise serializers.ValidationError("give exactly one of dataset or generation_run")
        return attrs

    def scope(self) -> sel.ReviewScope:
        d = self.validated_data
        if d.get("dataset"):
            return sel.ReviewScope(dataset_id=d["dataset"])
        return sel.ReviewScope(run_id=d["generation_run"])


class NextIn(ScopeIn):
    audit = _id_field(required=False, help_text="work a blind audit round instead (the card hides the labels)")

    def validate(self, attrs):
        if sum(bool(attrs.get(k)) for k in ("dataset", "generation_run", "audit")) != 1:
            raise serializers.ValidationError("give exactly one of dataset, generation_run or audit")
        return attrs


def _audit(audit_id: int) -> Audit:
    audit = Audit.objects.select_related("dataset", "generation_run__dataset").filter(pk=audit_id).first()
    if audit is None:
        raise NotFound(f"no audit {audit_id}")
    return audit


class ClaimedExampleOut(BlindExampleOut):
    """What a reviewer sees: the example, never other reviewers' decisions."""

    class Meta(BlindExampleOut.Meta):
        fields = ["id", "dataset", "query", "instruction", "persona", "variant", "domain", "passage_title", "passage",
                  "intended_label", "reasoner_judgment", "judgment_votes", "reasoning_trace", "origin"]


class ClaimOut(serializers.Serializer):
    example = ClaimedExampleOut()
    expires_at = serializers.DateTimeField()


class SubmitIn(serializers.Serializer):
    example = _id_field()
    decision = serializers.ChoiceField(choices=Review.Decision.choices, required=False,
                                       help_text="approve or reject (a review); not with audit")
    audit = _id_field(required=False, help_text="a blind audit round: give verdict instead of decision")
    verdict = serializers.ChoiceField(choices=AuditVerdict.Verdict.choices, required=False,
                                      help_text="the auditor's answer (with audit)")
    reason_code = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=5)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    seconds_spent = serializers.FloatField(required=False, min_value=0, default=0)
    edits = serializers.DictField(required=False, allow_empty=True,
                                  help_text='e.g. {"query": "...", "passage": "...", "trace": "...", "label": true}')


    def validate(self, attrs):
        if attrs.get("audit"):
            if "verdict" not in attrs or "decision" in attrs or attrs.get("edits") or attrs.get("reason_code"):
                raise serializers.ValidationError("with audit, give verdict (and optionally reason), not decision, "
                                                  "reason_code or edits")
        elif "decision" not in attrs or "verdict" in attrs:
            raise serializers.ValidationError({"decision": "required (verdict goes with audit)"})
        return attrs


class ReviewOut(serializers.ModelSerializer):
    example_status = serializers.CharField(source="example.status")

    class Meta:
        model = Review
        fields = ["id", "example", "decision", "reason", "reason_code", "seconds_spent", "edits", "undone",
                  "created_at", "example_status"]


class ExampleIn(serializers.Serializer):
    example = _id_field()


class SkipIn(ExampleIn):
    audit = _id_field(required=False)


class Conflict(serializers.Serializer):
    detail = serializers.CharField()


def _valid(serializer_class, request) -> serializers.Serializer:
    ser = serializer_class(data=request.data)
    ser.is_valid(raise_exception=True)
    return ser


def _django_errors(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages})


def _conflict(exc: Exception) -> Response:
    return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)


@extend_schema(tags=["review"])
class ReviewNextView(APIView):
    """Claim the next example with a free review slot (or resume the one you hold)."""

    permission_classes = [IsReviewer]

    @extend_schema(request=NextIn, responses={200: PolymorphicProxySerializer(
        component_name="NextClaim", serializers=[ClaimOut, BlindClaimOut], resource_type_field_name=None),
        204: OpenApiResponse(description="nothing left to review"), 409: Conflict})
    def post(self, request):
        data = _valid(NextIn, request)
        if data.validated_data.get("audit"):
            audit = _audit(data.validated_data["audit"])
            try:
                claim = audit_svc.audit_claim_next(reviewer=request.user, audit=audit)
            except svc.ReviewError as exc:
                return _conflict(exc)
            if claim is None:
                return Response(status=status.HTTP_204_NO_CONTENT)
            example = audit_sel.audit_example_for_card(example_id=claim.example_id)
            return Response(BlindClaimOut({"audit": audit.pk, "example": example, "expires_at": claim.expires_at}).data)
        scope = data.scope()
        try:
            claim = svc.review_claim_next(reviewer=request.user, scope=scope)
        except ObjectDoesNotExist as exc:
            raise NotFound(str(exc)) from None
        if claim is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        example = sel.review_example_for_card(example_id=claim.example_id)
        return Response(ClaimOut({"example": example, "expires_at": claim.expires_at}).data)


@extend_schema(tags=["review"])
class ReviewSubmitView(APIView):
    """Approve or reject the example you hold (optionally with edits, saved as a revision)."""

    permission_classes = [IsReviewer]

    @extend_schema(request=SubmitIn, responses={201: PolymorphicProxySerializer(
        component_name="SubmitResult", serializers=[ReviewOut, AuditVerdictOut], resource_type_field_name=None),
        403: Conflict, 409: Conflict})
    def post(self, request):
        d = _valid(SubmitIn, request).validated_data
        if d.get("audit"):
            audit = _audit(d["audit"])
            try:
                verdict = audit_svc.audit_verdict_submit(reviewer=request.user, audit=audit, example=d["example"],
                                                         verdict=d["verdict"], reason=d["reason"],
                                                         seconds_spent=d["seconds_spent"])
            except svc.ClaimMissing as exc:
                raise PermissionDenied(str(exc)) from None
            except svc.ReviewError as exc:
                return _conflict(exc)
            except DjangoValidationError as exc:
                raise _django_errors(exc) from None
            return Response(AuditVerdictOut(verdict).data, status=status.HTTP_201_CREATED)
        try:
            review = svc.review_submit(reviewer=request.user, example=d["example"], decision=d["decision"],
                                       reason=d["reason"], reason_code=d.get("reason_code"),
                                       seconds_spent=d["seconds_spent"], edits=d.get("edits") or None)
        except svc.ClaimMissing as exc:
            raise PermissionDenied(str(exc)) from None
        except svc.ReviewError as exc:
            return _conflict(exc)
        except DjangoValidationError as exc:
            raise _django_errors(exc) from None
        return Response(ReviewOut(review).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["review"])
class ReviewSkipView(APIView):
    """Give the slot back; the example returns to you only after everything else."""

    permission_classes = [IsReviewer]

    @extend_schema(request=SkipIn, responses={204: None, 403: Conflict})
    def post(self, request):
        d = _valid(SkipIn, request).validated_data
        example = d["example"]
        try:
            if d.get("audit"):
                audit_svc.audit_skip(reviewer=request.user, audit=_audit(d["audit"]), example=example)
            else:
                svc.review_skip(reviewer=request.user, example=example)
        except svc.ClaimMissing as exc:
            raise PermissionDenied(str(exc)) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["review"])
class ReviewUndoView(APIView):
    """Undo your last decision in the scope; the example is claimed for you again."""

    permission_classes = [IsReviewer]

    @extend_schema(request=ScopeIn, responses={200: ReviewOut, 204: OpenApiResponse(description="nothing to undo"), 409: Conflict})
    def post(self, request):
        scope = _valid(ScopeIn, request).scope()
        try:
            review = svc.review_undo_last(reviewer=request.user, scope=scope.load())
        except ObjectDoesNotExist as exc:
            raise NotFound(str(exc)) from None
        except svc.ReviewError as exc:
            return _conflict(exc)
        if review is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(ReviewOut(review).data)


class AgreementIn(serializers.Serializer):
    dataset = _id_field(required=False)


class AgreementOut(serializers.Serializer):
    alpha = serializers.FloatField(allow_null=True)
    units = serializers.IntegerField()
    adjudicated = serializers.IntegerField()
    pairs = serializers.ListField(child=serializers.DictField())
    per_reviewer = serializers.DictField(child=serializers.DictField())


@extend_schema(tags=["review"])
class ReviewAgreementView(APIView):
    """Cohen's kappa per reviewer pair, Krippendorff's alpha and agreement with consensus (admins)."""

    permission_classes = [IsAdmin]

    @extend_schema(parameters=[OpenApiParameter("dataset", int, required=False, description="one dataset (default: all)")],
                   responses={200: AgreementOut}, request=None)
    def get(self, request):
        params = AgreementIn(data=request.query_params)
        params.is_valid(raise_exception=True)
        dataset = None
        if params.validated_data.get("dataset"):
            dataset = Dataset.objects.filter(pk=params.validated_data["dataset"]).first()
            if dataset is None:
                raise NotFound(f"no dataset {params.validated_data['dataset']}")
        return Response(AgreementOut(sel.review_agreement(dataset=dataset)).data)
