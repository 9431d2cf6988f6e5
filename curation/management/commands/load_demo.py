"""Load the demo that ships (idempotent): users, personas, seeds, examples, prompts, the SciFact benchmark."""
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Load the shipped demo data and create demo-admin / demo-reviewer (idempotent)."

    def handle(self, *args, **options):
        from curation.services.demo import demo_load, demo_users_ensure

        password, generated = demo_users_ensure()
        stats = demo_load()
        self.stdout.write(self.style.SUCCESS(f"demo curation data: {stats}"))
        # Each app adds its demo step below (prompts, benchmark, reference figures).
        from curation.services.prompts import prompt_defaults_ensure

        made = prompt_defaults_ensure()
        self.stdout.write(self.style.SUCCESS(f"prompt templates: {len(made)} default versions created"))
        from evaluation.services import benchmark_demo_ensure, reference_results_ensure

        bench = benchmark_demo_ensure()
        self.stdout.write(self.style.SUCCESS(
            f"benchmark {bench.name}: {bench.n_queries} queries, {bench.n_documents} documents; "
            f"{reference_results_ensure()} reference figures"))
        if generated:
            self.stdout.write(self.style.WARNING(f"demo-admin / demo-reviewer password (generated): {password}"))
        else:
            self.stdout.write("demo-admin / demo-reviewer password: from LIMRANK_DEMO_PASSWORD")
