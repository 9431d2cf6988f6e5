from rest_framework.pagination import CursorPagination


class IdCursorPagination(CursorPagination):
    """Stable, fast pages over large tables: the cursor walks the primary key."""

    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
