"""Reads for the reviewer's workbench: the queue, a reviewer's claims, agreement, dashboard figures,
the admin browser and the data-quality figures. Writes live in curation.services.review."""
from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce, Length, NullIf

from curation.models import Dataset, Example, GeneratedQuery, GenerationRun, PromptTemplate, Review, ReviewClaim
from curation.selectors.agreement import agreement_figures
from curation.selectors.search import example_search_bounded, example_search_indexed, example_search_q

DEFAULT_CLAIM_MINUTES = 15

# Quick reject reasons, keys 1-5 on the workbench.
REJECT_REASONS: dict[int, str] = {
    1: "Label is wrong",
    2: "Query is unnatural or off-persona",
    3: "Passage is wrong or low quality",
    4: "Reasoning trace is flawed",
    5: "Duplicate or other problem",
}


class ReviewScope:
    """What a reviewer works through: one dataset, or the examples of one generation run.

    Built from the object, or from its id alone (`ReviewScope(dataset_id=3)`, as the API does): then the row is
    read when an attribute needs it (`load()` reads it now)."""

    def __init__(self, dataset: Dataset | None = None, run: GenerationRun | None = None, *,
                 dataset_id: int | None = None, run_id: int | None = None):
        dataset_id = dataset.pk if dataset is not None else dataset_id
        run_id = run.pk if run is not None else run_id
        if (dataset_id is None) == (run_id is None):
            raise ValueError("a review scope is exactly one dataset or one generation run")
        self.kind = "dataset" if dataset_id is not None else "run"
        self.pk = dataset_id if dataset_id is not None else run_id
        self._dataset, self._run = dataset, run

    def __repr__(self):
        return f"ReviewScope({self.kind}={self.pk})"

    def __eq__(self, other):
        return isinstance(other, ReviewScope) and (self.kind, self.pk) == (other.kind, other.pk)

    def __hash__(self):
        return hash((self.kind, self.pk))

    def does_not_exist(self) -> Exception:
        model = Dataset if self.kind == "dataset" else GenerationRun
        return model.DoesNotExist(f"no {'dataset' if self.kind == 'dataset' else 'generation run'} {self.pk}")

    def load(self) -> "ReviewScope":
        """Read the scope's row now (DoesNotExist if there is none)."""
        _ = self.dataset if self.kind == "dataset" else self.run
        return self

    @property
    def dataset(self) -> Dataset | None:
        if self.kind != "dataset":
            return None
        if self._dataset is None:
            self._dataset = Dataset.objects.get(pk=self.pk)
        return self._dataset

    @property
    def run(self) -> GenerationRun | None:
        if self.kind != "run":
            return None
        if self._run is None:
            self._run = GenerationRun.objects.select_related("dataset").get(pk=self.pk)
        return self._run

    @property
    def label(self) -> str:
        return f"dataset {self.dataset.name}" if self.dataset is not None else f"generation run {self.run}"

    @property
    def owner_dataset(self) -> Dataset | None:
        return self.dataset if self.dataset is not None else self.run.dataset

    @property
    def claim_minutes(self) -> int:
        ds = self.owner_dataset
        return ds.claim_minutes if ds is not None and ds.claim_minutes else DEFAULT_CLAIM_MINUTES

    @property
    def guidelines(self) -> str:
        ds = self.owner_dataset
        return ds.guidelines if ds is not None else ""

    def examples(self) -> QuerySet[Example]:
        return Example.objects.filter(self.example_q())

    def example_q(self, prefix: str = "") -> Q:
        """The scope as a condition, e.g. prefix="example__" on claims and reviews (a join, not an IN over the dataset)."""
        column = "dataset_id" if self.kind == "dataset" else "generation_run_id"
        return Q(**{f"{prefix}{column}": self.pk})


def review_required_for(*, example: Example) -> int:
    """Reviewers an example needs: its dataset's overlap, 1 without a dataset."""
    if example.dataset_id is None:
        return 1
    if Example.dataset.is_cached(example):  # read with the example (the submit locks it with its dataset)
        return example.dataset.reviews_required or 1
    return Dataset.objects.filter(pk=example.dataset_id).values_list("reviews_required", flat=True).first() or 1


def _live_reviews() -> QuerySet[Review]:
    return Review.objects.filter(undone=False, is_adjudication=False)


def claim_is_skip(claim: ReviewClaim) -> bool:
    # A skip is stored as a zero-length claim: it holds no slot, and marks the example as skipped for its reviewer.
    return claim.expires_at <= claim.claimed_at


# ---------------------------------------------------------------- the queue
# One rule decides whether an example has a slot for a reviewer, used by the claim, by its re-check under the row
# lock and by a late submit: free slots = reviews required - live reviews (reviews_done) - others' unexpired claims.


def _with_free_slot(qs: QuerySet[Example], *, reviewer, now: datetime) -> QuerySet[Example]:
    others = (ReviewClaim.objects.filter(example_id=OuterRef("pk"), audit=None, expires_at__gt=now).exclude(reviewer=reviewer)
              .order_by().values("example_id").annotate(n=Count("pk")).values("n"))
    return (qs.alias(slots_required=Coalesce(NullIf(F("dataset__reviews_required"), 0), 1),
                     slots_held=Coalesce(Subquery(others), 0))
            .filter(reviews_done__lt=F("slots_required") - F("slots_held")))


def review_slot_free(*, example_id: int, reviewer, now: datetime) -> bool:
    """Whether the example still has a slot for this reviewer (their own claim aside)."""
    return _with_free_slot(Example.objects.filter(pk=example_id), reviewer=reviewer, now=now).exists()


def review_queue_candidates(*, reviewer, scope: ReviewScope, now: datetime, include_skipped: bool) -> QuerySet[Example]:
    """Examples of the scope that need this reviewer, in id order: pending, with a free slot, not yet reviewed by
    them, and (unless include_skipped) not skipped by them."""
    mine = Review.objects.filter(example_id=OuterRef("pk"), reviewer=reviewer, undone=False, is_adjudication=False)
    qs = scope.examples().filter(status=Example.Status.PENDING_REVIEW).exclude(Exists(mine))
    if not include_skipped:
        skipped = ReviewClaim.objects.filter(example_id=OuterRef("pk"), reviewer=reviewer, audit=None,
                                             expires_at__lte=F("claimed_at"))
        qs = qs.exclude(Exists(skipped))
    return _with_free_slot(qs, reviewer=reviewer, now=now).order_by("pk")


def review_claim_current(*, reviewer, scope: ReviewScope, now: datetime) -> ReviewClaim | None:
    """The reviewer's newest unexpired claim in the scope on an example that still needs their decision (read only:
    the workbench page shows it without renewing it)."""
    mine = Review.objects.filter(example_id=OuterRef("example_id"), reviewer=reviewer, undone=False,
                                 is_adjudication=False)
    return (ReviewClaim.objects.filter(scope.example_q("example__"), reviewer=reviewer, audit=None, expires_at__gt=now,
                                       example__status=Example.Status.PENDING_REVIEW)
            .exclude(Exists(mine)).order_by("-claimed_at", "-id").first())


def review_example_for_card(*, example_id: int) -> Example:
    return Example.objects.select_related("query", "query__persona", "passage", "dataset", "generation_run").get(pk=example_id)


def review_own_decision(*, reviewer, example: Example) -> Review | None:
    """The reviewer's own last undone review of this example (shown after an undo; never others' reviews)."""
    return (Review.objects.filter(reviewer=reviewer, example=example, is_adjudication=False)
            .order_by("-created_at", "-id").first())


# ---------------------------------------------------------------- queue overview


def review_scopes_for(*, reviewer) -> dict:
    """Datasets and generation runs that have examples to review, with progress figures."""
    datasets = []
    for ds in Dataset.objects.order_by("name"):
        datasets.append({"dataset": ds, **review_progress(scope=ReviewScope(dataset=ds), reviewer=reviewer)})
    runs = []
    run_ids = (Example.objects.filter(generation_run__isnull=False, status=Example.Status.PENDING_REVIEW)
               .values_list("generation_run_id", flat=True).distinct())
    for run in GenerationRun.objects.filter(pk__in=run_ids).order_by("-id")[:50]:
        runs.append({"run": run, **review_progress(scope=ReviewScope(run=run), reviewer=reviewer)})
    return {"datasets": datasets, "runs": runs}


REVIEW_STATUSES = (Example.Status.PENDING_REVIEW, Example.Status.IN_ADJUDICATION,
                   Example.Status.APPROVED, Example.Status.REJECTED)


def review_progress(*, scope: ReviewScope, reviewer=None) -> dict:
    counts = {r["status"]: r["n"] for r in scope.examples().values("status").annotate(n=Count("id")).order_by()}
    pending = counts.get(Example.Status.PENDING_REVIEW, 0)
    adjudication = counts.get(Example.Status.IN_ADJUDICATION, 0)
    approved = counts.get(Example.Status.APPROVED, 0)
    rejected = counts.get(Example.Status.REJECTED, 0)
    total = pending + adjudication + approved + rejected
    decided = approved + rejected
    out = {
        "total": total, "pending": pending, "in_adjudication": adjudication, "approved": approved,
        "rejected": rejected, "reviewed": decided, "remaining": pending + adjudication,
        "percent": round(100 * decided / total, 1) if total else 0.0,
        "approval_rate": round(approved / decided, 3) if decided else None,
        "text": f"{decided} / {total} decided",
    }
    if reviewer is not None:
        out["mine"] = _live_reviews().filter(scope.example_q("example__"), reviewer=reviewer).count()
    return out


# ---------------------------------------------------------------- agreement


def review_agreement(*, dataset: Dataset | None = None) -> dict:
    """Inter-annotator agreement: Cohen's kappa per reviewer pair, Krippendorff's alpha (nominal) over all examples
    with two or more reviews, and each reviewer's agreement with the consensus (the adjudicated decision where there
    is one, else a strict majority). Computed in SQL: curation.selectors.agreement."""
    return agreement_figures(dataset_id=dataset.pk if dataset is not None else None)


# ---------------------------------------------------------------- dashboard


def review_dashboard() -> dict:
    datasets = [{"dataset": ds, **review_progress(scope=ReviewScope(dataset=ds))} for ds in Dataset.objects.order_by("name")]
    agreement = review_agreement()
    rows = list(_live_reviews().values("reviewer_id").annotate(n=Count("id"), approvals=Count("id", filter=Q(decision="approve")))
                .order_by("-n"))
    names = dict(get_user_model().objects.filter(pk__in=[r["reviewer_id"] for r in rows]).values_list("pk", "username"))
    seconds: dict[int, list[float]] = defaultdict(list)
    for rid, s in _live_reviews().filter(seconds_spent__gt=0).values_list("reviewer_id", "seconds_spent").order_by("-id")[:50000]:
        seconds[rid].append(s)
    reviewers = []
    for r in rows:
        name = names.get(r["reviewer_id"], r["reviewer_id"])
        secs = seconds.get(r["reviewer_id"])
        median = statistics.median(secs) if secs else None
        reviewers.append({
            "name": name, "count": r["n"], "approval_rate": round(r["approvals"] / r["n"], 3) if r["n"] else None,
            "median_seconds": round(median, 1) if median is not None else None,
            "per_hour": round(3600 / median) if median else None,
            "agreement": agreement["per_reviewer"].get(name, {}).get("rate"),
        })
    per_dataset_agreement = {ds.pk: review_agreement(dataset=ds) for ds in Dataset.objects.order_by("name")}
    for row in datasets:
        row["agreement"] = per_dataset_agreement[row["dataset"].pk]
    return {"datasets": datasets, "reviewers": reviewers, "agreement": agreement,
            "in_adjudication": Example.objects.filter(status=Example.Status.IN_ADJUDICATION).count()}


def adjudication_queue(*, dataset: Dataset | None = None, limit: int = 50) -> list[dict]:
    """Examples in adjudication with every live review, side by side (admins only: this breaks blindness)."""
    qs = (Example.objects.filter(status=Example.Status.IN_ADJUDICATION)
          .select_related("query", "query__persona", "passage", "dataset").order_by("id"))
    if dataset is not None:
        qs = qs.filter(dataset=dataset)
    examples = list(qs[:limit])
    reviews = defaultdict(list)
    for rv in (_live_reviews().filter(example__in=[e.pk for e in examples]).select_related("reviewer")
               .prefetch_related("revisions").order_by("created_at")):
        reviews[rv.example_id].append(rv)
    return [{"example": e, "reviews": reviews[e.pk]} for e in examples]


# ---------------------------------------------------------------- admin browser

SORTS = {
    "id": "id", "-id": "-id", "updated": "updated_at", "-updated": "-updated_at",
    "status": "status", "reviews": "reviews_done", "-reviews": "-reviews_done",
}


def prompt_version_choices() -> list[str]:
    return [f"{n}:{v}" for n, v in PromptTemplate.objects.order_by("name", "version").values_list("name", "version")]


def example_browse(*, filters: dict) -> QuerySet[Example]:
    """Admin browser: filter, full-text search on query and passage, sort. The same queryset feeds bulk decisions."""
    qs = Example.objects.all()
    f = {k: (v or "").strip() for k, v in filters.items()}
    if f.get("dataset"):
        qs = qs.filter(dataset_id=f["dataset"])
    if f.get("status"):
        qs = qs.filter(status=f["status"])
    if f.get("origin"):
        qs = qs.filter(origin=f["origin"])
    if f.get("variant"):
        qs = qs.filter(query__variant=f["variant"])
    if f.get("domain"):
        qs = qs.filter(query__domain=f["domain"])
    if f.get("prompt") and ":" in f["prompt"]:
        name, _, version = f["prompt"].partition(":")
        if name in PromptTemplate.Name.values and version.isdigit():
            qs = qs.filter(**{f"prompt_versions__{name}": int(version)})
    if f.get("decision") in Review.Decision.values:
        reviews = _live_reviews().filter(example=OuterRef("pk"), decision=f["decision"])
        if f.get("reviewer"):
            reviews = reviews.filter(reviewer__username=f["reviewer"])
        qs = qs.filter(Exists(reviews))
    elif f.get("reviewer"):
        qs = qs.filter(Exists(_live_reviews().filter(example=OuterRef("pk"), reviewer__username=f["reviewer"])))
    if f.get("q"):
        qs = example_search(qs=qs, text=f["q"])
    sort = SORTS.get(f.get("sort") or "id", "id")
    return qs.order_by(sort) if sort in ("id", "-id") else qs.order_by(sort, "id")


def example_search(*, qs: QuerySet[Example], text: str) -> QuerySet[Example]:
    """Full-text search on the query and the passage: PostgreSQL's stored, indexed tsvectors; a bounded substring
    scan elsewhere (curation.selectors.search)."""
    if example_search_indexed():
        return qs.filter(example_search_q(text=text))
    return example_search_bounded(qs=qs, text=text)


def browse_choices() -> dict:
    return {
        "statuses": Example.Status.choices, "origins": Example.Origin.choices,
        "variants": GeneratedQuery.Variant.choices,
        "domains": list(GeneratedQuery.objects.exclude(domain="").order_by("domain").values_list("domain", flat=True).distinct()[:200]),
        "prompts": prompt_version_choices(), "decisions": Review.Decision.choices,
        "datasets": list(Dataset.objects.order_by("name").values_list("pk", "name")),
        "sorts": [("id", "oldest first"), ("-id", "newest first"), ("-updated", "recently changed"),
                  ("-reviews", "most reviews"), ("status", "status")],
    }


# ---------------------------------------------------------------- data quality


def data_quality_figures(*, dataset: Dataset | None = None, sample: int = 20000) -> dict:
    """Counts behind the data-quality plots (plots themselves: curation.review_charts)."""
    qs = Example.objects.all() if dataset is None else Example.objects.filter(dataset=dataset)
    domains = {r["query__domain"] or "(none)": r["n"] for r in
               qs.values("query__domain").annotate(n=Count("id")).order_by("-n")[:25]}
    persona_domains = {r["query__persona__domain"] or "(none)": r["n"] for r in
                       qs.values("query__persona__domain").annotate(n=Count("query__persona", distinct=True)).order_by("-n")[:25]}
    variants = {dict(GeneratedQuery.Variant.choices).get(r["query__variant"], r["query__variant"]): r["n"]
                for r in qs.values("query__variant").annotate(n=Count("id")).order_by("query__variant")}
    lengths: dict[str, list[int]] = defaultdict(list)
    for kind, n in qs.annotate(chars=Length("passage__text")).values_list("passage__kind", "chars").order_by("-id")[:sample]:
        lengths[kind].append(n or 0)
    approval: dict[str, dict] = {}
    decided = qs.filter(status__in=[Example.Status.APPROVED, Example.Status.REJECTED])
    for name in PromptTemplate.Name.values:
        rows = (decided.exclude(**{f"prompt_versions__{name}__isnull": True})
                .annotate(v=KeyTextTransform(name, "prompt_versions")).values("v")
                .annotate(approved=Count("id", filter=Q(status=Example.Status.APPROVED)), n=Count("id")).order_by("v"))
        for r in rows:
            if r["v"] is not None:
                approval[f"{name} v{r['v']}"] = {"approved": r["approved"], "n": r["n"],
                                                  "rate": round(r["approved"] / r["n"], 3) if r["n"] else None}
    return {"domains": domains, "persona_domains": persona_domains, "variants": variants,
            "passage_lengths": dict(lengths), "approval_by_prompt": approval, "total": qs.count()}
