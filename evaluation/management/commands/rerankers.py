"""manage.py rerankers: the table of reranking strategies, one line each (family, kind, backends, feed, cost unit,
paper), and whether its module is part of this build."""
from django.core.management.base import BaseCommand

from evaluation.rerankers import STRATEGIES, strategy_available


class Command(BaseCommand):
    help = "List the reranking strategies a RerankerModel's kind can name, one line each."

    def handle(self, *args, **o):
        rows = [("family", "kind", "backends", "feed", "cost unit", "paper")]
        for s in STRATEGIES:
            family = s.family if strategy_available(s.kind) else f"{s.family} (not in this build)"
            rows.append((family, s.kind, ",".join(s.backends), s.feed, s.cost_unit, s.paper))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            self.stdout.write("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5])
