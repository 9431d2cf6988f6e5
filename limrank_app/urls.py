from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import tokens_views, views

urlpatterns = [
    # The project's URLconf names every app's routes by module path only: the core imports no higher app.
    path("", include("curation.home_urls")),
    path("healthz", views.healthz, name="healthz"),
    path("status/", views.status_panel, name="status"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # A user's own API tokens (limrank_app/tokens_views.py).
    path("account/tokens/", tokens_views.token_list, name="token_list"),
    path("account/tokens/<int:pk>/revoke/", tokens_views.token_revoke, name="token_revoke"),
    path("admin/", admin.site.urls),
    path("api/", include("limrank_app.api_urls")),
    path("", include("curation.urls")),
    path("training/", include("training.urls")),
    path("evaluation/", include("evaluation.urls")),
]
