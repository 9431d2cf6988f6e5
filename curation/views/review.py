"""The reviewer's workbench (htmx) and the admin pages around it: dashboard, adjudication, browser, data quality.
Thin views: selectors read, services write."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from markdown_it import MarkdownIt

from curation.models import BulkDecision, Dataset, GenerationRun, ReviewClaim
from curation.selectors import aggregates
from curation.selectors import review as sel
from curation.services import review as svc
from limrank_app.jobs import job_resume
from limrank_app.middleware import params_problem
from limrank_app.paginator import CappedPaginator
from limrank_app.roles import admin_required, reviewer_required


def _scope(kind: str, scope_id: int) -> sel.ReviewScope:
    if kind == "run":
        return sel.ReviewScope(run=get_object_or_404(GenerationRun.objects.select_related("dataset"), pk=scope_id))
    return sel.ReviewScope(dataset=get_object_or_404(Dataset, pk=scope_id))


def _scope_urls(scope: sel.ReviewScope, example_id: int | None = None) -> dict:
    prefix = "curation:review_run_" if scope.kind == "run" else "curation:review_"
    urls = {
        "page": reverse(prefix + "queue", args=[scope.pk]),
        "next": reverse(prefix + "next", args=[scope.pk]),
        "undo": reverse(prefix + "undo", args=[scope.pk]),
    }
    if example_id is not None:
        urls["decide"] = reverse(prefix + "decide", args=[scope.pk, example_id])
        urls["skip"] = reverse(prefix + "skip", args=[scope.pk, example_id])
    return urls


def _guidelines_html(text: str) -> str:
    if not text.strip():
        return ""

    # CommonMark without raw HTML: guidelines are admin-written but still escaped.
    return MarkdownIt("commonmark", {"html": False}).render(text)


def _card_context(request, scope: sel.ReviewScope, claim, *, flash: str = "", undone=None) -> dict:
    ctx = {"scope": scope, "urls": _scope_urls(scope, claim.example_id if claim else None), "flash": flash, "reasons": sel.REJECT_REASONS.items(),
           "guidelines_html": _guidelines_html(scope.guidelines)}
    if claim is not None:
        example = sel.review_example_for_card(example_id=claim.example_id)
        ctx.update({"claim": claim, "example": example, "undone": undone})
    return ctx


def _render_card(request, scope, claim, *, flash: str = "", undone=None, status: int = 200):
    ctx = _card_context(request, scope, claim, flash=flash, undone=undone)
    ctx["oob"] = True  # the flash line lives outside the card and is updated out of band
    return render(request, "review/_card.html", ctx, status=status)


def _respond(request, scope, *, flash: str = "", error: str = "", status: int = 200, claim=None, undone=None):
    """htmx gets the next card in place; a plain form post goes back to the queue page."""
    if not request.headers.get("HX-Request"):
        if error:
            messages.error(request, error)
        elif flash:
            messages.success(request, flash)
        return redirect(_scope_urls(scope)["page"])
    if claim is None:
        claim = svc.review_claim_next(reviewer=request.user, scope=scope)
    return _render_card(request, scope, claim, flash=error or flash, undone=undone, status=status)


@reviewer_required
@require_GET
def review_index(request):
    return render(request, "review/index.html", sel.review_scopes_for(reviewer=request.user))


@reviewer_required
@require_GET
@never_cache
def review_queue(request, scope_id: int, kind: str = "dataset"):
    """The workbench page. A GET only reads: it shows the claim the reviewer holds, else a form whose POST (sent by
    htmx as the page loads) claims the next example, so prefetches and reloads never take a slot."""
    scope = _scope(kind, scope_id)
    claim = sel.review_claim_current(reviewer=request.user, scope=scope, now=timezone.now())
    ctx = _card_context(request, scope, claim)
    ctx["start"] = claim is None
    ctx["progress"] = sel.review_progress(scope=scope, reviewer=request.user)
    return render(request, "review/queue.html", ctx)


@reviewer_required
@require_POST
def review_next(request, scope_id: int, kind: str = "dataset"):
    scope = _scope(kind, scope_id)
    claim = svc.review_claim_next(reviewer=request.user, scope=scope)
    if claim is None and not request.headers.get("HX-Request"):
        return _respond(request, scope, error=f"Nothing left for you in {scope.label} right now.")
    return _respond(request, scope, claim=claim)


def _edits_from(post) -> dict:
    edits = {}
    for field in ("query", "passage", "trace"):
        if field in post:
            edits[field] = post[field]
    if post.get("label") in ("true", "false"):
        edits["label"] = post["label"] == "true"
    return edits


@reviewer_required
@require_POST
def review_decide(request, scope_id: int, example_id: int, kind: str = "dataset"):
    scope = _scope(kind, scope_id)
    if not scope.examples().filter(pk=example_id).exists():
        raise PermissionDenied("that example is not in this queue")
    decision = request.POST.get("decision", "")
    try:
        svc.review_submit(
            reviewer=request.user, example=example_id, decision=decision,
            reason=request.POST.get("reason", "")[:200], reason_code=request.POST.get("reason_code") or None,
            seconds_spent=request.POST.get("seconds_spent") or 0, edits=_edits_from(request.POST) if request.POST.get("edit") else None,
        )
    except svc.ClaimMissing as exc:
        raise PermissionDenied(str(exc)) from None
    except svc.ReviewError as exc:
        return _respond(request, scope, error=str(exc), status=409)
    except ValidationError as exc:
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()) if hasattr(exc, "error_dict") else " ".join(exc.messages)
        claim = svc.review_claim_next(reviewer=request.user, scope=scope)
        if request.headers.get("HX-Request"):
            return _render_card(request, scope, claim, flash=f"Not saved: {detail}", status=422)
        return _respond(request, scope, error=f"Not saved: {detail}")
    verb = "Approved" if decision == "approve" else "Rejected"
    edited = " with edits" if request.POST.get("edit") else ""
    return _respond(request, scope, flash=f"{verb} example {example_id}{edited}. Press u to undo.")


@reviewer_required
@require_POST
def review_skip(request, scope_id: int, example_id: int, kind: str = "dataset"):
    scope = _scope(kind, scope_id)
    try:
        svc.review_skip(reviewer=request.user, example=example_id)
    except svc.ClaimMissing as exc:
        raise PermissionDenied(str(exc)) from None
    return _respond(request, scope, flash=f"Skipped example {example_id}.")


NOUNS = {"approve": "approval", "reject": "rejection"}


@reviewer_required
@require_POST
def review_undo(request, scope_id: int, kind: str = "dataset"):
    scope = _scope(kind, scope_id)
    try:
        review = svc.review_undo_last(reviewer=request.user, scope=scope)
    except svc.ReviewError as exc:
        return _respond(request, scope, error=str(exc), status=409)
    if review is None:
        return _respond(request, scope, error="Nothing to undo.")
    claim = ReviewClaim.objects.get(example_id=review.example_id, reviewer=request.user, audit=None)
    return _respond(request, scope, claim=claim, undone=review,
                    flash=f"Undid your {NOUNS[review.decision]} of example {review.example_id}; decide again.")


# ---------------------------------------------------------------- admin pages


@admin_required
@require_GET
def review_dashboard(request):
    return render(request, "review/dashboard.html", aggregates.dashboard_cached())


@admin_required
def review_adjudicate(request):
    if request.method == "POST":
        try:
            example_id = int(request.POST.get("example", ""))
        except ValueError:
            return HttpResponse("example: a number is required", status=400)
        try:
            svc.example_adjudicate(admin=request.user, example=example_id, decision=request.POST.get("decision", ""),
                                   reason=request.POST.get("reason", "")[:200])
            messages.success(request, f"Example {example_id}: {request.POST.get('decision')}d.")
        except (svc.ReviewError, ValidationError) as exc:
            messages.error(request, f"Example {example_id}: {' '.join(getattr(exc, 'messages', [str(exc)]))}")
        return redirect(reverse("curation:review_adjudicate") + (f"?dataset={request.GET['dataset']}" if request.GET.get("dataset") else ""))
    dataset = None
    if request.GET.get("dataset", "").isdigit():
        dataset = get_object_or_404(Dataset, pk=int(request.GET["dataset"]))
    return render(request, "review/adjudicate.html", {
        "items": sel.adjudication_queue(dataset=dataset), "dataset": dataset,
        "datasets": Dataset.objects.order_by("name"), "reasons": sel.REJECT_REASONS,
    })


BROWSE_KEYS = ("dataset", "status", "origin", "variant", "domain", "prompt", "decision", "reviewer", "q", "sort")


@admin_required
def review_browse(request):
    source = request.POST if request.method == "POST" else request.GET
    if request.method == "POST":  # the query string's ids are checked by the request guard; the bulk form's here
        problem = params_problem(request.POST, where="form field")
        if problem:
            return HttpResponseBadRequest(problem[1])
    filters = {k: source.get(k, "") for k in BROWSE_KEYS}
    qs = sel.example_browse(filters=filters)
    if request.method == "POST":
        decision = request.POST.get("bulk_decision", "")
        if not any(filters[k] for k in BROWSE_KEYS if k != "sort"):
            messages.error(request, "Bulk decisions need at least one filter (refusing to decide every example).")
        else:
            try:
                job = svc.bulk_decision_request(admin=request.user, filters=filters, decision=decision,
                                                reason=request.POST.get("reason", "")[:200])
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                if not job.is_finished:  # large: a worker decides it; its page shows the progress
                    messages.info(request, f"Bulk {decision} queued: a worker decides the examples.")
                    return redirect("curation:review_bulk", pk=job.pk)
                if job.error:
                    messages.error(request, job.error)
                else:
                    messages.success(request, f"Bulk {decision}: {job.changed} examples changed.")
        query = "&".join(f"{k}={v}" for k, v in filters.items() if v)
        return redirect(reverse("curation:review_browse") + (f"?{query}" if query else ""))
    page = CappedPaginator(qs.select_related("query", "query__persona", "passage", "dataset"), 50).get_page(request.GET.get("page"))
    query = "&".join(f"{k}={v}" for k, v in filters.items() if v)
    return render(request, "review/browse.html", {"page": page, "filters": filters, "query": query, **sel.browse_choices()})


@admin_required
@require_GET
def review_quality(request):
    dataset = None
    if request.GET.get("dataset", "").isdigit():
        dataset = get_object_or_404(Dataset, pk=int(request.GET["dataset"]))
    cached = aggregates.quality_cached(dataset=dataset)
    return render(request, "review/quality.html", {
        "figures": cached["figures"], "charts": cached["charts"], "dataset": dataset,
        "datasets": Dataset.objects.order_by("name"), "generated_at": cached["as_of"], "as_of": cached["as_of"],
        "aggregate_cache_seconds": cached["aggregate_cache_seconds"],
    })


@admin_required
@never_cache
def review_bulk(request, pk: int):
    """A bulk decision run by a worker: its progress (polled by htmx until it finishes) and Resume when it failed."""
    job = get_object_or_404(BulkDecision.objects.select_related("requested_by"), pk=pk)
    if request.method == "POST":
        if job_resume(job):
            messages.info(request, f"Bulk decision {job.pk} queued again.")
        return redirect("curation:review_bulk", pk=pk)
    query = "&".join(f"{k}={v}" for k, v in job.filters.items() if v)
    context = {"job": job, "query": query}
    if request.headers.get("HX-Request"):
        return render(request, "review/_bulk_progress.html", context)
    return render(request, "review/bulk.html", context)
