from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .roles import admin_required
from .selectors import health_report


@require_GET
@never_cache
def healthz(request):
    report = health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)


@admin_required
@never_cache
def status_panel(request):
    template = "partials/health.html" if request.headers.get("HX-Request") else "status.html"
    return render(request, template, {"report": health_report()})
