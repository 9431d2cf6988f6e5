"""Writes of the reviewer's workbench: claim the next example, submit, skip, undo, edit as a revision,
adjudicate and bulk-decide. Keyword-only arguments, one transaction each.

Concurrency: every write that changes an example's review slots locks the example row first
(`SELECT ... FOR UPDATE [SKIP LOCKED]` on PostgreSQL). The queue query skips rows another reviewer is
claiming right now, then re-counts the slots in a fresh statement once the row lock is held, so two
reviewers never take the same slot. SQLite has no row locks; there the project opens every transaction
with BEGIN IMMEDIATE (settings: transaction_mode), which serializes writers, so the same re-count is exact."""
from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from curation.hashing import example_content_hash, text_hash
from curation.models import BulkDecision, Example, ExampleRevision, GeneratedQuery, Passage, Review, ReviewClaim
from curation.services.bulk import bulk_reviews_insert_select
from curation.selectors.review import (
    DEFAULT_CLAIM_MINUTES, REJECT_REASONS, ReviewScope, claim_is_skip, review_claim_current, review_queue_candidates,
    example_browse, review_required_for, review_slot_free,
)
from limrank_app.jobs import JobStatus, job_claim, job_enqueue_on_commit, job_finish, job_progress_detached
from limrank_app.roles import user_is_admin, user_is_reviewer
from limrank_app.text import text_problem


class ReviewError(Exception):
    """A review action that cannot happen in the example's current state (HTTP 409)."""


class ClaimMissing(ReviewError):
    """The reviewer holds no claim on the example: it is not theirs to act on (HTTP 403)."""


class ClaimExpired(ReviewError):
    """The claim ran out and its slot went to another reviewer."""


# Editable fields as the workbench names them -> canonical names stored in revisions.
EDIT_FIELDS = {"query": "query", "passage": "passage", "trace": "reasoning_trace",
               "reasoning_trace": "reasoning_trace", "label": "intended_label", "intended_label": "intended_label"}


def _locking(qs: QuerySet, *, wait: bool) -> QuerySet:
    """Lock the queue's candidate row: skipping rows other reviewers hold locked, or (wait) waiting for them."""
    features = connection.features
    of = ("self",) if features.has_select_for_update_of else ()
    if features.has_select_for_update_skip_locked and not wait:
        return qs.select_for_update(skip_locked=True, of=of)
    if features.has_select_for_update:
        return qs.select_for_update(of=of)
    return qs  # SQLite: the IMMEDIATE transaction already holds the database's write lock


def _lock_example(example_id: int) -> Example:
    """Lock one example (its dataset read along, not locked)."""
    qs = Example.objects.filter(pk=example_id).select_related("dataset")
    if connection.features.has_select_for_update_of:
        qs = qs.select_for_update(of=("self",))
    elif connection.features.has_select_for_update:
        qs = qs.select_for_update()
    try:
        return qs.get()
    except Example.DoesNotExist:
        raise ReviewError(f"example {example_id} does not exist") from None


def _require_reviewer(user) -> None:
    if not user_is_reviewer(user):
        raise PermissionDenied("reviewers only")


def _require_admin(user) -> None:
    if not user_is_admin(user):
        raise PermissionDenied("admins only")


def review_claim_next(*, reviewer, scope: ReviewScope, now: datetime | None = None) -> ReviewClaim | None:
    """Give the reviewer an example with a free slot and hold that slot for the scope's claim minutes.

    Resumes the reviewer's own unexpired claim first; examples the reviewer skipped come last.
    Returns None when nothing in the scope needs this reviewer; DoesNotExist when the scope does not exist."""
    _require_reviewer(reviewer)
    now = now or timezone.now()
    expires = now + timedelta(minutes=scope.load().claim_minutes)
    return claim_resume_or_next(
        current=lambda: review_claim_current(reviewer=reviewer, scope=scope, now=now),
        first_free=lambda include_skipped, wait: _claim_first_free(
            reviewer=reviewer, scope=scope, now=now, expires=expires, include_skipped=include_skipped, wait=wait),
        expires=expires)


def claim_resume_or_next(*, current, first_free, expires: datetime) -> ReviewClaim | None:
    """The claim order shared by the review queue and audits: the reviewer's own unexpired claim (extended to
    `expires`), else `first_free(include_skipped, wait)` pass after pass.

    Rows other reviewers are claiming right now are skipped first; only when that leaves nothing does a pass wait
    for them (they may still have a slot: a queue's last examples must not read as empty). Each pass is its own
    transaction and locks in id order, so a waiting pass never holds a lock another claimer waits for out of order."""
    with transaction.atomic():
        held = current()
        if held is not None:
            ReviewClaim.objects.filter(pk=held.pk).update(expires_at=expires)
            held.expires_at = expires
            return held
    for include_skipped in (False, True):
        for wait in (False, True):
            with transaction.atomic():
                claim = first_free(include_skipped, wait)
            if claim is not None:
                return claim
    return None


def _claim_first_free(*, reviewer, scope: ReviewScope, now: datetime, expires: datetime, include_skipped: bool,
                      wait: bool) -> ReviewClaim | None:
    after_id = 0
    while True:
        # A fresh statement each round: `after_id` moves past rows that turned out to be full once locked.
        candidates = review_queue_candidates(reviewer=reviewer, scope=scope, now=now, include_skipped=include_skipped)
        example_id = _locking(candidates.filter(pk__gt=after_id), wait=wait).values_list("pk", flat=True).first()
        if example_id is None:
            return None
        # The candidate query judged the slots before its row lock was granted: count them again in a new
        # statement, which sees every claim and review committed before the lock.
        if review_slot_free(example_id=example_id, reviewer=reviewer, now=now):
            return _claim_hold(example_id=example_id, reviewer=reviewer, now=now, expires=expires)
        after_id = example_id


def _claim_hold(*, example_id: int, reviewer, now: datetime, expires: datetime) -> ReviewClaim:
    """Write the reviewer's claim on an example the caller holds locked (a skip or an expired claim of theirs is
    renewed). Every writer of claims locks the example first, so nothing can insert this claim meanwhile."""
    claim = ReviewClaim.objects.filter(example_id=example_id, reviewer=reviewer, audit=None).first()
    if claim is None:
        return ReviewClaim.objects.create(example_id=example_id, reviewer=reviewer, claimed_at=now, expires_at=expires)
    claim.claimed_at, claim.expires_at = now, expires
    claim.save(update_fields=["claimed_at", "expires_at"])
    return claim


def review_submit(*, reviewer, example: Example | int, decision: str, reason: str = "", reason_code: int | None = None,
                  seconds_spent: float = 0.0, edits: dict | None = None, now: datetime | None = None) -> Review:
    """Record the reviewer's decision on the example they hold; apply edits as a revision; when the
    example has all its reviews, settle it: approved/rejected when they agree, adjudication when not."""
    _require_reviewer(reviewer)
    now = now or timezone.now()
    decision, reason, reason_code, seconds_spent = _submit_values(decision, reason, reason_code, seconds_spent)
    example_id = example if isinstance(example, int) else example.pk
    with transaction.atomic():
        ex = _lock_example(example_id)
        claim = ReviewClaim.objects.filter(example_id=ex.pk, reviewer=reviewer, audit=None).first()
        if claim is None or claim_is_skip(claim):
            raise ClaimMissing(f"you hold no claim on example {ex.pk}; ask the queue for your next example")
        if ex.status != Example.Status.PENDING_REVIEW:
            raise ReviewError(f"example {ex.pk} is {ex.get_status_display().lower()}, not pending review")
        # An expired claim still counts if nobody took its slot meanwhile.
        if claim.expires_at <= now and not review_slot_free(example_id=ex.pk, reviewer=reviewer, now=now):
            raise ClaimExpired(f"your claim on example {ex.pk} expired and its slot went to another reviewer")
        # A reviewer spending longer than the claim is idle, not reviewing; the claim's age bounds the figure.
        elapsed = max(0.0, (now - claim.claimed_at).total_seconds())
        seconds_spent = min(seconds_spent, elapsed + 5.0) if seconds_spent else elapsed
        try:
            # No savepoint needed: on a violation the whole transaction is rolled back anyway.
            review = Review.objects.create(
                example=ex, reviewer=reviewer, decision=decision, edits={}, reason=reason,
                reason_code=reason_code, seconds_spent=round(seconds_spent, 2),
            )
        except IntegrityError:
            raise ReviewError(f"you already reviewed example {ex.pk}") from None
        if edits:
            revision = _revise(example=ex, editor=reviewer, changes=edits, review=review)
            if revision is not None:
                review.edits = {k: v["new"] for k, v in revision.changes.items()}
                Review.objects.filter(pk=review.pk).update(edits=review.edits)
        claim.delete()
        ex.reviews_done += 1
        ex.status = _settled_status(example=ex, decision=decision)
        Example.objects.filter(pk=ex.pk).update(reviews_done=ex.reviews_done, status=ex.status, updated_at=now)
    review.example = ex
    return review


def _submit_values(decision: str, reason: str, reason_code, seconds_spent) -> tuple[str, str, int | None, float]:
    """A decision's values checked and normalized (a quick reason's text, seconds as a non-negative float)."""
    if decision not in Review.Decision.values:
        raise ValidationError({"decision": f"must be one of {', '.join(Review.Decision.values)}, got {decision!r}"})
    if reason_code is not None:
        try:
            reason_code = int(reason_code)
        except (TypeError, ValueError):
            raise ValidationError({"reason_code": f"must be a number 1-5, got {reason_code!r}"}) from None
        if reason_code not in REJECT_REASONS:
            raise ValidationError({"reason_code": f"must be 1-5, got {reason_code}"})
        if decision != Review.Decision.REJECT:
            raise ValidationError({"reason_code": "quick reasons go with a rejection"})
        reason = reason or REJECT_REASONS[reason_code]
    if len(reason) > 200:
        raise ValidationError({"reason": "at most 200 characters"})
    try:
        seconds_spent = max(0.0, float(seconds_spent or 0.0))
    except (TypeError, ValueError):
        raise ValidationError({"seconds_spent": f"must be a number, got {seconds_spent!r}"}) from None
    return decision, reason, reason_code, seconds_spent


def _settled_status(*, example: Example, decision: str) -> str:
    """The example's status once `example.reviews_done` counts the decision just made."""
    required = review_required_for(example=example)
    if example.reviews_done < required:
        return Example.Status.PENDING_REVIEW
    decisions = set(Review.objects.filter(example_id=example.pk, undone=False, is_adjudication=False)
                    .values_list("decision", flat=True)) if required > 1 else {decision}
    if len(decisions) == 1:
        return Example.Status.APPROVED if decisions == {Review.Decision.APPROVE} else Example.Status.REJECTED
    return Example.Status.IN_ADJUDICATION


def review_skip(*, reviewer, example: Example | int, now: datetime | None = None) -> None:
    """Give the slot back; the example comes back to this reviewer only after everything else."""
    now = now or timezone.now()
    example_id = example if isinstance(example, int) else example.pk
    with transaction.atomic():
        # Skips are zero-length claims (see selectors.claim_is_skip): no slot held, and remembered.
        n = ReviewClaim.objects.filter(example_id=example_id, reviewer=reviewer, audit=None, expires_at__gt=F("claimed_at")) \
            .update(claimed_at=now, expires_at=now)
        if not n:
            raise ClaimMissing(f"you hold no claim on example {example_id}")


def review_undo_last(*, reviewer, scope: ReviewScope | None = None, now: datetime | None = None) -> Review | None:
    """Take back the reviewer's last decision (and its edits); the example returns to them, claimed."""
    _require_reviewer(reviewer)
    now = now or timezone.now()
    with transaction.atomic():
        qs = Review.objects.filter(reviewer=reviewer, undone=False, is_adjudication=False)
        if scope is not None:
            qs = qs.filter(scope.example_q("example__"))
        review = qs.order_by("-created_at", "-id").first()
        if review is None:
            return None
        ex = _lock_example(review.example_id)
        if Review.objects.filter(example_id=ex.pk, undone=False, is_adjudication=True).exists():
            raise ReviewError(f"example {ex.pk} was already decided by an admin; it cannot be undone")
        Review.objects.filter(pk=review.pk).update(undone=True)
        review.undone = True
        for revision in review.revisions.order_by("-id"):
            reverse = {field: {"old": ch["new"], "new": ch["old"]} for field, ch in revision.changes.items()}
            _revise(example=ex, editor=reviewer, changes={f: c["new"] for f, c in reverse.items()}, review=None,
                    only_if_current={f: c["old"] for f, c in reverse.items()})
        ex.reviews_done = max(0, ex.reviews_done - 1)
        ex.status = Example.Status.PENDING_REVIEW
        Example.objects.filter(pk=ex.pk).update(reviews_done=ex.reviews_done, status=ex.status, updated_at=now)
        review.example = ex
        if scope is not None:
            minutes = scope.claim_minutes
        elif ex.dataset_id:
            minutes = ReviewScope(dataset=ex.dataset).claim_minutes
        else:
            minutes = DEFAULT_CLAIM_MINUTES
        # The undone review held a slot; the claim keeps it for the same reviewer.
        _claim_hold(example_id=ex.pk, reviewer=reviewer, now=now, expires=now + timedelta(minutes=minutes))
    return review


def example_revise(*, editor, example: Example | int, changes: dict) -> ExampleRevision | None:
    """Edit an example outside a review (admins). Returns None when nothing changed."""
    _require_admin(editor)
    example_id = example if isinstance(example, int) else example.pk
    with transaction.atomic():
        ex = _lock_example(example_id)
        return _revise(example=ex, editor=editor, changes=changes, review=None)


def _clean_changes(changes: dict) -> dict:
    cleaned, errors = {}, {}
    for key, value in changes.items():
        field = EDIT_FIELDS.get(key)
        if field is None:
            errors[key] = "not editable; editable fields: query, passage, trace, label"
            continue
        if field == "intended_label":
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("true", "1", "relevant", "yes"):
                    value = True
                elif lowered in ("false", "0", "not relevant", "not_relevant", "no"):
                    value = False
            if not isinstance(value, bool):
                errors[key] = f"must be true (relevant) or false (not relevant), got {value!r}"
                continue
        else:
            if not isinstance(value, str):
                errors[key] = f"must be text, got {type(value).__name__}"
                continue
            value = value.replace("\r\n", "\n").strip()
            if field in ("query", "passage") and not value:
                errors[key] = "must not be empty"
                continue
        cleaned[field] = value
    if errors:
        raise ValidationError(errors)
    return cleaned


def _current(ex: Example, field: str):
    if field == "query":
        return GeneratedQuery.objects.filter(pk=ex.query_id).values_list("text", flat=True).get()
    if field == "passage":
        return Passage.objects.filter(pk=ex.passage_id).values_list("text", flat=True).get()
    return getattr(ex, field)


def _revise(*, example: Example, editor, changes: dict, review: Review | None,
            only_if_current: dict | None = None) -> ExampleRevision | None:
    """Apply changes to a locked example and record {"field": {"old", "new"}}. Query and passage text live on
    shared rows, so every example that uses them gets its content hash recomputed (duplicates are refused)."""
    cleaned = _clean_changes(changes)
    diff = {}
    for field, new in cleaned.items():
        old = _current(example, field)
        if only_if_current is not None and old != only_if_current.get(field):
            continue  # someone edited it since: an undo never overwrites a later edit
        if old != new:
            diff[field] = {"old": old, "new": new}
    if not diff:
        return None
    if "query" in diff:
        GeneratedQuery.objects.filter(pk=example.query_id).update(text=diff["query"]["new"], text_hash=text_hash(diff["query"]["new"]))
    if "passage" in diff:
        Passage.objects.filter(pk=example.passage_id).update(text=diff["passage"]["new"], text_hash=text_hash(diff["passage"]["new"]))
    local = {f: d["new"] for f, d in diff.items() if f in ("reasoning_trace", "intended_label")}
    if local:
        Example.objects.filter(pk=example.pk).update(**local)
        for f, v in local.items():
            setattr(example, f, v)
    cond = Q(pk=example.pk)
    if "query" in diff:
        cond |= Q(query_id=example.query_id)
    if "passage" in diff:
        cond |= Q(passage_id=example.passage_id)
    affected = Example.objects.filter(cond)
    for ex_id, q, p, label in affected.values_list("id", "query__text", "passage__text", "intended_label"):
        new_hash = example_content_hash(query=q, passage=p, label=label)
        clash = Example.objects.filter(content_hash=new_hash).exclude(pk=ex_id).values_list("pk", flat=True).first()
        if clash is not None:
            raise ValidationError({"__all__": f"this edit makes example {ex_id} a duplicate of example {clash}"})
        Example.objects.filter(pk=ex_id).update(content_hash=new_hash)
    return ExampleRevision.objects.create(example=example, editor=editor, review=review, changes=diff)


def example_adjudicate(*, admin, example: Example | int, decision: str, reason: str = "",
                       now: datetime | None = None) -> Review:
    """An admin settles a disagreement: an adjudication review, and the example's final status."""
    _require_admin(admin)
    now = now or timezone.now()
    if decision not in Review.Decision.values:
        raise ValidationError({"decision": f"must be one of {', '.join(Review.Decision.values)}, got {decision!r}"})
    if len(reason) > 200:
        raise ValidationError({"reason": "at most 200 characters"})
    example_id = example if isinstance(example, int) else example.pk
    with transaction.atomic():
        ex = _lock_example(example_id)
        if ex.status != Example.Status.IN_ADJUDICATION:
            raise ReviewError(f"example {ex.pk} is {ex.get_status_display().lower()}, not in adjudication")
        review = Review.objects.create(example=ex, reviewer=admin, decision=decision, reason=reason, is_adjudication=True)
        status = Example.Status.APPROVED if decision == Review.Decision.APPROVE else Example.Status.REJECTED
        Example.objects.filter(pk=ex.pk).update(status=status, updated_at=now)
    return review


BULK_DECIDABLE = (Example.Status.PENDING_REVIEW, Example.Status.IN_ADJUDICATION,
                  Example.Status.APPROVED, Example.Status.REJECTED)


def examples_bulk_decide(*, admin, examples: QuerySet[Example], decision: str, reason: str = "",
                         batch_size: int | None = None, now: datetime | None = None, progress=None) -> int:
    """Approve or reject a filtered set at once (admins). Each example gets an adjudication review for the
    audit trail; open claims on them are dropped. Examples outside review (generated, filtered out) are left alone,
    and so are those already decided this way (running it twice decides nothing twice).
    Returns how many examples changed. `progress(done, total)` is called after each batch."""
    _require_admin(admin)
    now = now or timezone.now()
    if decision not in Review.Decision.values:
        raise ValidationError({"decision": f"must be one of {', '.join(Review.Decision.values)}, got {decision!r}"})
    status = _bulk_status(decision)
    changed = 0
    with transaction.atomic():
        # Lock the examples to decide (one query), then write their reviews with INSERT ... SELECT (issue 21).
        target = _bulk_targets(examples, status).values("pk")
        locked = Example.objects.filter(pk__in=target)
        if connection.features.has_select_for_update:
            locked = locked.select_for_update()
        ids = list(locked.order_by("id").values_list("id", flat=True))
        batch_size = batch_size or (50_000 if connection.vendor == "postgresql" else 2_000)  # SQLite: bound variables
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            bulk_reviews_insert_select(example_ids=chunk, reviewer_id=admin.pk, decision=decision,
                                       reason=reason[:200] or "bulk decision", is_adjudication=True, now=now)
            ReviewClaim.objects.filter(example_id__in=chunk, audit=None).delete()
            changed += Example.objects.filter(pk__in=chunk).update(status=status, updated_at=now)
            if progress:
                progress(start + len(chunk), len(ids))
    return changed


def _bulk_status(decision: str) -> str:
    return Example.Status.APPROVED if decision == Review.Decision.APPROVE else Example.Status.REJECTED


def _bulk_targets(examples: QuerySet[Example], status: str) -> QuerySet[Example]:
    return examples.filter(status__in=BULK_DECIDABLE).exclude(status=status)


def examples_bulk_decide_size(*, examples: QuerySet[Example], decision: str) -> int:
    """How many examples a bulk decision would change, counted up to LIMRANK_BULK_JOB_THRESHOLD + 1 (bounded)."""
    cap = settings.LIMRANK_BULK_JOB_THRESHOLD + 1
    return _bulk_targets(examples, _bulk_status(decision)).order_by().values("pk")[:cap].count()


# The browser's filters (curation.selectors.review.example_browse) a bulk decision may name.
BULK_FILTER_KEYS = ("dataset", "status", "origin", "variant", "domain", "prompt", "decision", "reviewer", "q")


def bulk_decision_request(*, admin, filters: dict, decision: str, reason: str = "") -> BulkDecision:
    """A bulk decision over the browser's filtered set (curation.selectors.example_browse), recorded as a job row:
    run here when it changes at most LIMRANK_BULK_JOB_THRESHOLD examples (the row is returned succeeded), queued for a
    worker otherwise (returned queued; its task is sent after commit)."""
    _require_admin(admin)
    if decision not in Review.Decision.values:
        raise ValidationError({"decision": f"must be one of {', '.join(Review.Decision.values)}, got {decision!r}"})
    filters = {k: str(v).strip() for k, v in (filters or {}).items() if v not in (None, "") and k != "sort"}
    for key, value in filters.items():
        if key not in BULK_FILTER_KEYS:
            raise ValidationError({"filters": f"unknown filter {key[:40]!r}; allowed: {', '.join(BULK_FILTER_KEYS)}"})
        problem = text_problem(value)
        if problem:
            raise ValidationError({"filters": f"{key}: {problem}"})
    dataset = filters.get("dataset", "")
    if dataset and not (dataset.isdigit() and len(dataset) <= 19 and 1 <= int(dataset) < 2**63):
        raise ValidationError({"filters": f"dataset: must be an id, got {dataset[:40]!r}"})
    if not filters:
        raise ValidationError({"filters": "bulk decisions need at least one filter (refusing to decide every example)"})
    job = BulkDecision.objects.create(filters=filters, decision=decision, reason=reason[:200], requested_by=admin)
    size = examples_bulk_decide_size(examples=example_browse(filters=filters), decision=decision)
    if size > settings.LIMRANK_BULK_JOB_THRESHOLD:
        job_enqueue_on_commit(BulkDecision, pk=job.pk)
        return job
    if not job_claim(BulkDecision, pk=job.pk):
        raise AssertionError("a new job could not be claimed")
    return bulk_decision_execute(job=job)


def bulk_decision_execute(*, job: BulkDecision) -> BulkDecision:
    """Run a claimed bulk decision. `changed` is written in the decisions' transaction: a second run of the same job
    (a redelivered task) finds it set and does nothing; a run that died mid-way wrote nothing (rolled back)."""
    job.refresh_from_db()
    if job.changed is None:
        try:
            with transaction.atomic():
                n = examples_bulk_decide(
                    admin=job.requested_by, examples=example_browse(filters=job.filters), decision=job.decision,
                    reason=job.reason, progress=lambda done, total: job_progress_detached(job, done=done, total=total))
                BulkDecision.objects.filter(pk=job.pk).update(changed=n)
        except (ValidationError, PermissionDenied) as exc:
            job_finish(job, status=JobStatus.FAILED, error="; ".join(getattr(exc, "messages", [str(exc)]))[:2000])
            return job
        except Exception as exc:
            job_finish(job, status=JobStatus.FAILED, error=repr(exc)[:2000])
            raise
    job.refresh_from_db()
    job_finish(job, progress_done=job.changed, progress_total=job.changed)
    return job
