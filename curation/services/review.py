"""Writes of the reviewer's workbench: claim the next example, submit, skip, undo, edit as a revision,
adjudicate and bulk-decide. Keyword-only arguments, one transaction each.

Concurrency: every write that changes an example's review slots locks the example row first
(`SELECT ... FOR UPDATE [SKIP LOCKED]` on PostgreSQL). The queue query skips rows another reviewer is
claiming right now, then re-counts the slots in a fresh statement once the row lock is held, so two
reviewers never take the same slot. SQLite has no row locks; there the project opens every transaction
with BEGIN IMMEDIATE (settings: transaction_mode), which serializes writers, so the same re-count is exact."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import cache
from typing import NamedTuple

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import DateTimeField, F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from curation.hashing import example_content_hash, text_hash
from curation.models import Dataset, Example, ExampleRevision, GeneratedQuery, Passage, Review, ReviewClaim
from curation.selectors.review import (
    CARD_FIELDS, DEFAULT_CLAIM_MINUTES, REJECT_REASONS, ReviewScope, claim_is_skip, review_others_holding, review_required_for,
)
from curation.services import libpq_prepared as libpq
from limrank_app.services import api_token_touch
from limrank_app.api.authentication import api_token_reviewer_writer_params, api_token_reviewer_writer_sql_text
from limrank_app.roles import user_is_admin, user_is_reviewer


class ReviewError(Exception):
    """A review action that cannot happen in the example's current state (HTTP 409)."""


class ClaimMissing(ReviewError):
    """The reviewer holds no claim on the example: it is not theirs to act on (HTTP 403)."""


class ClaimExpired(ReviewError):
    """The claim ran out and its slot went to another reviewer."""


# Editable fields as the workbench names them -> canonical names stored in revisions.
EDIT_FIELDS = {"query": "query", "passage": "passage", "trace": "reasoning_trace",
               "reasoning_trace": "reasoning_trace", "label": "intended_label", "intended_label": "intended_label"}


def _locking(qs: QuerySet) -> QuerySet:
    features = connection.features
    if features.has_select_for_update_skip_locked:
        return qs.select_for_update(skip_locked=True, of=("self",)) if features.has_select_for_update_of \
            else qs.select_for_update(skip_locked=True)
    if features.has_select_for_update:
        return qs.select_for_update()
    return qs  # SQLite: the IMMEDIATE transaction already holds the database's write lock


def _lock_example(example_id: int, *, claim_of=None) -> Example:
    """Lock one example (with its dataset); with claim_of, read that reviewer's claim in the same statement."""
    qs = Example.objects.filter(pk=example_id).select_related("dataset")
    if claim_of is not None:
        claim = ReviewClaim.objects.filter(example_id=OuterRef("pk"), reviewer=claim_of)
        qs = qs.annotate(claim_pk=Subquery(claim.values("pk")[:1]),
                         claim_claimed_at=Subquery(claim.values("claimed_at")[:1], output_field=DateTimeField()),
                         claim_expires_at=Subquery(claim.values("expires_at")[:1], output_field=DateTimeField()))
    if connection.features.has_select_for_update_of:
        qs = qs.select_for_update(of=("self",))  # lock the example only, not its dataset
    elif connection.features.has_select_for_update:
        qs = qs.select_for_update()
    try:
        return qs.get()
    except Example.DoesNotExist:
        raise ReviewError(f"example {example_id} does not exist") from None


def _require_reviewer(user) -> None:
    # Remembered on the (request-scoped) user object: the API permission usually asked just before.
    ok = getattr(user, "_limrank_is_reviewer", None)
    if ok is None:
        ok = user._limrank_is_reviewer = user_is_reviewer(user)
    if not ok:
        raise PermissionDenied("reviewers only")


def _require_admin(user) -> None:
    if not user_is_admin(user):
        raise PermissionDenied("admins only")


def review_claim_next(*, reviewer, scope: ReviewScope, now: datetime | None = None) -> ReviewClaim | None:
    """Give the reviewer an example with a free slot and hold that slot for the scope's claim minutes.

    Resumes the reviewer's own unexpired claim first; examples the reviewer skipped come last.
    Returns None when nothing in the scope needs this reviewer."""
    _require_reviewer(reviewer)
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        return _claim_next_pg(reviewer=reviewer, scope=scope, now=now)
    expires = now + timedelta(minutes=scope.claim_minutes)
    with transaction.atomic():
        current = _claim_current(reviewer=reviewer, scope=scope, now=now)
        if current is not None:
            ReviewClaim.objects.filter(pk=current.pk).update(expires_at=expires)
            current.expires_at = expires
            return current
        for include_skipped in (False, True):
            after_id = 0
            while True:
                # A fresh statement each round: rows locked by others are skipped, and `after_id` moves on
                # past rows that turned out to be full, so the loop ends.
                row = _candidate_lock(reviewer=reviewer, scope=scope, now=now, after_id=after_id,
                                      include_skipped=include_skipped)
                if row is None:
                    break
                example_id, dataset_id = row
                if scope.dataset is not None:
                    required = scope.dataset.reviews_required or 1
                else:
                    required = review_required_for(example=Example(pk=example_id, dataset_id=dataset_id))
                claim = _claim_if_free(example_id=example_id, reviewer=reviewer, now=now, expires=expires, required=required)
                if claim is not None:
                    return claim
                after_id = example_id
    return None


def _lease_commit_sql(own_transaction: bool) -> str:
    """A claim is a lease that expires: where the claim is a transaction of its own, its commit need not wait for the
    WAL flush (set_config(..., true) is SET LOCAL: that transaction only). A crash in the fraction of a second before
    the flush loses the claim, never a review: "next" claims again, and a submit's synchronous commit flushes every
    WAL record before its own. Inside a caller's transaction the commit stays synchronous: its other writes decide."""
    return "set_config('synchronous_commit', 'off', true)" if own_transaction else "NULL"


def _claim_next_pg(*, reviewer, scope: ReviewScope, now: datetime) -> ReviewClaim | None:
    """PostgreSQL: the same steps in one round trip (migration 0003's function), the example's card included."""
    with connection.cursor() as cur:
        cur.execute(f"SELECT {_lease_commit_sql(connection.get_autocommit())}, f.* FROM limrank_review_claim_next(%s, %s, %s, %s, %s) f",
                    [reviewer.pk, scope.kind, scope.pk, now, DEFAULT_CLAIM_MINUTES])
        row = cur.fetchone()[1:]
    if row[0] == "no_scope":
        raise scope.does_not_exist()
    claim = _claim_from_row(row, reviewer_id=reviewer.pk)
    if claim is not None:
        claim.reviewer = reviewer
    return claim


def _claim_from_row(row, *, reviewer_id: int) -> ReviewClaim | None:
    """limrank_review_claim_next's answer ('claimed' or 'empty') as a claim with its card, or None."""
    if row[0] == "empty":
        return None
    claim = ReviewClaim(pk=row[1], example_id=row[4], reviewer_id=reviewer_id, claimed_at=row[2], expires_at=row[3])
    claim.card = _card_from_row(row)
    return claim


def _card_from_row(row, start: int = 4) -> dict:
    card = dict(zip(CARD_FIELDS, row[start:]))
    if isinstance(card["judgment_votes"], str):  # Django leaves jsonb as text for the field to parse
        card["judgment_votes"] = json.loads(card["judgment_votes"])
    return card


# ---- The hot endpoints over an API token, PostgreSQL: authentication and action in one statement.
# The token's subquery (limrank_app.api.authentication) has a row only for a live read-write token of an active
# reviewer or admin; the action's function runs for that row only (LATERAL), so nothing is done for anyone else.
# These return DECLINED when the token does not admit the action, or the action's answer is an error: the caller
# then takes the full path (DRF authentication, permissions, the service above), which answers with the reason.
# An error answer of the functions writes nothing, so doing it again there is safe.

DECLINED = object()


class TokenClaim(NamedTuple):
    """What the hot "next" answers: the example's card and when the claim expires (no model objects to build)."""
    card: dict
    expires_at: datetime


class TokenReview(NamedTuple):
    """What the hot "submit" answers: the stored review and its example's new status."""
    id: int
    example_id: int
    decision: str
    reason: str
    reason_code: int | None
    seconds_spent: float
    created_at: datetime
    example_status: str


@cache
def _token_action_sql(function_call: str, columns: tuple, lease_sql: str) -> str:
    """The token's subquery joined to the action; built once per action (the hot path only looks it up)."""
    return (f"SELECT a.token_id, a.stale, a.user_id, {lease_sql}, {', '.join(f'f.{name}' for name, _ in columns)} "
            f"FROM ({api_token_reviewer_writer_sql_text()}) a CROSS JOIN LATERAL {function_call} f")


@cache
def _text_converters(columns: tuple) -> tuple:
    return _TOKEN_COLUMNS + tuple(convert for _, convert in columns)


# The function's columns each hot statement reads, and how the libpq path converts their text.
_TOKEN_COLUMNS = (libpq.as_int, libpq.as_bool, libpq.as_int, libpq.as_str)  # token_id, stale, user_id, lease
_CARD_COLUMNS = {"id": ("example_id", libpq.as_int), "dataset": ("dataset_id", libpq.as_int),
                 "intended_label": ("intended_label", libpq.as_bool),
                 "reasoner_judgment": ("reasoner_judgment", libpq.as_bool)}  # the rest: text of the same name
_CLAIM_COLUMNS = (("outcome", libpq.as_str), ("expires_at", libpq.as_datetime),  # no claim id nor claim time
                  *(_CARD_COLUMNS.get(name, (name, libpq.as_str)) for name in CARD_FIELDS))  # jsonb votes: text, as Django
_SUBMIT_COLUMNS = (("outcome", libpq.as_str), ("review_id", libpq.as_int), ("seconds_spent", libpq.as_float),
                   ("example_status", libpq.as_str))


def _by_token(key: str, now: datetime, function_call: str, params: list, *, columns, lease: bool = False):
    """The action's row (`columns` of the function's answer) for a token that admits it, else None."""
    db = connections[DEFAULT_DB_ALIAS]  # one lookup: each `connection.x` looks the connection up again
    own_transaction = db.get_autocommit()
    sql = _token_action_sql(function_call, columns, _lease_commit_sql(own_transaction) if lease else "NULL")
    params = api_token_reviewer_writer_params(key, now=now, db=db) + params
    if db.queries_logged or not own_transaction:  # recorded (DEBUG, tests), or part of a caller's transaction
        with db.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
    else:  # a transaction of its own: straight through libpq (curation.services.libpq_prepared says why)
        with db.wrap_database_errors:
            values = libpq.libpq_fetchone(db, sql, params)
        row = None if values is None else libpq.text_row(values, _text_converters(columns))
    if row is None:
        return None
    token_id, stale = row[:2]
    if stale:  # last_used_at at most once a minute, as ApiTokenAuthentication does
        api_token_touch(token_id=token_id, now=now)
    return row[4:]


def review_claim_next_by_token(*, key: str, scope: ReviewScope, now: datetime | None = None):
    """review_claim_next for the owner of an API token: a TokenClaim, None when nothing is left, or DECLINED."""
    now = now or timezone.now()
    row = _by_token(key, now, "limrank_review_claim_next(a.user_id, %s, %s, %s, %s)",
                    [scope.kind, scope.pk, now, DEFAULT_CLAIM_MINUTES], columns=_CLAIM_COLUMNS, lease=True)
    if row is None or row[0] == "no_scope":
        return DECLINED
    return None if row[0] == "empty" else TokenClaim(card=_card_from_row(row, start=2), expires_at=row[1])


def review_submit_by_token(*, key: str, example: int, decision: str, reason: str = "", reason_code: int | None = None,
                           seconds_spent: float = 0.0, now: datetime | None = None):
    """review_submit (no edits) for the owner of an API token: a TokenReview, or DECLINED.
    Invalid values raise ValidationError as review_submit does."""
    now = now or timezone.now()
    decision, reason, reason_code, seconds_spent = _submit_values(decision, reason, reason_code, seconds_spent)
    row = _by_token(key, now, "limrank_review_submit(a.user_id, %s, %s, %s, %s, %s, %s)",
                    [example, decision, reason, reason_code, seconds_spent, now], columns=_SUBMIT_COLUMNS)
    if row is None or row[0] != "ok":
        return DECLINED
    _, review_id, seconds, status = row
    return TokenReview(id=review_id, example_id=example, decision=decision, reason=reason, reason_code=reason_code,
                       seconds_spent=seconds, created_at=now, example_status=status)


# The queue's hot path is plain SQL: it runs on every "next" of every reviewer, and building these
# queries through the ORM cost more than running them. Table names come from the models.
_T = {
    "example": Example._meta.db_table, "review": Review._meta.db_table, "claim": ReviewClaim._meta.db_table,
    "dataset": Dataset._meta.db_table,
}


def _dt(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def _claim_current(*, reviewer, scope: ReviewScope, now: datetime) -> ReviewClaim | None:
    """The reviewer's newest unexpired claim in the scope on an example that still needs their decision."""
    column = "dataset_id" if scope.kind == "dataset" else "generation_run_id"
    sql = (
        f"SELECT c.id, c.example_id, c.claimed_at, c.expires_at FROM {_T['claim']} c "
        f"INNER JOIN {_T['example']} e ON e.id = c.example_id "
        f"WHERE c.reviewer_id = %s AND c.expires_at > %s AND e.{column} = %s AND e.status = %s "
        f"AND NOT EXISTS (SELECT 1 FROM {_T['review']} r WHERE r.example_id = c.example_id AND r.reviewer_id = %s "
        f"AND r.undone = %s AND r.is_adjudication = %s) "
        f"ORDER BY c.claimed_at DESC, c.id DESC LIMIT 1"
    )
    with connection.cursor() as cur:
        cur.execute(sql, [reviewer.pk, _dt(now), scope.pk, Example.Status.PENDING_REVIEW, reviewer.pk, False, False])
        row = cur.fetchone()
    if row is None:
        return None
    return ReviewClaim.objects.get(pk=row[0])


def _candidate_lock(*, reviewer, scope: ReviewScope, now: datetime, after_id: int, include_skipped: bool):
    """The first example (by id) with a free slot for this reviewer, locked; rows others hold locked are skipped.

    free slots = reviews required - live reviews (reviews_done) - others' unexpired claims."""
    column = "dataset_id" if scope.kind == "dataset" else "generation_run_id"
    params: list = [scope.pk, Example.Status.PENDING_REVIEW, after_id]
    if scope.dataset is not None:
        required = "%s"
        req_params = [scope.dataset.reviews_required or 1]
    else:
        required = f"COALESCE((SELECT d.reviews_required FROM {_T['dataset']} d WHERE d.id = e.dataset_id), 1)"
        req_params = []
    sql = [
        f"SELECT e.id, e.dataset_id FROM {_T['example']} e WHERE e.{column} = %s AND e.status = %s AND e.id > %s",
        f"AND e.reviews_done < {required}",
        f"AND NOT EXISTS (SELECT 1 FROM {_T['review']} r WHERE r.example_id = e.id AND r.reviewer_id = %s "
        f"AND r.undone = %s AND r.is_adjudication = %s)",
        f"AND (SELECT COUNT(*) FROM {_T['claim']} c WHERE c.example_id = e.id AND c.expires_at > %s AND c.reviewer_id <> %s)"
        f" < {required} - e.reviews_done",
    ]
    params += req_params + [reviewer.pk, False, False, _dt(now), reviewer.pk] + req_params
    if not include_skipped:
        sql.append(f"AND NOT EXISTS (SELECT 1 FROM {_T['claim']} s WHERE s.example_id = e.id AND s.reviewer_id = %s "
                   f"AND s.expires_at <= s.claimed_at)")
        params.append(reviewer.pk)
    sql.append("ORDER BY e.id LIMIT 1")
    features = connection.features
    if features.has_select_for_update_skip_locked:
        sql.append("FOR UPDATE OF e SKIP LOCKED" if features.has_select_for_update_of else "FOR UPDATE SKIP LOCKED")
    elif features.has_select_for_update:
        sql.append("FOR UPDATE")
    # else SQLite: the IMMEDIATE transaction already holds the database's write lock.
    with connection.cursor() as cur:
        cur.execute(" ".join(sql), params)
        return cur.fetchone()


def _claim_if_free(*, example_id: int, reviewer, now: datetime, expires: datetime, required: int) -> ReviewClaim | None:
    """Insert (or renew) the claim only if a slot is still free. A new statement, so under the row lock it sees
    every claim committed before the lock was granted; on SQLite writers are serialized anyway."""
    sql = (
        f"INSERT INTO {_T['claim']} (example_id, reviewer_id, claimed_at, expires_at) "
        f"SELECT e.id, %s, %s, %s FROM {_T['example']} e WHERE e.id = %s AND e.reviews_done + "
        f"(SELECT COUNT(*) FROM {_T['claim']} c WHERE c.example_id = e.id AND c.expires_at > %s AND c.reviewer_id <> %s) < %s "
        f"ON CONFLICT (example_id, reviewer_id) DO UPDATE SET claimed_at = excluded.claimed_at, expires_at = excluded.expires_at "
        f"RETURNING id"
    )
    with connection.cursor() as cur:
        cur.execute(sql, [reviewer.pk, _dt(now), _dt(expires), example_id, _dt(now), reviewer.pk, required])
        row = cur.fetchone()
    if row is None:
        return None
    return ReviewClaim(pk=row[0], example_id=example_id, reviewer=reviewer, claimed_at=now, expires_at=expires)


def _claim_upsert(*, example_id: int, reviewer, now: datetime, expires: datetime) -> None:
    """Hold the example for the reviewer whatever the slots say (an undo hands back the slot its review held)."""
    if not ReviewClaim.objects.filter(example_id=example_id, reviewer=reviewer).update(claimed_at=now, expires_at=expires):
        claim = ReviewClaim.objects.create(example_id=example_id, reviewer=reviewer, expires_at=expires)
        if abs(claim.claimed_at - now) > timedelta(seconds=1):  # auto_now_add wrote the wall clock; a caller's clock wins
            ReviewClaim.objects.filter(pk=claim.pk).update(claimed_at=now)


def review_submit(*, reviewer, example: Example | int, decision: str, reason: str = "", reason_code: int | None = None,
                  seconds_spent: float = 0.0, edits: dict | None = None, now: datetime | None = None) -> Review:
    """Record the reviewer's decision on the example they hold; apply edits as a revision; when the
    example has all its reviews, settle it: approved/rejected when they agree, adjudication when not."""
    _require_reviewer(reviewer)
    now = now or timezone.now()
    decision, reason, reason_code, seconds_spent = _submit_values(decision, reason, reason_code, seconds_spent)
    example_id = example if isinstance(example, int) else example.pk
    if connection.vendor == "postgresql" and not edits:
        return _submit_pg(reviewer=reviewer, example_id=example_id, decision=decision, reason=reason,
                          reason_code=reason_code, seconds_spent=seconds_spent, now=now)

    with transaction.atomic():
        ex = _lock_example(example_id, claim_of=reviewer)
        claim = ReviewClaim(pk=ex.claim_pk, example_id=ex.pk, reviewer=reviewer, claimed_at=ex.claim_claimed_at,
                            expires_at=ex.claim_expires_at) if ex.claim_pk else None
        if claim is None or claim_is_skip(claim):
            raise ClaimMissing(f"you hold no claim on example {ex.pk}; ask the queue for your next example")
        if ex.status != Example.Status.PENDING_REVIEW:
            raise ReviewError(f"example {ex.pk} is {ex.get_status_display().lower()}, not pending review")
        required = (ex.dataset.reviews_required or 1) if ex.dataset_id else 1
        if claim.expires_at <= now:
            # An expired claim still counts if nobody took its slot meanwhile.
            if ex.reviews_done + review_others_holding(example_id=ex.pk, reviewer=reviewer, now=now) >= required:
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
        ReviewClaim.objects.filter(pk=claim.pk).delete()
        ex.reviews_done += 1
        if required == 1:  # a single review settles it: no need to read the others
            ex.status = Example.Status.APPROVED if decision == Review.Decision.APPROVE else Example.Status.REJECTED
        else:
            ex.status = _settled_status(example_id=ex.pk, done=ex.reviews_done, required=required)
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


def _submit_pg(*, reviewer, example_id: int, decision: str, reason: str, reason_code: int | None,
               seconds_spent: float, now: datetime) -> Review:
    """PostgreSQL, a decision without edits: the same checks and writes in one round trip (migration 0003)."""
    with connection.cursor() as cur:
        cur.execute("SELECT * FROM limrank_review_submit(%s, %s, %s, %s, %s, %s, %s)",
                    [reviewer.pk, example_id, decision, reason, reason_code, seconds_spent, now])
        outcome, review_id, seconds, status = cur.fetchone()
    if outcome == "missing":
        raise ReviewError(f"example {example_id} does not exist")
    if outcome == "no_claim":
        raise ClaimMissing(f"you hold no claim on example {example_id}; ask the queue for your next example")
    if outcome == "not_pending":
        raise ReviewError(f"example {example_id} is {Example.Status(status).label.lower()}, not pending review")
    if outcome == "expired":
        raise ClaimExpired(f"your claim on example {example_id} expired and its slot went to another reviewer")
    if outcome == "duplicate":
        raise ReviewError(f"you already reviewed example {example_id}")
    review = _submitted(review_id=review_id, example_id=example_id, reviewer_id=reviewer.pk, decision=decision,
                        reason=reason, reason_code=reason_code, seconds=seconds, status=status, now=now)
    review.reviewer = reviewer
    return review


def _submitted(*, review_id: int, example_id: int, reviewer_id: int, decision: str, reason: str, reason_code: int | None,
               seconds: float, status: str, now: datetime) -> Review:
    """The review limrank_review_submit stored, with its example's new status, built without reading it back."""
    review = Review(pk=review_id, example_id=example_id, reviewer_id=reviewer_id, decision=decision, edits={},
                    reason=reason, reason_code=reason_code, seconds_spent=seconds, is_adjudication=False, undone=False,
                    created_at=now)
    review.example = Example(pk=example_id, status=status)
    return review


def _settled_status(*, example_id: int, done: int, required: int) -> str:
    if done < required:
        return Example.Status.PENDING_REVIEW
    decisions = set(Review.objects.filter(example_id=example_id, undone=False, is_adjudication=False)
                    .values_list("decision", flat=True))
    if len(decisions) == 1:
        return Example.Status.APPROVED if decisions == {Review.Decision.APPROVE} else Example.Status.REJECTED
    return Example.Status.IN_ADJUDICATION


def review_skip(*, reviewer, example: Example | int, now: datetime | None = None) -> None:
    """Give the slot back; the example comes back to this reviewer only after everything else."""
    now = now or timezone.now()
    example_id = example if isinstance(example, int) else example.pk
    with transaction.atomic():
        # Skips are zero-length claims (see selectors.claim_is_skip): no slot held, and remembered.
        n = ReviewClaim.objects.filter(example_id=example_id, reviewer=reviewer, expires_at__gt=F("claimed_at")) \
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
        Example.objects.filter(pk=ex.pk).update(reviews_done=ex.reviews_done, status=Example.Status.PENDING_REVIEW,
                                                updated_at=now)
        if scope is not None:
            minutes = scope.claim_minutes
        elif ex.dataset_id:
            minutes = ReviewScope(dataset=ex.dataset).claim_minutes
        else:
            minutes = DEFAULT_CLAIM_MINUTES
        # The undone review held a slot; the claim keeps it for the same reviewer.
        _claim_upsert(example_id=ex.pk, reviewer=reviewer, now=now, expires=now + timedelta(minutes=minutes))
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
                         batch_size: int = 2000, now: datetime | None = None) -> int:
    """Approve or reject a filtered set at once (admins). Each example gets an adjudication review for the
    audit trail; open claims on them are dropped. Examples outside review (generated, filtered out) are left alone.
    Returns how many examples changed."""
    _require_admin(admin)
    now = now or timezone.now()
    if decision not in Review.Decision.values:
        raise ValidationError({"decision": f"must be one of {', '.join(Review.Decision.values)}, got {decision!r}"})
    status = Example.Status.APPROVED if decision == Review.Decision.APPROVE else Example.Status.REJECTED
    changed = 0
    with transaction.atomic():
        ids = list(examples.filter(status__in=BULK_DECIDABLE).exclude(status=status).order_by("id").values_list("id", flat=True))
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            locked = Example.objects.filter(pk__in=chunk, status__in=BULK_DECIDABLE).exclude(status=status)
            if connection.features.has_select_for_update:
                locked = locked.select_for_update()
            chunk = list(locked.order_by("id").values_list("id", flat=True))
            Review.objects.bulk_create([
                Review(example_id=i, reviewer=admin, decision=decision, reason=reason[:200] or "bulk decision",
                       is_adjudication=True) for i in chunk
            ])
            ReviewClaim.objects.filter(example_id__in=chunk).delete()
            changed += Example.objects.filter(pk__in=chunk).update(status=status, updated_at=now)
    return changed
