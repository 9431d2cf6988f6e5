"""Who may call what: one row per operation of the API schema, plus the schema and docs themselves.

Policies (limrank_app/api/permissions.py):
  REVIEWER_READ_ADMIN_WRITE  reviewers and admins read; only admins write
  ADMIN                      admins only
  REVIEWER                   reviewers and admins, reads and writes (their own claims and reviews)
and for every policy: a read-only API token may only read; anonymous callers get 401.

A new endpoint needs a row here: test_every_schema_operation_has_a_row fails until it has one.
"""
RRAW = "reviewer_read_admin_write"
ADMIN = "admin"
REVIEWER = "reviewer"

TABLE: list[tuple[str, str, str]] = [
    # curation (curation/api/views.py)
    ("GET", "/api/personas/", RRAW),
    ("GET", "/api/personas/{id}/", RRAW),
    ("POST", "/api/personas/import/", RRAW),
    ("GET", "/api/seed-queries/", RRAW),
    ("GET", "/api/seed-queries/{id}/", RRAW),
    ("POST", "/api/seed-queries/import/", RRAW),
    ("GET", "/api/examples/", RRAW),
    ("GET", "/api/examples/{id}/", RRAW),
    ("POST", "/api/examples/import/", RRAW),
    ("GET", "/api/reviews/", REVIEWER),
    ("GET", "/api/reviews/{id}/", REVIEWER),
    ("GET", "/api/generation-runs/", ADMIN),
    ("POST", "/api/generation-runs/", ADMIN),
    ("GET", "/api/generation-runs/{id}/", ADMIN),
    ("POST", "/api/generation-runs/{id}/resume/", ADMIN),
    ("GET", "/api/datasets/", RRAW),
    ("POST", "/api/datasets/", RRAW),
    ("GET", "/api/datasets/{id}/", RRAW),
    ("PUT", "/api/datasets/{id}/", RRAW),
    ("PATCH", "/api/datasets/{id}/", RRAW),
    ("GET", "/api/dataset-versions/", RRAW),
    ("POST", "/api/dataset-versions/", RRAW),
    ("GET", "/api/dataset-versions/{id}/", RRAW),
    ("GET", "/api/dataset-versions/{id}/datasheet/", RRAW),
    ("GET", "/api/dataset-versions/{id}/export/", RRAW),
    ("GET", "/api/dataset-versions/{id}/build/", RRAW),
    ("POST", "/api/dataset-versions/{id}/resume/", RRAW),
    ("GET", "/api/bulk-decisions/", ADMIN),
    ("POST", "/api/bulk-decisions/", ADMIN),
    ("GET", "/api/bulk-decisions/{id}/", ADMIN),
    ("POST", "/api/bulk-decisions/{id}/resume/", ADMIN),
    # review workbench (curation/api/review.py)
    ("POST", "/api/review/next/", REVIEWER),
    ("POST", "/api/review/submit/", REVIEWER),
    ("POST", "/api/review/skip/", REVIEWER),
    ("POST", "/api/review/undo/", REVIEWER),
    ("GET", "/api/review/agreement/", ADMIN),
    # blind audit rounds (curation/api/audits.py); reviewers work them through /api/review/ with {"audit": id}
    ("GET", "/api/audits/", ADMIN),
    ("POST", "/api/audits/", ADMIN),
    ("GET", "/api/audits/{id}/report/", ADMIN),
    ("POST", "/api/audits/{id}/apply/", ADMIN),
    # training (training/api/)
    ("GET", "/api/training-jobs/", RRAW),
    ("POST", "/api/training-jobs/", RRAW),
    ("GET", "/api/training-jobs/{id}/", RRAW),
    ("POST", "/api/training-jobs/{id}/cancel/", RRAW),
    ("POST", "/api/training-jobs/{id}/resume/", RRAW),
    ("GET", "/api/model-artifacts/", RRAW),
    ("GET", "/api/model-artifacts/{id}/", RRAW),
    ("GET", "/api/training-presets/", RRAW),
    # evaluation (evaluation/api/)
    ("GET", "/api/benchmarks/", RRAW),
    ("POST", "/api/benchmarks/", RRAW),
    ("GET", "/api/benchmarks/{id}/", RRAW),
    ("POST", "/api/benchmarks/{id}/runs/", RRAW),
    ("GET", "/api/reranker-models/", RRAW),
    ("POST", "/api/reranker-models/", RRAW),
    ("GET", "/api/reranker-models/{id}/", RRAW),
    ("GET", "/api/eval-runs/", RRAW),
    ("POST", "/api/eval-runs/", RRAW),
    ("GET", "/api/eval-runs/{id}/", RRAW),
    ("GET", "/api/eval-runs/{id}/queries/", RRAW),
    ("GET", "/api/eval-runs/{id}/run-file/", RRAW),
    ("POST", "/api/eval-runs/{id}/resume/", RRAW),
    ("GET", "/api/reference-results/", REVIEWER),
    ("GET", "/api/reference-results/{id}/", REVIEWER),
    ("GET", "/api/leaderboard/", REVIEWER),
]

# Served beside the schema, not described in it.
EXTRA: list[tuple[str, str, str]] = [
    ("GET", "/api/schema/", REVIEWER),
    ("GET", "/api/docs/", REVIEWER),
]

SAFE = {"GET", "HEAD", "OPTIONS"}


def allowed(policy: str, method: str, *, role: str | None, scope: str | None) -> bool:
    """role: None (anonymous), "reviewer" or "admin"; scope: None (session), "read" or "write" (token)."""
    if role is None:
        return False
    if scope == "read" and method not in SAFE:
        return False
    if policy == ADMIN:
        return role == "admin"
    if policy == REVIEWER:
        return True
    if policy == RRAW:
        return method in SAFE or role == "admin"
    raise ValueError(policy)
