"""manage.py diagnose_version VERSION_ID [--foreground]: compute a dataset version's diagnostics (shortcut AUCs,
near-duplicate clusters, contamination per benchmark) and print them. By default a worker computes them (the Celery
task, progress on the version's row, polled here); --foreground computes them in this process."""
from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError

from curation.models import DatasetVersion
from curation.services import diagnostics as svc


class Command(BaseCommand):
    help = "Compute and print a dataset version's diagnostics (shortcuts, near-duplicates, contamination)."

    def add_arguments(self, parser):
        parser.add_argument("version_id", type=int)
        parser.add_argument("--foreground", action="store_true", help="compute here instead of on a worker")
        parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the worker")
        parser.add_argument("--json", action="store_true", help="print the stored JSON")

    def handle(self, *args, version_id, foreground, timeout, json: bool = False, **options):
        version = DatasetVersion.objects.filter(pk=version_id).first()
        if version is None:
            raise CommandError(f"no dataset version {version_id}")
        if foreground:
            result = svc.dataset_version_diagnose(version=version)
        else:
            svc.dataset_version_diagnose_enqueue(version=version, force=True)
            deadline, last = time.monotonic() + timeout, None
            while True:
                result = DatasetVersion.objects.values_list("diagnostics", flat=True).get(pk=version_id)
                state = (result.get("status"), result.get("step"))
                if state != last and options.get("verbosity", 1):
                    self.stderr.write(f"{state[0]} {result.get('step', '')} {result.get('progress', '')}")
                    last = state
                if result.get("status") in ("done", "failed"):
                    break
                if time.monotonic() > deadline:
                    raise CommandError(f"no worker finished the diagnosis in {timeout:.0f} s (status "
                                       f"{result.get('status')}); run a worker, or use --foreground")
                time.sleep(1)
            if result.get("status") == "failed":
                raise CommandError(f"the diagnosis failed: {result.get('error')}")
        if json:
            self.stdout.write(_json(result))
        else:
            self.stdout.write(render(result))


def _json(result: dict) -> str:
    return json.dumps(result, indent=2, sort_keys=True)


def render(d: dict) -> str:
    lines = [f"{d['examples']} examples"]
    sc = d["shortcuts"]
    lines.append(f"Shortcuts (ROC AUC of a trivial feature predicting the label; warning above {sc['threshold']}):")
    for name, f in sc["features"].items():
        flag = "  WARNING" if f["warning"] else ""
        lines.append(f"  {name:<16} auc {f['auc'] if f['auc'] is not None else '-'}{flag}")
    for key, title in (("duplicate_queries", "queries"), ("duplicate_passages", "passages")):
        nd = d[key]
        lines.append(f"Near-duplicate {title}: {nd['clusters']} clusters, {nd['texts_in_clusters']} of {nd['distinct']} "
                     f"distinct texts, {nd['examples_in_clusters']} examples")
        for c in nd["largest"]:
            lines.append(f"  {c['size']} texts, examples {c['examples']}: {c['texts'][0]!r}")
    ct = d["contamination"]
    lines.append(f"Contamination ({ct['ngram']}-gram overlap with loaded benchmarks): {ct['examples']} examples")
    for name, b in ct["benchmarks"].items():
        lines.append(f"  {name:<24} {b['examples']} examples ({b['by_query']} by query, {b['by_passage']} by passage)")
    if not ct["benchmarks"]:
        lines.append("  (no benchmark loaded)")
    lines.append("Seconds: " + ", ".join(f"{k} {v}" for k, v in d["seconds"].items()))
    return "\n".join(lines)
