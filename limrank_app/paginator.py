"""A paginator whose count stops at a cap (issue 21): counting every row a filter matches costs a scan of them all
at a million examples; a list page only needs to know whether there are more than it will ever page through."""
from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.functional import cached_property

COUNT_CAP = 10_000


class CappedPaginator(Paginator):
    """Counts at most `count_cap` + 1 rows (COUNT over a LIMITed subquery). Past the cap, `count` is the cap,
    `count_capped` is true and `count_text` reads "10,000+"; pages stop at the cap (narrow the filter to go further)."""

    count_cap = COUNT_CAP
    count_capped = False

    @cached_property
    def count(self) -> int:
        n = self.object_list[: self.count_cap + 1].count()
        self.count_capped = n > self.count_cap
        return min(n, self.count_cap)

    @property
    def count_text(self) -> str:
        n = self.count
        return f"{self.count_cap:,}+" if self.count_capped else str(n)
