from django.urls import path

from .views import datasets, examples
from .views import audits, review
from .views import imports as import_views, prompts as prompt_views, runs as run_views

app_name = "curation"
urlpatterns = [
    path("examples/", examples.example_list, name="example_list"),
    path("examples/<int:pk>/", examples.example_detail, name="example_detail"),
    # Dataset versions (curation/views/datasets.py).
    path("datasets/versions/", datasets.version_list, name="version_list"),
    path("datasets/versions/new/", datasets.version_build, name="version_build"),
    path("datasets/versions/<int:pk>/", datasets.version_detail, name="version_detail"),
    path("datasets/versions/<int:pk>/resume/", datasets.version_resume, name="version_resume"),
    # The reviewer's workbench (curation/views/review.py): a queue per dataset or per generation run.
    path("review/", review.review_index, name="review_index"),
    path("review/dashboard/", review.review_dashboard, name="review_dashboard"),
    path("review/adjudicate/", review.review_adjudicate, name="review_adjudicate"),
    path("review/browse/", review.review_browse, name="review_browse"),
    path("review/quality/", review.review_quality, name="review_quality"),
    path("review/bulk/<int:pk>/", review.review_bulk, name="review_bulk"),
    path("review/<int:scope_id>/", review.review_queue, name="review_queue"),
    path("review/<int:scope_id>/next/", review.review_next, name="review_next"),
    path("review/<int:scope_id>/undo/", review.review_undo, name="review_undo"),
    path("review/<int:scope_id>/examples/<int:example_id>/decide/", review.review_decide, name="review_decide"),
    path("review/<int:scope_id>/examples/<int:example_id>/skip/", review.review_skip, name="review_skip"),
    path("review/run/<int:scope_id>/", review.review_queue, {"kind": "run"}, name="review_run_queue"),
    path("review/run/<int:scope_id>/next/", review.review_next, {"kind": "run"}, name="review_run_next"),
    path("review/run/<int:scope_id>/undo/", review.review_undo, {"kind": "run"}, name="review_run_undo"),
    path("review/run/<int:scope_id>/examples/<int:example_id>/decide/", review.review_decide, {"kind": "run"}, name="review_run_decide"),
    path("review/run/<int:scope_id>/examples/<int:example_id>/skip/", review.review_skip, {"kind": "run"}, name="review_run_skip"),
    # Blind audit rounds of the LLM filter (curation/views/audits.py).
    path("audits/", audits.audit_list, name="audit_list"),
    path("audits/<int:pk>/", audits.audit_report, name="audit_report"),
    path("audits/<int:pk>/apply/", audits.audit_apply, name="audit_apply"),
    path("audits/<int:pk>/review/", audits.audit_workbench, name="audit_workbench"),
    path("audits/<int:pk>/review/next/", audits.audit_next, name="audit_next"),
    path("audits/<int:pk>/review/examples/<int:example_id>/decide/", audits.audit_decide, name="audit_decide"),
    path("audits/<int:pk>/review/examples/<int:example_id>/skip/", audits.audit_skip, name="audit_skip"),
    # The synthesizer (admins): generation runs, prompt versions, imports (curation/views/runs.py, prompts.py, imports.py).
    path("runs/", run_views.run_list, name="run_list"),
    path("runs/<int:pk>/", run_views.run_detail, name="run_detail"),
    path("runs/<int:pk>/cancel/", run_views.run_cancel, name="run_cancel"),
    path("runs/<int:pk>/resume/", run_views.run_resume, name="run_resume"),
    path("prompts/", prompt_views.prompt_list, name="prompt_list"),
    path("prompts/<str:name>/edit/", prompt_views.prompt_edit, name="prompt_edit"),
    path("prompts/versions/<int:pk>/activate/", prompt_views.prompt_activate_view, name="prompt_activate"),
    path("imports/", import_views.import_upload, name="import_upload"),
]
