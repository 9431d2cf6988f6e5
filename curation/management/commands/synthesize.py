"""manage.py synthesize: a generation run in the foreground (same service as the Celery task), with a progress bar."""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from curation.generation_params import DEFAULTS, GenerationParams
from curation.models import Dataset, GenerationRun
from curation.services.generation import generation_run_create, generation_run_execute, generation_run_resume
from limrank_app.jobs import JobStatus, job_claim


class Command(BaseCommand):
    help = (
        "Run the LimRank-Synthesizer in the foreground: seeds x personas -> rewrites -> passages -> reasoner filter. "
        "Endpoints from LIMRANK_GENERATOR_BASE_URL/_MODEL/_API_KEY and LIMRANK_REASONER_BASE_URL/_MODEL/_API_KEY."
    )

    def add_arguments(self, parser):
        d = DEFAULTS
        parser.add_argument("--seeds", type=int, default=d.n_seeds, help="seed queries to sample")
        parser.add_argument("--personas", type=int, default=d.n_personas, help="personas to sample (every seed meets every persona)")
        parser.add_argument("--in-flight", type=int, default=d.in_flight, help="LLM calls in flight at once")
        parser.add_argument("--consistency", type=int, default=d.consistency_k, help="reasoner samples per pair (majority when > 1)")
        parser.add_argument("--hard-negatives", type=int, default=d.n_hard_negatives, help="hard negatives per query")
        parser.add_argument("--random-seed", type=int, default=d.random_seed)
        parser.add_argument("--generator-model", default="")
        parser.add_argument("--reasoner-model", default="")
        parser.add_argument("--dataset", default="", help="put the examples in this dataset (created if missing)")
        parser.add_argument("--name", default="")
        parser.add_argument("--resume", type=int, metavar="RUN_ID", help="carry on with an unfinished run instead")

    def handle(self, *args, **o):
        if o["resume"]:
            run = GenerationRun.objects.filter(pk=o["resume"]).first()
            if run is None:
                raise CommandError(f"no generation run {o['resume']}")
            if run.status == JobStatus.SUCCEEDED:
                raise CommandError(f"run {run.pk} has already succeeded")
            if run.status == JobStatus.RUNNING and not job_claim(GenerationRun, pk=run.pk):
                raise CommandError(f"run {run.pk} is running on {run.claimed_by} (heartbeat {run.heartbeat_at}); stop it first")
            if run.status != JobStatus.RUNNING:
                generation_run_resume(run=run, enqueue=False)
        else:
            dataset = Dataset.objects.get_or_create(name=o["dataset"])[0] if o["dataset"] else None
            try:
                params = GenerationParams(
                    n_seeds=o["seeds"], n_personas=o["personas"], random_seed=o["random_seed"], in_flight=o["in_flight"],
                    consistency_k=o["consistency"], n_hard_negatives=o["hard_negatives"],
                    generator_model=o["generator_model"], reasoner_model=o["reasoner_model"],
                )
                run = generation_run_create(name=o["name"] or "synthesize (command line)", dataset=dataset, params=params,
                                            enqueue=False)
            except ValidationError as exc:  # a value out of its limits, named
                raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        if run.status == JobStatus.QUEUED and not job_claim(GenerationRun, pk=run.pk):
            raise CommandError(f"could not claim run {run.pk}")
        run.refresh_from_db()
        self.stdout.write(f"run {run.pk}: {run.params['n_seeds']} seeds x {run.params['n_personas']} personas, "
                          f"{run.progress_total} examples expected, {run.params['in_flight']} calls in flight")
        bar = tqdm(total=run.progress_total, unit="example", desc=f"run {run.pk}", file=self.stderr._out,
                   disable=o.get("verbosity", 1) == 0)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            run = generation_run_execute(run=run, progress=progress)
        except KeyboardInterrupt:
            raise CommandError(f"interrupted: resume with --resume {run.pk}") from None
        finally:
            bar.close()
        s = run.stats
        cpk = f"${s['cost_per_kept_usd']:.4f}" if s.get("cost_per_kept_usd") is not None else "n/a"
        self.stdout.write(self.style.SUCCESS(
            f"run {run.pk} {run.status}: kept {s['kept']}, filtered {s['filtered']}, failed {s['failed']}, "
            f"duplicates {s['duplicates']}; {s['calls']} calls ({s['call_errors']} errors), "
            f"{s['tokens_in']}+{s['tokens_out']} tokens, ${s['cost_usd']:.4f} ({cpk} per kept example)"
        ))
        if s.get("failure_reasons"):
            self.stdout.write(f"failures: {s['failure_reasons']}")
