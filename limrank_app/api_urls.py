"""The REST API: each app contributes its own routes; the schema and docs live here."""
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("curation.api.urls")),
    path("", include("training.api.urls")),
    path("", include("evaluation.api.urls")),
]
