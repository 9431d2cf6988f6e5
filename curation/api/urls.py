"""Curation API routes. A SimpleRouter (no API root view: every app includes its own router under /api/)."""
from django.urls import path
from rest_framework.routers import SimpleRouter

from curation.api import views
from curation.api import audits as audits_api
from curation.api import review as review_api

router = SimpleRouter()
router.register("personas", views.PersonaViewSet, basename="api-persona")
router.register("seed-queries", views.SeedQueryViewSet, basename="api-seed-query")
router.register("examples", views.ExampleViewSet, basename="api-example")
router.register("reviews", views.ReviewViewSet, basename="api-review")
router.register("generation-runs", views.GenerationRunViewSet, basename="api-generation-run")
router.register("datasets", views.DatasetViewSet, basename="api-dataset")
router.register("dataset-versions", views.DatasetVersionViewSet, basename="api-dataset-version")
router.register("bulk-decisions", views.BulkDecisionViewSet, basename="api-bulk-decision")

# The review workbench over JSON (curation/api/review.py), under /api/ like every other endpoint.
urlpatterns = router.urls + [
    path("review/next/", review_api.ReviewNextView.as_view(), name="api-review-next"),
    path("review/submit/", review_api.ReviewSubmitView.as_view(), name="api-review-submit"),
    path("review/skip/", review_api.ReviewSkipView.as_view(), name="api-review-skip"),
    path("review/undo/", review_api.ReviewUndoView.as_view(), name="api-review-undo"),
    path("review/agreement/", review_api.ReviewAgreementView.as_view(), name="api-review-agreement"),
    # Blind audit rounds of the LLM filter (curation/api/audits.py); reviewers work them through review/next|submit.
    path("audits/", audits_api.AuditListView.as_view(), name="api-audits"),
    path("audits/<int:pk>/report/", audits_api.AuditReportView.as_view(), name="api-audit-report"),
    path("audits/<int:pk>/apply/", audits_api.AuditApplyView.as_view(), name="api-audit-apply"),
]
