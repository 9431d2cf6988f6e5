"""A real Celery worker on the llm queue runs a small generation run against the local LLM server (both brokers)."""

import pytest
from django.db import transaction

from curation.models import Example, GenerationRun, LLMCall
from curation.services.generation import generation_run_create
from limrank_app.jobs import JobStatus
from tests import factories
from tests.conftest import celery_worker, wait_for
from tests.curation.synth_helpers import llm_server, llm_settings  # noqa: F401

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]




def test_worker_runs_generation_on_llm_queue(broker_url, llm_settings, llm_server):
    factories.SeedQueryFactory.create_batch(2)
    factories.PersonaFactory.create_batch(1)
    llm_server.fault_rate, llm_server.fault_seed = 0.2, 1
    with celery_worker(broker_url, queues=("llm",)):
        with transaction.atomic():
            run = generation_run_create(n_seeds=2, n_personas=1, in_flight=4, consistency_k=1)
        assert wait_for(lambda: GenerationRun.objects.get(pk=run.pk).is_finished, timeout=90)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.attempts == 1 and run.progress_done == run.progress_total == 2 * 1 * 2 * 3
    examples = Example.objects.filter(generation_run=run).count()
    assert examples + run.stats["duplicates"] + run.stats["examples_missing"] == run.progress_total
    assert run.stats["calls"] == LLMCall.objects.filter(generation_run=run).count() > 0
