"""The project's URLs with /bench/bare/ in front: a Django view that does nothing, behind the same middleware (the
framework's floor, measured beside the review queue by bench/review_api.py)."""
from django.http import JsonResponse
from django.urls import path

from limrank_app.urls import urlpatterns as project_urlpatterns


def bare(request):
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/bare/", bare), *project_urlpatterns]
