"""The review workbench over JSON: claim the next example, submit, skip, undo; agreement for admins.
Thin views: an input serializer validates, a service acts, an output serializer answers."""
from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from curation.models import Dataset, Example, GenerationRun, Review
from curation.selectors import review as sel
from curation.services import review as svc
from limrank_app.api.permissions import IsAdmin, IsReviewer


class IsReviewerRemembered(IsReviewer):
    """IsReviewer, remembering the answer on the request's user so the service does not ask the database again."""

    def has_permission(self, request, view):
        ok = super().has_permission(request, view)
        if ok:
            request.user._limrank_is_reviewer = True
        return ok


class ScopeIn(serializers.Serializer):
    dataset = serializers.IntegerField(required=False, min_value=1)
    generation_run = serializers.IntegerField(required=False, min_value=1)

    def validate(self, attrs):
        if bool(attrs.get("dataset")) == bool(attrs.get("generation_run")):
            raise serializers.ValidationError("give exactly one of dataset or generation_run")
        return attrs

    def scope(self) -> sel.ReviewScope:
        d = self.validated_data
        if d.get("dataset"):
            return sel.ReviewScope(dataset=get_object_or_404(Dataset, pk=d["dataset"]))
        return sel.ReviewScope(run=get_object_or_404(GenerationRun.objects.select_related("dataset"), pk=d["generation_run"]))


class ClaimedExampleOut(serializers.ModelSerializer):
    """What a reviewer sees: the example, never other reviewers' decisions."""

    query = serializers.CharField(source="query.text")
    instruction = serializers.CharField(source="query.instruction")
    persona = serializers.CharField(source="query.persona.text", default=None)
    variant = serializers.CharField(source="query.variant")
    domain = serializers.CharField(source="query.domain")
    passage_title = serializers.CharField(source="passage.title")
    passage = serializers.CharField(source="passage.text")

    class Meta:
        model = Example
        fields = ["id", "dataset", "query", "instruction", "persona", "variant", "domain", "passage_title", "passage",
                  "intended_label", "reasoner_judgment", "judgment_votes", "reasoning_trace", "origin"]


class ClaimOut(serializers.Serializer):
    example = ClaimedExampleOut()
    expires_at = serializers.DateTimeField()


class SubmitIn(serializers.Serializer):
    example = serializers.IntegerField(min_value=1)
    decision = serializers.ChoiceField(choices=Review.Decision.choices)
    reason_code = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=5)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    seconds_spent = serializers.FloatField(required=False, min_value=0, default=0)
    edits = serializers.DictField(required=False, allow_empty=True,
                                  help_text='e.g. {"query": "...", "passage": "...", "trace": "...", "label": true}')


class ReviewOut(serializers.ModelSerializer):
    example_status = serializers.CharField(source="example.status")

    class Meta:
        model = Review
        fields = ["id", "example", "decision", "reason", "reason_code", "seconds_spent", "edits", "undone",
                  "created_at", "example_status"]


class ExampleIn(serializers.Serializer):
    example = serializers.IntegerField(min_value=1)


def _django_errors(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages})


class Conflict(serializers.Serializer):
    detail = serializers.CharField()


@extend_schema(tags=["review"])
class ReviewNextView(APIView):
    """Claim the next example with a free review slot (or resume the one you hold)."""

    permission_classes = [IsReviewerRemembered]

    @extend_schema(request=ScopeIn, responses={200: ClaimOut, 204: OpenApiResponse(description="nothing left to review")})
    def post(self, request):
        scope_in = ScopeIn(data=request.data)
        scope_in.is_valid(raise_exception=True)
        claim = svc.review_claim_next(reviewer=request.user, scope=scope_in.scope())
        if claim is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        example = sel.review_example_for_card(example_id=claim.example_id)
        # Built by hand (same shape as ClaimOut): this answers every "next", and DRF field setup costs more than the query.
        q, p = example.query, example.passage
        return Response({"example": {
            "id": example.pk, "dataset": example.dataset_id, "query": q.text, "instruction": q.instruction,
            "persona": q.persona.text if q.persona_id else None, "variant": q.variant, "domain": q.domain,
            "passage_title": p.title, "passage": p.text, "intended_label": example.intended_label,
            "reasoner_judgment": example.reasoner_judgment, "judgment_votes": example.judgment_votes,
            "reasoning_trace": example.reasoning_trace, "origin": example.origin,
        }, "expires_at": serializers.DateTimeField().to_representation(claim.expires_at)})


@extend_schema(tags=["review"])
class ReviewSubmitView(APIView):
    """Approve or reject the example you hold (optionally with edits, saved as a revision)."""

    permission_classes = [IsReviewerRemembered]

    @extend_schema(request=SubmitIn, responses={201: ReviewOut, 403: Conflict, 409: Conflict})
    def post(self, request):
        data = SubmitIn(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        try:
            review = svc.review_submit(reviewer=request.user, example=d["example"], decision=d["decision"],
                                       reason=d.get("reason", ""), reason_code=d.get("reason_code"),
                                       seconds_spent=d.get("seconds_spent", 0), edits=d.get("edits") or None)
        except svc.ClaimMissing as exc:
            raise PermissionDenied(str(exc)) from None
        except svc.ReviewError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except DjangoValidationError as exc:
            raise _django_errors(exc) from None
        return Response(ReviewOut(review).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["review"])
class ReviewSkipView(APIView):
    """Give the slot back; the example returns to you only after everything else."""

    permission_classes = [IsReviewerRemembered]

    @extend_schema(request=ExampleIn, responses={204: None, 403: Conflict})
    def post(self, request):
        data = ExampleIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            svc.review_skip(reviewer=request.user, example=data.validated_data["example"])
        except svc.ClaimMissing as exc:
            raise PermissionDenied(str(exc)) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["review"])
class ReviewUndoView(APIView):
    """Undo your last decision in the scope; the example is claimed for you again."""

    permission_classes = [IsReviewerRemembered]

    @extend_schema(request=ScopeIn, responses={200: ReviewOut, 204: OpenApiResponse(description="nothing to undo"), 409: Conflict})
    def post(self, request):
        scope_in = ScopeIn(data=request.data)
        scope_in.is_valid(raise_exception=True)
        try:
            review = svc.review_undo_last(reviewer=request.user, scope=scope_in.scope())
        except svc.ReviewError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        if review is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        review.example = Example.objects.only("id", "status").get(pk=review.example_id)
        return Response(ReviewOut(review).data)


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
        dataset = None
        if request.query_params.get("dataset"):
            try:
                dataset = get_object_or_404(Dataset, pk=int(request.query_params["dataset"]))
            except ValueError:
                raise ValidationError({"dataset": "must be a dataset id"}) from None
        return Response(AgreementOut(sel.review_agreement(dataset=dataset)).data)
