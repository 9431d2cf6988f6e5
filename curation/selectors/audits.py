"""Reads of blind audit rounds: the sample's population, the audit queue, progress, and the filter's report card.

The report card compares the LLM filter with the auditors. An audited example is *correct* when the auditor's
verdict equals its intended label (relevant = true, not relevant = false; unusable is never correct). The filter's
precision is the share of kept examples that are correct, its recall the share of correct examples that it kept;
F1 and Cohen's kappa treat "kept" and "correct" as two raters of the same examples. Where an example has several
verdicts, its first one counts for the filter's figures; the pairs feed the human agreement (the ceiling)."""
from __future__ import annotations

import json
import math
import warnings
from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from curation.models import (
    Audit, AuditMember, AuditVerdict, Dataset, DatasetVersion, DatasetVersionMember, Example, GenerationRun, LLMCall,
    Review, ReviewClaim,
)
from curation.selectors.review import DEFAULT_CLAIM_MINUTES

# What the filter has judged: everything past generation (kept examples are in or past review).
JUDGED_STATUSES = (Example.Status.FILTERED_OUT, Example.Status.PENDING_REVIEW, Example.Status.IN_ADJUDICATION,
                   Example.Status.APPROVED, Example.Status.REJECTED)
VERDICT_LABEL = {AuditVerdict.Verdict.RELEVANT: True, AuditVerdict.Verdict.NOT_RELEVANT: False}
BOOTSTRAP_RESAMPLES = 2000
BREAKDOWNS = ("vote_agreement", "origin", "variant", "domain", "prompt_version", "reasoner_model")


def audit_population(*, dataset: Dataset | None = None, generation_run: GenerationRun | None = None) -> QuerySet[Example]:
    qs = Example.objects.filter(status__in=JUDGED_STATUSES)
    return qs.filter(dataset=dataset) if dataset is not None else qs.filter(generation_run=generation_run)


def prompt_versions_text(prompt_versions: dict | None) -> str:
    return ", ".join(f"{k} v{v}" for k, v in sorted((prompt_versions or {}).items())) or "-"


def stratum_key(*, kept: bool, variant: str, domain: str, prompt_versions: dict | None) -> str:
    return " | ".join(["kept" if kept else "filtered_out", variant or "-", domain or "-",
                       prompt_versions_text(prompt_versions)])[:300]


def audit_list() -> QuerySet[Audit]:
    return (Audit.objects.select_related("dataset", "generation_run", "created_by")
            .annotate(done=Count("members", filter=Q(members__verdicts_done__gte=F("members__verdicts_required"))))
            .order_by("-id"))


def audit_claim_minutes(*, audit: Audit) -> int:
    ds = audit.dataset if audit.dataset_id else (audit.generation_run.dataset if audit.generation_run_id else None)
    return ds.claim_minutes if ds is not None and ds.claim_minutes else DEFAULT_CLAIM_MINUTES


# ---------------------------------------------------------------- the audit queue
# One rule, as in the review queue: free slots = verdicts required - verdicts done - others' unexpired audit claims.


def _with_free_slot(qs: QuerySet[AuditMember], *, reviewer, now: datetime) -> QuerySet[AuditMember]:
    others = (ReviewClaim.objects.filter(audit_id=OuterRef("audit_id"), example_id=OuterRef("example_id"),
                                         expires_at__gt=now).exclude(reviewer=reviewer)
              .order_by().values("example_id").annotate(n=Count("pk")).values("n"))
    return qs.alias(held=Coalesce(Subquery(others), 0)).filter(verdicts_done__lt=F("verdicts_required") - F("held"))


def audit_slot_free(*, member_id: int, reviewer, now: datetime) -> bool:
    return _with_free_slot(AuditMember.objects.filter(pk=member_id), reviewer=reviewer, now=now).exists()


def audit_queue_candidates(*, reviewer, audit: Audit, now: datetime, include_skipped: bool) -> QuerySet[AuditMember]:
    mine = AuditVerdict.objects.filter(member_id=OuterRef("pk"), reviewer=reviewer)
    qs = AuditMember.objects.filter(audit=audit).exclude(Exists(mine))
    if not include_skipped:
        skipped = ReviewClaim.objects.filter(audit_id=OuterRef("audit_id"), example_id=OuterRef("example_id"),
                                             reviewer=reviewer, expires_at__lte=F("claimed_at"))
        qs = qs.exclude(Exists(skipped))
    return _with_free_slot(qs, reviewer=reviewer, now=now).order_by("position")


def audit_claim_current(*, reviewer, audit: Audit, now: datetime) -> ReviewClaim | None:
    """The reviewer's unexpired claim in the audit on a member they have not judged yet (read only)."""
    judged = AuditVerdict.objects.filter(member__audit_id=OuterRef("audit_id"), member__example_id=OuterRef("example_id"),
                                         reviewer=reviewer)
    return (ReviewClaim.objects.filter(audit=audit, reviewer=reviewer, expires_at__gt=now)
            .exclude(Exists(judged)).order_by("-claimed_at", "-id").first())


def audit_example_for_card(*, example_id: int) -> Example:
    # Only what a blind card shows: the query, its persona and the passage (never the passage's kind: a "hard
    # negative" badge would give the intended label away).
    return Example.objects.select_related("query", "query__persona", "passage").get(pk=example_id)


def audit_last_verdict(*, reviewer, audit: Audit) -> AuditVerdict | None:
    """The reviewer's latest verdict in the audit, with the example's labels: shown once they have decided."""
    return (AuditVerdict.objects.filter(member__audit=audit, reviewer=reviewer)
            .select_related("member", "member__example").order_by("-id").first())


def audit_progress(*, audit: Audit, reviewer=None) -> dict:
    agg = AuditMember.objects.filter(audit=audit).aggregate(
        required=Coalesce(Sum("verdicts_required"), 0), done=Coalesce(Sum("verdicts_done"), 0), members=Count("id"))
    out = {"members": agg["members"], "required": agg["required"], "done": agg["done"],
           "percent": round(100 * agg["done"] / agg["required"], 1) if agg["required"] else 0.0,
           "text": f"{agg['done']} / {agg['required']} verdicts"}
    if reviewer is not None:
        out["mine"] = AuditVerdict.objects.filter(member__audit=audit, reviewer=reviewer).count()
    return out


def audit_agreed_decisions(*, audit: Audit) -> dict[int, str]:
    """example id -> "approve" | "reject" for members whose auditors all gave the same verdict (what "apply" writes)."""
    verdicts: dict[int, set] = defaultdict(set)
    labels = {}
    for example_id, label, verdict in (AuditVerdict.objects.filter(member__audit=audit)
                                       .values_list("member__example_id", "member__example__intended_label", "verdict")):
        verdicts[example_id].add(verdict)
        labels[example_id] = label
    return {e: (Review.Decision.APPROVE if VERDICT_LABEL.get(next(iter(v))) == labels[e] else Review.Decision.REJECT)
            for e, v in verdicts.items() if len(v) == 1}


def audits_for_version(*, version: DatasetVersion) -> QuerySet[Audit]:
    """Audits that sampled examples this version contains (their report cards go on its datasheet)."""
    examples = DatasetVersionMember.objects.filter(version=version).values("example_id")
    return Audit.objects.filter(Exists(AuditMember.objects.filter(audit_id=OuterRef("pk"), example_id__in=examples))).order_by("-id")


def audit_reports_for_version(*, version: DatasetVersion) -> list[dict]:
    """The report card of every audit that sampled this version's examples (for its datasheet)."""
    return [audit_report(audit=a) for a in audits_for_version(version=version).select_related("dataset", "generation_run")]


# ---------------------------------------------------------------- the report card


def _round(x, digits: int = 4):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), digits)


def _ratio(a: int, b: int):
    return a / b if b else None


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> list | None:
    """The Wilson score interval of a proportion (scipy's binomtest)."""
    if not n:
        return None
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return [_round(ci.low), _round(ci.high)]


def _f1_kappa(kept, correct, axis=-1):
    """F1 and Cohen's kappa of two boolean raters, vectorized over resamples (numpy arrays, last axis = examples)."""
    import numpy as np

    kept = np.asarray(kept, dtype=float)
    correct = np.asarray(correct, dtype=float)
    n = kept.shape[axis]
    tp = (kept * correct).sum(axis=axis)
    k, c = kept.sum(axis=axis), correct.sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = 2 * tp / (k + c)
        po = (tp + (n - k - c + tp)) / n
        pe = (k / n) * (c / n) + (1 - k / n) * (1 - c / n)
        kappa = (po - pe) / (1 - pe)
    return f1, kappa


def _bootstrap(kept, correct, *, seed: int, which: int) -> list | None:
    """Percentile bootstrap (scipy, paired, fixed seed) of F1 (which=0) or kappa (which=1)."""
    import numpy as np
    from scipy.stats import bootstrap

    if len(kept) < 2:
        return None
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # a degenerate resample (one class only) gives nan, reported as None
        res = bootstrap((np.asarray(kept), np.asarray(correct)), lambda a, b, axis=-1: _f1_kappa(a, b, axis=axis)[which],
                        paired=True, vectorized=True, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=0.95,
                        method="percentile", random_state=np.random.default_rng(seed))
    low, high = res.confidence_interval
    if math.isnan(low) or math.isnan(high):
        return None
    return [_round(low), _round(high)]


def filter_metrics(kept: list[bool], correct: list[bool], *, seed: int | None = 0) -> dict:
    """Precision, recall, F1 and Cohen's kappa of the filter ("kept") against the humans ("correct"), with 95%
    intervals: Wilson for precision and recall, a seeded percentile bootstrap for F1 and kappa (seed=None: none)."""
    n = len(kept)
    tp = sum(1 for k, c in zip(kept, correct) if k and c)
    n_kept, n_correct = sum(kept), sum(correct)
    f1, kappa = _f1_kappa(kept, correct) if n else (None, None)
    out = {
        "n": n, "kept": n_kept, "correct": n_correct, "correct_and_kept": tp,
        "precision": _round(_ratio(tp, n_kept)), "recall": _round(_ratio(tp, n_correct)),
        "f1": _round(f1), "kappa": _round(kappa),
        "precision_ci": wilson_interval(tp, n_kept), "recall_ci": wilson_interval(tp, n_correct),
    }
    if seed is not None:
        out["f1_ci"] = _bootstrap(kept, correct, seed=seed, which=0) if n else None
        out["kappa_ci"] = _bootstrap(kept, correct, seed=seed, which=1) if n else None
    return out


def vote_agreement(*, votes: list, label: bool) -> str:
    """'k of n': how many of the reasoner's n samples agreed with the intended label."""
    if not votes:
        return "no votes"
    return f"{sum(1 for v in votes if v == label)} of {len(votes)}"


def _rows(audit: Audit) -> tuple[list[dict], dict[int, list[str]]]:
    members = (AuditMember.objects.filter(audit=audit)
               .values_list("pk", "kept", "example__intended_label", "example__judgment_votes", "example__origin",
                            "example__query__variant", "example__query__domain", "example__prompt_versions",
                            "example__reasoner_model").order_by("position"))
    verdicts: dict[int, list[str]] = defaultdict(list)
    for member_id, verdict in AuditVerdict.objects.filter(member__audit=audit).values_list("member_id", "verdict").order_by("id"):
        verdicts[member_id].append(verdict)
    rows = []
    for pk, kept, label, votes, origin, variant, domain, prompts, model in members:
        if not verdicts.get(pk):
            continue
        if isinstance(prompts, str):  # SQLite hands JSON back as text in values_list over a join
            prompts = json.loads(prompts or "{}")
        if isinstance(votes, str):
            votes = json.loads(votes or "[]")
        first = verdicts[pk][0]
        rows.append({
            "kept": bool(kept), "correct": VERDICT_LABEL.get(first) == label, "verdict": first,
            "votes": list(votes or []), "label": label,
            "vote_agreement": vote_agreement(votes=votes or [], label=label), "origin": origin,
            "variant": variant or "-", "domain": domain or "-", "prompt_version": prompt_versions_text(prompts),
            "reasoner_model": model or "-",
        })
    return rows, verdicts


def human_agreement(verdict_lists: list[list[str]]) -> dict:
    """Cohen's kappa between the first two auditors of each doubly-audited example (three categories; sklearn)."""
    pairs = [(v[0], v[1]) for v in verdict_lists if len(v) >= 2]
    out = {"n": len(pairs), "kappa": None, "observed": None}
    if not pairs:
        return out
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    a, b = zip(*pairs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = float(cohen_kappa_score(list(a), list(b), labels=AuditVerdict.Verdict.values, replace_undefined_by=np.nan))
    out["kappa"] = _round(kappa)
    out["observed"] = _round(sum(x == y for x, y in pairs) / len(pairs))
    return out


def threshold_curve(rows: list[dict]) -> list[dict]:
    """Keep an example when at least t of its reasoner's votes agree with its intended label: for each t, the share
    of (audited, voted) examples kept and the precision of what is kept."""
    voted = [r for r in rows if r["votes"]]
    if not voted:
        return []
    most = max(len(r["votes"]) for r in voted)
    curve = []
    for t in range(most, -1, -1):
        kept = [r for r in voted if sum(1 for v in r["votes"] if v == r["label"]) >= t]
        tp = sum(1 for r in kept if r["correct"])
        curve.append({"min_agreeing_votes": t, "share_kept": _round(len(kept) / len(voted)),
                      "precision": _round(_ratio(tp, len(kept))), "precision_ci": wilson_interval(tp, len(kept)),
                      "n_kept": len(kept)})
    return curve


def audit_cost(*, audit: Audit, precision: float | None) -> dict:
    """Reasoner tokens and dollars per correctly kept example, over the audited scope: the reasoner calls recorded for
    its generation runs, divided by (kept examples in the scope x the filter's precision)."""
    population = audit_population(dataset=audit.dataset, generation_run=audit.generation_run)
    kept = population.exclude(status=Example.Status.FILTERED_OUT).count()
    run_ids = population.exclude(generation_run=None).values("generation_run_id")
    calls = LLMCall.objects.filter(role=LLMCall.Role.REASONER, generation_run_id__in=run_ids).aggregate(
        tokens_in=Coalesce(Sum("tokens_in"), 0), tokens_out=Coalesce(Sum("tokens_out"), 0),
        cost=Coalesce(Sum("cost_usd"), Decimal(0)), calls=Count("id"))
    correct_kept = kept * precision if precision is not None else None
    tokens = calls["tokens_in"] + calls["tokens_out"]
    return {
        "reasoner_calls": calls["calls"], "reasoner_tokens": tokens, "reasoner_cost_usd": _round(calls["cost"], 6),
        "kept_in_scope": kept, "correctly_kept_estimate": _round(correct_kept, 1),
        "tokens_per_correct_kept": _round(tokens / correct_kept, 1) if correct_kept else None,
        "usd_per_correct_kept": _round(float(calls["cost"]) / correct_kept, 6) if correct_kept else None,
    }


def audit_report(*, audit: Audit) -> dict:
    """The filter's report card (JSON-ready): overall figures at the top level, breakdowns beside."""
    rows, verdicts = _rows(audit)
    kept = [r["kept"] for r in rows]
    correct = [r["correct"] for r in rows]
    overall = filter_metrics(kept, correct, seed=audit.seed)
    breakdowns = {}
    for dim in BREAKDOWNS:
        groups: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            groups[str(r[dim])].append(r)
        breakdowns[dim] = [
            {"value": value, **filter_metrics([r["kept"] for r in g], [r["correct"] for r in g], seed=None)}
            for value, g in sorted(groups.items())
        ]
    verdict_counts = defaultdict(int)
    for r in rows:
        verdict_counts[r["verdict"]] += 1
    return {
        "audit": audit.pk, "scope": {"dataset": audit.dataset_id, "generation_run": audit.generation_run_id},
        "size": audit.size, "seed": audit.seed, "audited": len(rows), "state": audit.state,
        "applied_at": audit.applied_at.isoformat() if audit.applied_at else None,
        **{k: overall[k] for k in ("precision", "recall", "f1", "kappa", "precision_ci", "recall_ci", "f1_ci", "kappa_ci")},
        "overall": overall, "verdicts": dict(verdict_counts), "breakdowns": breakdowns,
        "human_agreement": human_agreement(list(verdicts.values())),
        "threshold_curve": threshold_curve(rows), "cost": audit_cost(audit=audit, precision=_ratio(overall["correct_and_kept"], overall["kept"])),
    }
