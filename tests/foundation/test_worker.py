"""A real Celery worker on both brokers: a task enqueued after commit runs and changes a row once."""
import time

import pytest
from django.db import transaction

from curation.models import GenerationRun
from limrank_app.jobs import JobStatus
from tests import factories
from tests.conftest import celery_worker, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]




def test_task_enqueued_on_commit_runs_once_even_if_delivered_twice(broker_url):
    from curation.tasks import generation_run_execute_task

    with celery_worker(broker_url, queues=("llm",)):
        with transaction.atomic():
            run = factories.GenerationRunFactory(params={"n_seeds": 0, "n_personas": 0})
            transaction.on_commit(lambda: generation_run_execute_task.delay(run.pk))
            transaction.on_commit(lambda: generation_run_execute_task.delay(run.pk))  # redelivery
        assert wait_for(lambda: GenerationRun.objects.get(pk=run.pk).status == JobStatus.SUCCEEDED)
        time.sleep(1.5)  # let the duplicate arrive and be refused
        run.refresh_from_db()
        assert run.attempts == 1 and run.status == JobStatus.SUCCEEDED


def test_task_routes_to_queues():
    from limrank_app.celery import app

    router = app.amqp.router
    assert router.route({}, "curation.tasks.generation_run_execute_task")["queue"].name == "llm"
    assert router.route({}, "training.tasks.training_job_execute_task")["queue"].name == "gpu"
    assert router.route({}, "evaluation.tasks.eval_run_execute_task")["queue"].name == "gpu"
    assert app.conf.task_acks_late and app.conf.accept_content == ["json"]
