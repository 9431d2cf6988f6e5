"""Blind audit rounds in the browser: the list (reviewers work, admins start), the blind workbench (the same keys as
the review workbench, htmx), the report card (admins) and apply. Thin views: selectors read, services write."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from curation import audit_charts
from curation.models import Audit, AuditVerdict, Dataset, GenerationRun
from curation.selectors import audits as sel
from curation.services import audits as svc
from curation.services.review import ClaimMissing, ReviewError
from limrank_app.roles import admin_required, reviewer_required, user_is_admin

# Keys on the blind card: a = relevant; r, then 1-4 = not relevant or unusable (with the reason).
AUDIT_CHOICES = [
    (1, AuditVerdict.Verdict.NOT_RELEVANT, "Not relevant"),
    (2, AuditVerdict.Verdict.UNUSABLE, "Unusable: the query is unnatural or unclear"),
    (3, AuditVerdict.Verdict.UNUSABLE, "Unusable: the passage is broken or low quality"),
    (4, AuditVerdict.Verdict.UNUSABLE, "Unusable: other problem"),
]


BREAKDOWN_TITLES = [("vote_agreement", "By reasoner vote agreement"), ("origin", "By origin"),
                    ("variant", "By query variant"), ("domain", "By domain"), ("prompt_version", "By prompt versions"),
                    ("reasoner_model", "By reasoner model")]


def _audit(pk: int) -> Audit:
    return get_object_or_404(Audit.objects.select_related("dataset", "generation_run__dataset"), pk=pk)


def _int(value, name: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValidationError({name: f"a whole number is required, got {value!r}"}) from None
    if not 0 <= n < 2**63:
        raise ValidationError({name: f"out of range: {n}"})
    return n


@reviewer_required
def audit_list(request):
    """Open audits to work (reviewers); the form that starts one and the report links (admins)."""
    is_admin = user_is_admin(request.user)
    if request.method == "POST":
        if not is_admin:
            raise PermissionDenied("admins only")
        try:
            scope = request.POST.get("scope", "")
            kind, _, scope_id = scope.partition(":")
            scope_id = _int(scope_id, "scope")
            dataset = get_object_or_404(Dataset, pk=scope_id) if kind == "dataset" else None
            run = get_object_or_404(GenerationRun, pk=scope_id) if kind == "run" else None
            audit = svc.audit_create(admin=request.user, dataset=dataset, generation_run=run,
                                     size=_int(request.POST.get("size"), "size"),
                                     seed=_int(request.POST.get("seed") or 0, "seed"),
                                     double=_int(request.POST.get("double") or 0, "double"))
        except ValidationError as exc:
            detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()) if hasattr(exc, "error_dict") \
                else " ".join(exc.messages)
            messages.error(request, f"Audit not started: {detail}")
            return redirect("curation:audit_list")
        messages.success(request, f"Audit {audit.pk} started: {audit.size} examples sampled.")
        return redirect("curation:audit_list")
    audits = list(sel.audit_list()[:200])
    return render(request, "curation/audit_list.html", {
        "audits": audits, "is_admin": is_admin,
        "datasets": Dataset.objects.order_by("name") if is_admin else [],
        "runs": GenerationRun.objects.order_by("-id")[:50] if is_admin else [],
    })


def _card_context(request, audit: Audit, claim, *, flash: str = "") -> dict:
    ctx = {"audit": audit, "flash": flash, "choices": AUDIT_CHOICES,
           "revealed": sel.audit_last_verdict(reviewer=request.user, audit=audit),
           "next_url": reverse("curation:audit_next", args=[audit.pk])}
    if claim is not None:
        ctx.update({"claim": claim, "example": sel.audit_example_for_card(example_id=claim.example_id),
                    "decide_url": reverse("curation:audit_decide", args=[audit.pk, claim.example_id]),
                    "skip_url": reverse("curation:audit_skip", args=[audit.pk, claim.example_id])})
    return ctx


def _respond(request, audit: Audit, *, flash: str = "", status: int = 200):
    if not request.headers.get("HX-Request"):
        if flash:
            messages.info(request, flash)
        return redirect("curation:audit_workbench", pk=audit.pk)
    try:
        claim = svc.audit_claim_next(reviewer=request.user, audit=audit)
    except ReviewError as exc:
        claim, flash = None, str(exc)
    ctx = _card_context(request, audit, claim, flash=flash)
    ctx["oob"] = True
    return render(request, "curation/audit_card.html", ctx, status=status)


@reviewer_required
@require_GET
@never_cache
def audit_workbench(request, pk: int):
    """The blind workbench. A GET only reads (the claim is the POST htmx sends as the page loads)."""
    audit = _audit(pk)
    claim = sel.audit_claim_current(reviewer=request.user, audit=audit, now=timezone.now())
    ctx = _card_context(request, audit, claim)
    ctx.update({"start": claim is None and audit.state == Audit.State.OPEN,
                "progress": sel.audit_progress(audit=audit, reviewer=request.user)})
    return render(request, "curation/audit_workbench.html", ctx)


@reviewer_required
@require_POST
def audit_next(request, pk: int):
    return _respond(request, _audit(pk))


@reviewer_required
@require_POST
def audit_decide(request, pk: int, example_id: int):
    audit = _audit(pk)
    verdict, reason = request.POST.get("verdict", ""), request.POST.get("reason", "")[:200]
    code = request.POST.get("choice")
    for n, v, text in AUDIT_CHOICES:
        if code == str(n):
            verdict, reason = v, reason or text
    try:
        svc.audit_verdict_submit(reviewer=request.user, audit=audit, example=example_id, verdict=verdict,
                                 reason=reason, seconds_spent=request.POST.get("seconds_spent") or 0)
    except ClaimMissing as exc:
        raise PermissionDenied(str(exc)) from None
    except ReviewError as exc:
        return _respond(request, audit, flash=str(exc), status=409)
    except ValidationError as exc:
        return _respond(request, audit, flash=f"Not saved: {' '.join(exc.messages)}", status=422)
    return _respond(request, audit, flash=f"Recorded: example {example_id} is {dict(AuditVerdict.Verdict.choices)[verdict].lower()}.")


@reviewer_required
@require_POST
def audit_skip(request, pk: int, example_id: int):
    audit = _audit(pk)
    try:
        svc.audit_skip(reviewer=request.user, audit=audit, example=example_id)
    except ClaimMissing as exc:
        raise PermissionDenied(str(exc)) from None
    return _respond(request, audit, flash=f"Skipped example {example_id}.")


@admin_required
@require_GET
def audit_report(request, pk: int):
    audit = _audit(pk)
    report = sel.audit_report(audit=audit)
    return render(request, "curation/audit_report.html", {
        "audit": audit, "report": report, "progress": sel.audit_progress(audit=audit),
        "curve_svg": audit_charts.chart_threshold_curve(curve=report["threshold_curve"]),
        "breakdowns": [(key, title, report["breakdowns"][key]) for key, title in BREAKDOWN_TITLES],
    })


@admin_required
@require_POST
def audit_apply(request, pk: int):
    audit = _audit(pk)
    try:
        n = svc.audit_apply(admin=request.user, audit=audit)
        messages.success(request, f"Applied audit {audit.pk}: {n} examples changed status; the audit is closed.")
    except ReviewError as exc:
        messages.error(request, str(exc))
    return redirect("curation:audit_report", pk=audit.pk)
