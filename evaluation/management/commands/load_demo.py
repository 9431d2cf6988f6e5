"""Load the demo that ships (idempotent): users, personas, seeds, examples, prompts, the SciFact benchmark.

It lives in evaluation, the app on top of the graph, because it loads every app's demo step."""
from django.core.management.base import BaseCommand

from curation.services.demo import demo_load, demo_users_ensure
from curation.services.prompts import prompt_defaults_ensure
from evaluation.services import benchmark_demo_ensure, reference_results_ensure


class Command(BaseCommand):
    help = "Load the shipped demo data and create demo-admin / demo-reviewer (idempotent)."

    def handle(self, *args, **options):
        password, generated = demo_users_ensure()
        stats = demo_load()
        self.stdout.write(self.style.SUCCESS(f"demo curation data: {stats}"))
        made = prompt_defaults_ensure()
        self.stdout.write(self.style.SUCCESS(f"prompt templates: {len(made)} default versions created"))
        bench = benchmark_demo_ensure()
        self.stdout.write(self.style.SUCCESS(
            f"benchmark {bench.name}: {bench.n_queries} queries, {bench.n_documents} documents; "
            f"{reference_results_ensure()} reference figures"))
        if generated:
            self.stdout.write(self.style.WARNING(f"demo-admin / demo-reviewer password (generated): {password}"))
        else:
            self.stdout.write("demo-admin / demo-reviewer password: from LIMRANK_DEMO_PASSWORD")
