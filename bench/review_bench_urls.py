"""The project's URLs with /bench/bare/ in front: a Django view that does nothing, behind the same middleware.
The bare route joins the project's root URLconf instead of wrapping it in an include(), so /api/review/* resolve as
they do in production (an include would be one more resolver pass for the review side only)."""
from django.http import JsonResponse
from django.urls import path

from limrank_app.urls import urlpatterns as project_urlpatterns


def bare(request):
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/bare/", bare), *project_urlpatterns]
