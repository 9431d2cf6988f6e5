"""Full-text search over examples (issue 21).

PostgreSQL: the stored, GIN-indexed `search_vector` columns of the query and the passage (migration 0013). An example
matches when its query, or its passage (title and text), matches the whole search (websearch syntax: words, "phrases",
or, -word). The matching queries and passages are found through their GIN indexes; the examples through
their query_id / passage_id.

Elsewhere (SQLite): every word must appear, as a substring, in the query, the passage or its title, among the newest
SEARCH_SCAN_ROWS examples only (a bounded scan: older examples are not searched there)."""
from __future__ import annotations

from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

from curation.models import Example

SEARCH_SCAN_ROWS = 100_000
SEARCH_CONFIG = "english"

_MATCHING_QUERIES = ("SELECT id FROM curation_generatedquery "
                     "WHERE search_vector @@ websearch_to_tsquery('english'::regconfig, %s)")
_MATCHING_PASSAGES = ("SELECT id FROM curation_passage "
                      "WHERE search_vector @@ websearch_to_tsquery('english'::regconfig, %s)")


def example_search_q(*, text: str) -> Q:
    """The condition on examples (PostgreSQL only): its query or its passage matches the search."""
    return Q(query_id__in=RawSQL(_MATCHING_QUERIES, [text])) | Q(passage_id__in=RawSQL(_MATCHING_PASSAGES, [text]))


def example_search_bounded(*, qs: QuerySet, text: str) -> QuerySet:
    """The substring search of databases without a text index, over the newest SEARCH_SCAN_ROWS examples."""
    bound = Example.objects.order_by("-id").values_list("id", flat=True)[SEARCH_SCAN_ROWS - 1:SEARCH_SCAN_ROWS].first()
    if bound is not None:
        qs = qs.filter(pk__gte=bound)
    for word in text.split()[:10]:
        word = word.strip('"')
        if word and word.lower() != "or" and not word.startswith("-"):
            qs = qs.filter(Q(query__text__icontains=word) | Q(passage__text__icontains=word) | Q(passage__title__icontains=word))
    return qs


def example_search_indexed() -> bool:
    return connection.vendor == "postgresql"
