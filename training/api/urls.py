"""Training API routes (a SimpleRouter; included under /api/)."""
from rest_framework.routers import SimpleRouter

from training.api import views

router = SimpleRouter()
router.register("training-jobs", views.TrainingJobViewSet, basename="api-training-job")
router.register("model-artifacts", views.ModelArtifactViewSet, basename="api-model-artifact")
router.register("training-presets", views.TrainingPresetViewSet, basename="api-training-preset")

urlpatterns = router.urls
