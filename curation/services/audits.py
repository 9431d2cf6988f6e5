"""Writes of blind audit rounds: sample, claim the next member, record a verdict, skip, apply the verdicts.

An audit measures the LLM filter against humans. Its sample includes the examples the filter threw out, and
reviewers answer the relevance question without seeing the intended label, the reasoner's judgment, its votes or
its trace. Verdicts are stored apart (AuditVerdict) and change no example until an admin applies them.

Concurrency follows the review queue (curation.services.review): the queue locks the audit member row with
`SELECT ... FOR UPDATE SKIP LOCKED`, re-counts its slots under the lock, and every writer of audit claims and
verdicts locks the member first."""
from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from curation.models import Audit, AuditMember, AuditVerdict, Dataset, Example, GenerationRun, Review, ReviewClaim
from curation.selectors import audits as sel
from curation.services.review import ClaimMissing, ReviewError, _locking, claim_resume_or_next
from limrank_app.roles import user_is_admin, user_is_reviewer

MAX_AUDIT_SIZE = 20000


def _require_admin(user) -> None:
    if not user_is_admin(user):
        raise PermissionDenied("admins only")


def _require_reviewer(user) -> None:
    if not user_is_reviewer(user):
        raise PermissionDenied("reviewers only")


def _allocate(sizes: dict, total: int, rng: random.Random) -> dict:
    """Proportional allocation of `total` draws over strata (largest remainder; ties broken by the seeded rng), so the
    sample's shares estimate the population's without weights."""
    population = sum(sizes.values())
    quotas = {k: total * n / population for k, n in sizes.items()}
    alloc = {k: int(q) for k, q in quotas.items()}
    order = sorted(sizes, key=lambda k: (-(quotas[k] - alloc[k]), rng.random()))
    for k in order[: total - sum(alloc.values())]:
        alloc[k] += 1
    return alloc


def audit_create(*, admin, dataset: Dataset | None = None, generation_run: GenerationRun | None = None, size: int,
                 seed: int = 0, double: int = 0) -> Audit:
    """Start an audit: a stratified random sample (strata: kept / filtered out, variant, domain, prompt versions) of
    the examples the filter judged, `size` of them (fewer when the scope has fewer). The first `double` members in
    the sample's random order need two verdicts, so human agreement can be measured on them."""
    _require_admin(admin)
    if (dataset is None) == (generation_run is None):
        raise ValidationError({"dataset": "give exactly one of dataset or generation_run"})
    if not 1 <= size <= MAX_AUDIT_SIZE:
        raise ValidationError({"size": f"must be 1 to {MAX_AUDIT_SIZE}, got {size}"})
    if double < 0:
        raise ValidationError({"double": "must not be negative"})
    population = sel.audit_population(dataset=dataset, generation_run=generation_run)
    strata: dict[str, list[int]] = defaultdict(list)
    for pk, status, variant, domain, prompts in population.values_list(
            "pk", "status", "query__variant", "query__domain", "prompt_versions").order_by("pk").iterator(chunk_size=5000):
        if isinstance(prompts, str):
            prompts = json.loads(prompts or "{}")
        strata[sel.stratum_key(kept=status != Example.Status.FILTERED_OUT, variant=variant, domain=domain,
                               prompt_versions=prompts)].append(pk)
    if not strata:
        scope = f"dataset {dataset.pk}" if dataset is not None else f"generation run {generation_run.pk}"
        raise ValidationError({"dataset" if dataset is not None else "generation_run":
                               f"{scope} has no example the filter has judged (kept or filtered out)"})
    rng = random.Random(seed)
    size = min(size, sum(len(v) for v in strata.values()))
    alloc = _allocate({k: len(v) for k, v in sorted(strata.items())}, size, rng)
    chosen = []
    for key in sorted(strata):
        chosen.extend((pk, key) for pk in rng.sample(strata[key], alloc[key]))
    rng.shuffle(chosen)
    double = min(double, len(chosen))
    with transaction.atomic():
        audit = Audit.objects.create(dataset=dataset, generation_run=generation_run, size=len(chosen), seed=seed,
                                     double=double, created_by=admin)
        AuditMember.objects.bulk_create([
            AuditMember(audit=audit, example_id=pk, position=i, kept=key.startswith("kept"), stratum=key,
                        verdicts_required=2 if i < double else 1)
            for i, (pk, key) in enumerate(chosen)
        ], batch_size=2000)
    return audit


def audit_claim_next(*, reviewer, audit: Audit, now: datetime | None = None) -> ReviewClaim | None:
    """Hold the next audit member that needs this reviewer's verdict (resuming the one they hold); None when done."""
    _require_reviewer(reviewer)
    if audit.state != Audit.State.OPEN:
        raise ReviewError(f"audit {audit.pk} is closed")
    now = now or timezone.now()
    expires = now + timedelta(minutes=sel.audit_claim_minutes(audit=audit))
    return claim_resume_or_next(
        current=lambda: sel.audit_claim_current(reviewer=reviewer, audit=audit, now=now),
        first_free=lambda include_skipped, wait: _claim_first_free(
            reviewer=reviewer, audit=audit, now=now, expires=expires, include_skipped=include_skipped, wait=wait),
        expires=expires)


def _claim_first_free(*, reviewer, audit: Audit, now, expires, include_skipped: bool, wait: bool) -> ReviewClaim | None:
    after = -1
    while True:
        candidates = sel.audit_queue_candidates(reviewer=reviewer, audit=audit, now=now, include_skipped=include_skipped)
        row = _locking(candidates.filter(position__gt=after), wait=wait).values_list("pk", "example_id", "position").first()
        if row is None:
            return None
        member_id, example_id, position = row
        if sel.audit_slot_free(member_id=member_id, reviewer=reviewer, now=now):
            claim = ReviewClaim.objects.filter(audit=audit, example_id=example_id, reviewer=reviewer).first()
            if claim is None:
                return ReviewClaim.objects.create(audit=audit, example_id=example_id, reviewer=reviewer,
                                                  claimed_at=now, expires_at=expires)
            claim.claimed_at, claim.expires_at = now, expires
            claim.save(update_fields=["claimed_at", "expires_at"])
            return claim
        after = position


def _lock_member(*, audit: Audit, example_id: int) -> AuditMember:
    qs = AuditMember.objects.filter(audit=audit, example_id=example_id)
    if connection.features.has_select_for_update:
        qs = qs.select_for_update()
    member = qs.first()
    if member is None:
        raise ReviewError(f"example {example_id} is not in audit {audit.pk}")
    return member


def audit_verdict_submit(*, reviewer, audit: Audit, example: int, verdict: str, reason: str = "",
                         seconds_spent: float = 0.0, now: datetime | None = None) -> AuditVerdict:
    """Record the reviewer's blind verdict on the audit member they hold. Changes no example."""
    _require_reviewer(reviewer)
    now = now or timezone.now()
    if verdict not in AuditVerdict.Verdict.values:
        raise ValidationError({"verdict": f"must be one of {', '.join(AuditVerdict.Verdict.values)}, got {verdict!r}"})
    if len(reason) > 200:
        raise ValidationError({"reason": "at most 200 characters"})
    try:
        seconds_spent = max(0.0, float(seconds_spent or 0.0))
    except (TypeError, ValueError):
        raise ValidationError({"seconds_spent": f"must be a number, got {seconds_spent!r}"}) from None
    if audit.state != Audit.State.OPEN:
        raise ReviewError(f"audit {audit.pk} is closed")
    with transaction.atomic():
        member = _lock_member(audit=audit, example_id=example)
        claim = ReviewClaim.objects.filter(audit=audit, example_id=example, reviewer=reviewer).first()
        if claim is None or claim.expires_at <= claim.claimed_at:
            raise ClaimMissing(f"you hold no claim on example {example} in audit {audit.pk}; ask for your next one")
        if claim.expires_at <= now and not sel.audit_slot_free(member_id=member.pk, reviewer=reviewer, now=now):
            raise ReviewError(f"your claim on example {example} expired and its slot went to another reviewer")
        elapsed = max(0.0, (now - claim.claimed_at).total_seconds())
        seconds_spent = min(seconds_spent, elapsed + 5.0) if seconds_spent else elapsed
        try:
            out = AuditVerdict.objects.create(member=member, reviewer=reviewer, verdict=verdict, reason=reason,
                                              seconds_spent=round(seconds_spent, 2))
        except IntegrityError:
            raise ReviewError(f"you already gave a verdict on example {example} in audit {audit.pk}") from None
        claim.delete()
        AuditMember.objects.filter(pk=member.pk).update(verdicts_done=F("verdicts_done") + 1)
    return out


def audit_skip(*, reviewer, audit: Audit, example: int, now: datetime | None = None) -> None:
    """Give the audit slot back; the member returns to this reviewer only after the others."""
    now = now or timezone.now()
    n = (ReviewClaim.objects.filter(audit=audit, example_id=example, reviewer=reviewer, expires_at__gt=F("claimed_at"))
         .update(claimed_at=now, expires_at=now))
    if not n:
        raise ClaimMissing(f"you hold no claim on example {example} in audit {audit.pk}")


def audit_apply(*, admin, audit: Audit, now: datetime | None = None) -> int:
    """Apply the audit's verdicts (admins): a member whose auditors agree becomes approved when their verdict equals
    its intended label and rejected otherwise, with an adjudication review naming the audit. Closes the audit.
    Returns how many examples changed status."""
    _require_admin(admin)
    now = now or timezone.now()
    with transaction.atomic():
        locked = Audit.objects.filter(pk=audit.pk)
        if connection.features.has_select_for_update:
            locked = locked.select_for_update()
        audit = locked.get()
        if audit.applied_at is not None:
            raise ReviewError(f"audit {audit.pk} was already applied")
        decisions = sel.audit_agreed_decisions(audit=audit)
        changed = 0
        for decision in (Review.Decision.APPROVE, Review.Decision.REJECT):
            ids = sorted(pk for pk, d in decisions.items() if d == decision)
            status = Example.Status.APPROVED if decision == Review.Decision.APPROVE else Example.Status.REJECTED
            for start in range(0, len(ids), 2000):
                chunk = Example.objects.filter(pk__in=ids[start:start + 2000]).exclude(status=status)
                if connection.features.has_select_for_update:
                    chunk = chunk.select_for_update()
                chunk_ids = list(chunk.order_by("pk").values_list("pk", flat=True))
                Review.objects.bulk_create([
                    Review(example_id=i, reviewer=admin, decision=decision, reason=f"audit {audit.pk}",
                           is_adjudication=True) for i in chunk_ids])
                ReviewClaim.objects.filter(example_id__in=chunk_ids, audit=None).delete()
                changed += Example.objects.filter(pk__in=chunk_ids).update(status=status, updated_at=now)
        Audit.objects.filter(pk=audit.pk).update(applied_at=now, state=Audit.State.CLOSED)
    return changed
