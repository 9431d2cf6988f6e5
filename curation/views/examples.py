from django.shortcuts import get_object_or_404, render

from limrank_app.paginator import CappedPaginator
from limrank_app.roles import reviewer_required

from curation import selectors
from curation.models import Example


@reviewer_required
def example_list(request):
    filters = {k: request.GET.get(k, "") for k in ("status", "origin", "dataset")}
    page = CappedPaginator(selectors.example_list(filters=filters, viewer=request.user), 50).get_page(request.GET.get("page"))
    return render(request, "curation/example_list.html", {"page": page, "filters": filters, "statuses": Example.Status.choices, "origins": Example.Origin.choices})


@reviewer_required
def example_detail(request, pk: int):
    example = get_object_or_404(selectors.example_list(viewer=request.user), pk=pk)
    return render(request, "curation/example_detail.html", {"example": example})
