"""The project's URLs plus /bench/bare/: a Django view that does nothing, behind the same middleware."""
from django.http import JsonResponse
from django.urls import include, path


def bare(request):
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/bare/", bare), path("", include("limrank_app.urls"))]
