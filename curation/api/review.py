"""The review workbench over JSON: claim the next example, submit, skip, undo; agreement for admins.
Thin views: an input serializer validates, a service acts, an output serializer answers."""
from __future__ import annotations

import json
from functools import cache

from django.core.exceptions import ObjectDoesNotExist, ValidationError as DjangoValidationError
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import ISO_8601, serializers, status
from rest_framework.compat import LONG_SEPARATORS, SHORT_SEPARATORS
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from curation.models import Dataset, Example, Review
from curation.selectors import review as sel
from curation.services import review as svc
from limrank_app.api.authentication import bearer_key
from limrank_app.api.permissions import IsAdmin, IsReviewer


class _JSONOnly(BaseContentNegotiation):
    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class _ReviewJSONView(APIView):
    """The workbench's JSON endpoints speak JSON only: no content negotiation on every request."""

    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]
    content_negotiation_class = _JSONOnly


def _json_body(request):
    """The request's JSON object, or None for anything the full path should judge (and answer about)."""
    if request.content_type != "application/json":
        return None
    try:
        data = _DECODER.decode(request.body.decode())  # JSONParser is strict: no NaN/Infinity
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _no_constant(name):
    raise ValueError(name)


_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # one decoder: json.loads with an option builds one per call


@cache
def _on_postgresql() -> bool:
    """connection.vendor == "postgresql", asked once per process: `connection` finds the thread's connection through
    an asgiref Local on every use, a measurable part of a hot request (bench/RESULTS.md, session 7)."""
    return connections[DEFAULT_DB_ALIAS].vendor == "postgresql"


# JSONRenderer's encoder, built once: JSONRenderer().render builds one per call (json.dumps with cls=...).
_ENCODER = JSONRenderer.encoder_class(ensure_ascii=JSONRenderer.ensure_ascii, allow_nan=not JSONRenderer.strict,
                                      separators=SHORT_SEPARATORS if JSONRenderer.compact else LONG_SEPARATORS)


def _json_bytes(data) -> bytes:
    """JSONRenderer().render(data) for the hot answers (never indented: nothing is negotiated); tests compare them."""
    # As JSONRenderer: U+2028 and U+2029 escaped, so the answer is also valid JavaScript.
    return _ENCODER.encode(data).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


_ALLOW: dict[type, str] = {}  # a view's Allow header, as DRF answers it (its methods, found by 9 hasattr per request)


class _TokenFastPath(_ReviewJSONView):
    """claim-next and submit answer every decision of every reviewer. On PostgreSQL a token request with valid input
    is served in one statement (authentication joined to the action: services.review.*_by_token) and answered
    without DRF's request cycle, byte for byte as the full path answers it (tests compare). Anything else — session
    auth, a token the permissions refuse, bad input, an error answer — takes the full DRF path, which says why."""

    def dispatch(self, request, *args, **kwargs):
        if request.method == "POST" and _on_postgresql():
            key = bearer_key(request)
            data = _json_body(request) if key else None
            if data is not None:
                try:
                    answer = self.token_post(key, data)
                except (ValidationError, DjangoValidationError):
                    answer = None
                if answer is not None:
                    body, code = answer
                    response = HttpResponse(b"" if body is None else _json_bytes(body), status=code,
                                            content_type=JSONRenderer.media_type)
                    if body is None:  # as DRF answers an empty body
                        del response["Content-Type"]
                    response["Allow"] = _ALLOW.get(type(self)) or _ALLOW.setdefault(type(self), ", ".join(self.allowed_methods))
                    return response
        return super().dispatch(request, *args, **kwargs)

    def token_post(self, key: str, data: dict) -> tuple[dict | None, int] | None:
        raise NotImplementedError


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
        # By id: the row is read only if the service needs it (a missing one answers 404, see _not_found).
        d = self.validated_data
        if d.get("dataset"):
            return sel.ReviewScope(dataset_id=d["dataset"])
        return sel.ReviewScope(run_id=d["generation_run"])


# "next" and "submit" answer every action of every reviewer: their input is checked by these functions, with
# ScopeIn's and SubmitIn's rules and error shapes (the serializers document them in the schema and serve the
# other endpoints; a test sends the same bad input to both). A serializer per request costs more than the query.


def _object(data) -> dict:
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
    return data


def _positive_int(data: dict, key: str, errors: dict, *, required: bool = True) -> int | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            errors[key] = ["This field is required."]
        return None
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = int(value)
    except (TypeError, ValueError):
        errors[key] = ["A valid integer is required."]
        return None
    if number < 1:
        errors[key] = ["Ensure this value is greater than or equal to 1."]
    return number


def _scope_in(data) -> sel.ReviewScope:
    data, errors = _object(data), {}
    dataset = _positive_int(data, "dataset", errors, required=False)
    run = _positive_int(data, "generation_run", errors, required=False)
    if not errors and bool(dataset) == bool(run):
        errors["non_field_errors"] = ["give exactly one of dataset or generation_run"]
    if errors:
        raise ValidationError(errors)
    return sel.ReviewScope(dataset_id=dataset) if dataset else sel.ReviewScope(run_id=run)


def _submit_in(data) -> dict:
    """Types and presence; the service checks the values (decision, reason code, lengths) and names the field."""
    data, errors = _object(data), {}
    example = _positive_int(data, "example", errors)
    reason_code = _positive_int(data, "reason_code", errors, required=False)
    decision = data.get("decision")
    if decision is None:
        errors["decision"] = ["This field is required."]
    elif decision not in Review.Decision.values:
        errors["decision"] = [f'"{decision}" is not a valid choice.']
    reason = data.get("reason", "")
    if isinstance(reason, (int, float)) and not isinstance(reason, bool):
        reason = str(reason)
    if not isinstance(reason, str):
        errors["reason"] = ["Not a valid string."]
    seconds = data.get("seconds_spent", 0)
    try:
        if isinstance(seconds, bool):
            raise ValueError
        seconds = float(seconds)
        if seconds < 0:
            errors["seconds_spent"] = ["Ensure this value is greater than or equal to 0."]
    except (TypeError, ValueError):
        errors["seconds_spent"] = ["A valid number is required."]
    edits = data.get("edits")
    if edits is not None and not isinstance(edits, dict):
        errors["edits"] = [f'Expected a dictionary of items but got type "{type(edits).__name__}".']
    if errors:
        raise ValidationError(errors)
    return {"example": example, "reason_code": reason_code, "decision": decision, "reason": reason,
            "seconds_spent": seconds, "edits": edits}


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


_DATETIME = serializers.DateTimeField()


def _datetime_out(value) -> str:
    """DateTimeField's representation (ISO 8601 in the current time zone, Z for UTC; the tests compare the answers)
    with one time zone lookup: DRF's field makes several per call, a twentieth of a worker's time under load."""
    if api_settings.DATETIME_FORMAT != ISO_8601 or timezone.is_naive(value):
        return _DATETIME.to_representation(value)
    text = value.astimezone(timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def review_out(review: Review) -> dict:
    """ReviewOut's representation, built by hand for the hot submit path (a test compares the two)."""
    return _review_answer(id=review.pk, example_id=review.example_id, decision=review.decision, reason=review.reason,
                          reason_code=review.reason_code, seconds_spent=review.seconds_spent, edits=review.edits,
                          undone=review.undone, created_at=review.created_at, example_status=review.example.status)


def _review_answer(*, id, example_id, decision, reason, reason_code, seconds_spent, created_at, example_status,
                   edits=None, undone=False) -> dict:
    return {"id": id, "example": example_id, "decision": decision, "reason": reason, "reason_code": reason_code,
            "seconds_spent": seconds_spent, "edits": {} if edits is None else edits, "undone": undone,
            "created_at": _datetime_out(created_at), "example_status": example_status}


def _django_errors(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages})


class Conflict(serializers.Serializer):
    detail = serializers.CharField()


@extend_schema(tags=["review"])
class ReviewNextView(_TokenFastPath):
    """Claim the next example with a free review slot (or resume the one you hold)."""

    permission_classes = [IsReviewerRemembered]

    @extend_schema(request=ScopeIn, responses={200: ClaimOut, 204: OpenApiResponse(description="nothing left to review")})
    def post(self, request):
        try:
            claim = svc.review_claim_next(reviewer=request.user, scope=_scope_in(request.data))
        except ObjectDoesNotExist as exc:
            raise NotFound(str(exc)) from None
        if claim is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        # The card comes with the claim on PostgreSQL (one round trip). Built by hand in ClaimOut's shape (a test
        # compares them): this answers every "next", and DRF field setup costs more than the query.
        card = getattr(claim, "card", None) or sel.review_card(example_id=claim.example_id)
        return Response({"example": card, "expires_at": _datetime_out(claim.expires_at)})

    def token_post(self, key, data):
        claim = svc.review_claim_next_by_token(key=key, scope=_scope_in(data))
        if claim is svc.DECLINED:
            return None
        if claim is None:
            return None, status.HTTP_204_NO_CONTENT
        return {"example": claim.card, "expires_at": _datetime_out(claim.expires_at)}, status.HTTP_200_OK


@extend_schema(tags=["review"])
class ReviewSubmitView(_TokenFastPath):
    """Approve or reject the example you hold (optionally with edits, saved as a revision)."""

    permission_classes = [IsReviewerRemembered]

    @extend_schema(request=SubmitIn, responses={201: ReviewOut, 403: Conflict, 409: Conflict})
    def post(self, request):
        d = _submit_in(request.data)
        try:
            review = svc.review_submit(reviewer=request.user, example=d["example"], decision=d["decision"],
                                       reason=d["reason"], reason_code=d["reason_code"],
                                       seconds_spent=d["seconds_spent"], edits=d["edits"] or None)
        except svc.ClaimMissing as exc:
            raise PermissionDenied(str(exc)) from None
        except svc.ReviewError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except DjangoValidationError as exc:
            raise _django_errors(exc) from None
        return Response(review_out(review), status=status.HTTP_201_CREATED)

    def token_post(self, key, data):
        d = _submit_in(data)
        if d["edits"]:
            return None
        review = svc.review_submit_by_token(key=key, example=d["example"], decision=d["decision"], reason=d["reason"],
                                            reason_code=d["reason_code"], seconds_spent=d["seconds_spent"])
        return None if review is svc.DECLINED else (_review_answer(**review._asdict()), status.HTTP_201_CREATED)


@extend_schema(tags=["review"])
class ReviewSkipView(_ReviewJSONView):
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
class ReviewUndoView(_ReviewJSONView):
    """Undo your last decision in the scope; the example is claimed for you again."""

    permission_classes = [IsReviewerRemembered]

    @extend_schema(request=ScopeIn, responses={200: ReviewOut, 204: OpenApiResponse(description="nothing to undo"), 409: Conflict})
    def post(self, request):
        scope_in = ScopeIn(data=request.data)
        scope_in.is_valid(raise_exception=True)
        try:
            review = svc.review_undo_last(reviewer=request.user, scope=scope_in.scope().load())
        except ObjectDoesNotExist as exc:
            raise NotFound(str(exc)) from None
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
