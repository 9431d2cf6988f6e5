"""Full-text search over examples (issue 21).

PostgreSQL: the stored, GIN-indexed `search_vector` columns of the query and the passage (migration 0013). An example
matches when its query, or its passage (title and text), matches the whole search (websearch syntax: words, "phrases",
or, -word). The matching queries and passages are found through their GIN indexes; the examples through
their query_id / passage_id.

Elsewhere (SQLite): every word must appear, as a substring, in the query, the passage or its title, among the newest
SEARCH_SCAN_ROWS examples only (a bounded scan: older examples are not searched there)."""
from __future__ import annotations

from django.db import connection
from django.db.models import BooleanField, Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL

from curation.models import Example, GeneratedQuery, Passage

SEARCH_SCAN_ROWS = 100_000
SEARCH_CONFIG = "english"
RARE_MATCHES = 5_000  # queries or passages: fewer, and the examples are found by their ids

_MATCHING_QUERIES = ("SELECT id FROM curation_generatedquery "
                     "WHERE search_vector @@ websearch_to_tsquery('english'::regconfig, %s)")
_MATCHING_PASSAGES = ("SELECT id FROM curation_passage "
                      "WHERE search_vector @@ websearch_to_tsquery('english'::regconfig, %s)")


def _matching_ids(sql: str, text: str, limit: int) -> list[int] | None:
    """The ids the search matches (through the GIN index), or None when there are more than `limit`."""
    with connection.cursor() as cur:
        cur.execute(f"{sql} LIMIT %s", [text, limit + 1])
        ids = [r[0] for r in cur.fetchall()]
    return None if len(ids) > limit else ids


def example_search_q(*, text: str) -> Q:
    """The condition on examples (PostgreSQL only): its query or its passage matches the search.

    A rare word matches few queries and passages (RARE_MATCHES at most): their ids are given to the examples'
    query_id / passage_id indexes (a bitmap OR of both, sized right by the planner). A common word matches many: the
    condition is a correlated EXISTS on the query's and the passage's primary key, and a page in id order stops
    after its first rows instead of reading every match."""
    query_ids = _matching_ids(_MATCHING_QUERIES, text, RARE_MATCHES)
    passage_ids = _matching_ids(_MATCHING_PASSAGES, text, RARE_MATCHES) if query_ids is not None else None
    if query_ids is not None and passage_ids is not None:
        return Q(query_id__in=query_ids) | Q(passage_id__in=passage_ids)
    # Correlated EXISTS on the primary keys: PostgreSQL hashes the matches when they fit in work_mem, else looks each
    # example's query and passage up by id; never re-reads every match for every example.
    return (Q(Exists(_vector_match(GeneratedQuery, text).filter(pk=OuterRef("query_id"))))
            | Q(Exists(_vector_match(Passage, text).filter(pk=OuterRef("passage_id")))))


def _vector_match(model, text: str) -> QuerySet:
    return model.objects.filter(RawSQL("search_vector @@ websearch_to_tsquery('english'::regconfig, %s)", [text],
                                       output_field=BooleanField()))


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
