"""The data of the LimRank-Synthesizer pipeline and its human verification."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from limrank_app.jobs import JobState


class Persona(models.Model):
    text = models.TextField()
    domain = models.CharField(max_length=64, blank=True, db_index=True)
    source = models.CharField(max_length=64, blank=True, help_text="personahub, demo, manual, ...")
    text_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.text[:80]


class SeedQuery(models.Model):
    external_id = models.CharField(max_length=64, blank=True, db_index=True, help_text="e.g. the MS MARCO qid")
    text = models.TextField()
    source = models.CharField(max_length=64, blank=True, help_text="msmarco, demo, ...")
    text_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "seed queries"

    def __str__(self):
        return self.text[:80]


class PromptTemplate(models.Model):
    class Name(models.TextChoices):
        REWRITE = "rewrite", "Rewrite seed query for a persona"
        POSITIVE = "positive", "Write a positive passage"
        HARD_NEGATIVE = "hard_negative", "Write hard-negative passages"
        REASONER = "reasoner", "Reason about relevance and judge"

    name = models.CharField(max_length=32, choices=Name.choices)
    version = models.PositiveIntegerField()
    text = models.TextField(help_text="Python str.format template; fields depend on the prompt.")
    notes = models.TextField(blank=True)
    is_active = models.BooleanField(default=True, help_text="the version new runs use")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="prompt_name_version_unique")]
        ordering = ["name", "-version"]

    def __str__(self):
        return f"{self.name} v{self.version}"


class Dataset(models.Model):
    """A collection of examples under review, like an Argilla dataset or a Label Studio project."""

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="shown to reviewers beside every example (Markdown)")
    reviews_required = models.PositiveSmallIntegerField(default=1, help_text="reviewers per example (overlap)")
    claim_minutes = models.PositiveSmallIntegerField(default=15, help_text="how long a claim holds")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name


class GenerationRun(JobState):
    """One run of the synthesizer: seeds x personas -> queries -> passages -> judged examples."""

    execute_task = "curation.tasks.generation_run_execute_task"

    name = models.CharField(max_length=200, blank=True)
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="generation_runs")
    params = models.JSONField(default=dict, blank=True, help_text="n_seeds, n_personas, random_seed, in_flight, consistency_k, models")
    stats = models.JSONField(default=dict, blank=True, help_text="calls, tokens, cost, kept, filtered, failed")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    def __str__(self):
        return self.name or f"run {self.pk}"


class GeneratedQuery(models.Model):
    class Variant(models.TextChoices):
        ORIGINAL = "original", "Original"
        DAILY_LIFE = "daily_life", "Daily life"
        EXPERT = "expert", "Expert domain"

    seed = models.ForeignKey(SeedQuery, null=True, blank=True, on_delete=models.SET_NULL, related_name="generated")
    persona = models.ForeignKey(Persona, null=True, blank=True, on_delete=models.SET_NULL, related_name="queries")
    variant = models.CharField(max_length=16, choices=Variant.choices, default=Variant.ORIGINAL, db_index=True)
    domain = models.CharField(max_length=64, blank=True, db_index=True)
    text = models.TextField()
    instruction = models.TextField(blank=True, help_text="instruction-following data: appended to the query in prompts")
    generation_run = models.ForeignKey(GenerationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="queries")
    prompt = models.ForeignKey(PromptTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    text_hash = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "generated queries"
        constraints = [
            # A resumed run never writes the same (seed, persona, variant) twice.
            models.UniqueConstraint(
                fields=["generation_run", "seed", "persona", "variant"],
                condition=models.Q(generation_run__isnull=False),
                name="genquery_run_item_unique",
            )
        ]

    def __str__(self):
        return self.text[:80]


class Passage(models.Model):
    class Kind(models.TextChoices):
        POSITIVE = "positive", "Positive"
        HARD_NEGATIVE = "hard_negative", "Hard negative"
        CORPUS = "corpus", "Corpus"

    title = models.CharField(max_length=500, blank=True)
    text = models.TextField()
    kind = models.CharField(max_length=16, choices=Kind.choices, db_index=True)
    source = models.CharField(max_length=64, blank=True, help_text="synthetic, msmarco, rank1, ...")
    query = models.ForeignKey(GeneratedQuery, null=True, blank=True, on_delete=models.SET_NULL, related_name="passages")
    prompt = models.ForeignKey(PromptTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    text_hash = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return (self.title or self.text)[:80]


class Example(models.Model):
    """A (query, passage) pair with its intended label, the reasoner's trace and judgment."""

    class Origin(models.TextChoices):
        SYNTHETIC = "synthetic", "Synthetic"
        RANK1 = "rank1", "Rank1"
        IMPORTED = "imported", "Imported"

    class Status(models.TextChoices):
        GENERATED = "generated", "Generated"
        FILTERED_OUT = "filtered_out", "Filtered out"
        PENDING_REVIEW = "pending_review", "Pending review"
        IN_ADJUDICATION = "in_adjudication", "In adjudication"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    # Indexes are chosen for the review queue's writes as much as for reads: every decision rewrites the row (status
    # is indexed, so no HOT update) and so inserts into each index. dataset_id is the first column of the queue index.
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="examples", db_index=False)
    query = models.ForeignKey(GeneratedQuery, on_delete=models.PROTECT, related_name="examples")
    passage = models.ForeignKey(Passage, on_delete=models.PROTECT, related_name="examples")
    intended_label = models.BooleanField(help_text="True: the passage should be relevant")
    reasoning_trace = models.TextField(blank=True)
    reasoner_judgment = models.BooleanField(null=True, blank=True)
    judgment_votes = models.JSONField(default=list, blank=True, help_text="the k reasoner samples' judgments")
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.SYNTHETIC)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.GENERATED)
    filter_reason = models.CharField(max_length=200, blank=True)
    generation_run = models.ForeignKey(GenerationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="examples")
    prompt_versions = models.JSONField(default=dict, blank=True, help_text='{"rewrite": 1, "positive": 2, ...}')
    reasoner_model = models.CharField(max_length=200, blank=True)
    content_hash = models.CharField(max_length=64)  # unique: see Meta (a constraint, without a LIKE index)
    reviews_done = models.PositiveSmallIntegerField(default=0, help_text="non-undone reviews so far")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["dataset", "status", "id"], name="example_queue_idx"),
            models.Index(fields=["origin", "status"], name="example_origin_status_idx"),
            models.Index(fields=["status"], name="example_status_idx"),
            # The review queue: only examples still pending, in id order per dataset / generation run.
            models.Index(fields=["dataset", "id"], condition=models.Q(status="pending_review"), name="example_pending_dataset_idx"),
            models.Index(fields=["generation_run", "id"], condition=models.Q(status="pending_review"), name="example_pending_run_idx"),
        ]
        constraints = [models.UniqueConstraint(fields=["content_hash"], name="example_content_hash_unique")]

    def __str__(self):
        return f"example {self.pk}"

    @property
    def judgment_agrees(self) -> bool | None:
        if self.reasoner_judgment is None:
            return None
        return self.reasoner_judgment == self.intended_label


class ReviewClaim(models.Model):
    """A reviewer's hold on an example (one review slot) until it expires or is submitted."""

    # example_id is the first column of the unique constraint: no index of its own.
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="claims", db_index=False)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_claims")
    # The queue's clock, not the wall clock at insert: a renewed or resumed claim sets both times itself.
    claimed_at = models.DateTimeField(default=timezone.now)
    # Not indexed: every query on live claims names the example or the reviewer, whose indexes it uses.
    expires_at = models.DateTimeField()
    # A claim in a blind audit round (curation.services.audits) holds an audit slot, not a review slot: the review
    # queue counts only claims without an audit, and the two kinds never collide on the uniqueness rules below.
    # No index of its own: the partial unique index below (audit first) serves every lookup by audit, and a review
    # claim (audit NULL) then writes no entry for it.
    audit = models.ForeignKey("Audit", null=True, blank=True, on_delete=models.CASCADE, related_name="claims",
                              db_index=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["example", "reviewer"], condition=models.Q(audit__isnull=True),
                                    name="claim_example_reviewer_unique"),
            models.UniqueConstraint(fields=["audit", "example", "reviewer"], condition=models.Q(audit__isnull=False),
                                    name="claim_audit_example_reviewer_unique"),
        ]


class Review(models.Model):
    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    edits = models.JSONField(default=dict, blank=True, help_text="field -> new value, applied as a revision")
    reason = models.CharField(max_length=200, blank=True)
    reason_code = models.PositiveSmallIntegerField(null=True, blank=True)
    seconds_spent = models.FloatField(default=0)
    is_adjudication = models.BooleanField(default=False)
    undone = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        # No index on decision (migration 0010): it has two values, so a filter on it alone matches about half the
        # reviews and is served as well by the table; the examples' decision filters probe reviews by example_id.
        # Every submit wrote an entry into it.
        constraints = [
            models.UniqueConstraint(
                fields=["example", "reviewer"],
                condition=models.Q(undone=False, is_adjudication=False),
                name="review_one_live_per_reviewer",
            )
        ]

    def __str__(self):
        return f"{self.reviewer} {self.decision} example {self.example_id}"


class ExampleRevision(models.Model):
    """An edit of an example: what changed, from what, by whom."""

    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="revisions")
    editor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    review = models.ForeignKey(Review, null=True, blank=True, on_delete=models.SET_NULL, related_name="revisions")
    changes = models.JSONField(help_text='{"field": {"old": ..., "new": ...}}')
    created_at = models.DateTimeField(auto_now_add=True)


class LLMCall(models.Model):
    class Role(models.TextChoices):
        GENERATOR = "generator", "Generator"
        REASONER = "reasoner", "Reasoner"

    generation_run = models.ForeignKey(GenerationRun, null=True, blank=True, on_delete=models.CASCADE, related_name="llm_calls")
    role = models.CharField(max_length=16, choices=Role.choices)
    purpose = models.CharField(max_length=32, blank=True, help_text="rewrite, positive, hard_negative, reasoner")
    model = models.CharField(max_length=200)
    prompt = models.ForeignKey(PromptTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    prompt_version = models.PositiveIntegerField(null=True, blank=True)
    item_key = models.CharField(max_length=200, blank=True, db_index=True, help_text="which work item made this call")
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = "LLM call"


class DatasetVersion(models.Model):
    """A frozen, hashed selection of examples: built from a filter and a mixing recipe."""

    class Status(models.TextChoices):
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200, blank=True)
    filters = models.JSONField(default=dict, blank=True, help_text='e.g. {"status": "approved"}')
    recipe = models.JSONField(default=dict, blank=True, help_text='e.g. {"seed": 12345, "mix": {"rank1": 14000, "synthetic": 6000}}')
    content_hash = models.CharField(max_length=64, blank=True, db_index=True)
    example_count = models.PositiveIntegerField(default=0)
    diagnostics = models.JSONField(default=dict, blank=True, help_text="shortcuts, near-duplicates, contamination (curation.diagnostics)")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BUILDING)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    # Computed once when the version is built (a version never changes): curation.selectors.datasheet.
    datasheet = models.JSONField(default=dict, blank=True, help_text="the datasheet's figures, computed at build")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "version"], name="datasetversion_unique")]
        ordering = ["dataset", "-version"]

    def __str__(self):
        return f"{self.dataset.name} v{self.version}"


class DatasetVersionMember(models.Model):
    """One example of a version, with its content frozen at build time (later edits don't leak in)."""

    # version_id leads both unique indexes below; an index of its own only tempted PostgreSQL into scanning it and
    # sorting each export range on disk instead of reading (version, position) in order.
    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="members", db_index=False)
    example = models.ForeignKey(Example, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField()
    query_text = models.TextField()
    instruction = models.TextField(blank=True)
    passage_title = models.CharField(max_length=500, blank=True)
    passage_text = models.TextField()
    reasoning_trace = models.TextField(blank=True)
    label = models.BooleanField()
    origin = models.CharField(max_length=16)
    variant = models.CharField(max_length=16, blank=True)
    domain = models.CharField(max_length=64, blank=True)
    # Provenance frozen with the content: exports and datasheets never read the (editable) example.
    reasoner_judgment = models.BooleanField(null=True, blank=True)
    reasoner_model = models.CharField(max_length=200, blank=True)
    prompt_versions = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "position"], name="member_position_unique"),
            models.UniqueConstraint(fields=["version", "example"], name="member_example_unique"),
        ]
        ordering = ["version", "position"]


class DatasetVersionBuild(JobState):
    """The job that writes a large version's members on a worker (issue 21); one per version. Small builds run in the
    request and have none. Idempotent: the members are written in one transaction that also sets the version's
    content hash, so a restarted job (worker killed, redelivery) either finds the version built or builds it afresh."""

    execute_task = "curation.tasks.dataset_version_build_task"

    version = models.OneToOneField(DatasetVersion, on_delete=models.CASCADE, related_name="build")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")

    def __str__(self):
        return f"build of {self.version}"


class BulkDecision(JobState):
    """A bulk approve/reject of the browser's filtered set, run on a worker when large (issue 21). Idempotent: the
    decisions and `changed` are written in one transaction, and examples already decided are not decided again."""

    execute_task = "curation.tasks.bulk_decision_execute_task"

    filters = models.JSONField(default=dict, help_text="the browser's filters (curation.selectors.example_browse)")
    decision = models.CharField(max_length=16, choices=Review.Decision.choices)
    reason = models.CharField(max_length=200, blank=True)
    changed = models.PositiveIntegerField(null=True, blank=True, help_text="examples changed; set once, when done")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")

    def __str__(self):
        return f"bulk {self.decision} {self.pk}"


class Audit(models.Model):
    """A blind audit round: a stratified random sample of a dataset's or a run's examples, filtered-out ones included,
    judged by reviewers who see neither the intended label nor the reasoner's judgment. Measures the LLM filter."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.CASCADE, related_name="audits")
    generation_run = models.ForeignKey(GenerationRun, null=True, blank=True, on_delete=models.CASCADE, related_name="audits")
    size = models.PositiveIntegerField()
    seed = models.BigIntegerField(default=0)
    double = models.PositiveIntegerField(default=0, help_text="members audited by two reviewers (human agreement)")
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN)
    applied_at = models.DateTimeField(null=True, blank=True, help_text="when an admin applied the verdicts")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(
            condition=models.Q(dataset__isnull=True) ^ models.Q(generation_run__isnull=True), name="audit_one_scope")]

    def __str__(self):
        return f"audit {self.pk}"


class AuditMember(models.Model):
    """One sampled example, with the stratum and the filter's verdict frozen at sampling time."""

    audit = models.ForeignKey(Audit, on_delete=models.CASCADE, related_name="members")
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="audit_members")
    position = models.PositiveIntegerField(help_text="random order within the audit (the queue's order)")
    kept = models.BooleanField(help_text="the filter kept it (status was not filtered_out at sampling)")
    stratum = models.CharField(max_length=300)
    verdicts_required = models.PositiveSmallIntegerField(default=1)
    verdicts_done = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["audit", "example"], name="auditmember_unique")]
        indexes = [models.Index(fields=["audit", "position"], name="auditmember_queue_idx")]
        ordering = ["audit", "position"]


class AuditVerdict(models.Model):
    """A reviewer's blind answer to the relevance question, stored apart from reviews (it changes no status)."""

    class Verdict(models.TextChoices):
        RELEVANT = "relevant", "Relevant"
        NOT_RELEVANT = "not_relevant", "Not relevant"
        UNUSABLE = "unusable", "Unusable"

    member = models.ForeignKey(AuditMember, on_delete=models.CASCADE, related_name="verdicts")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="audit_verdicts")
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    reason = models.CharField(max_length=200, blank=True)
    seconds_spent = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "reviewer"], name="auditverdict_one_per_reviewer")]
        ordering = ["member", "id"]
