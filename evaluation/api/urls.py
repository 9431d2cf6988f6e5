from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("benchmarks", views.BenchmarkViewSet, basename="api-benchmark")
router.register("reranker-models", views.RerankerModelViewSet, basename="api-reranker-model")
router.register("eval-runs", views.EvalRunViewSet, basename="api-eval-run")
router.register("reference-results", views.ReferenceResultViewSet, basename="api-reference-result")

urlpatterns = [
    path("leaderboard/", views.LeaderboardView.as_view(), name="api-leaderboard"),
    *router.urls,
]
