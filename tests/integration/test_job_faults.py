"""Jobs finish through faults, on a real worker, Redis and PostgreSQL:
- a worker killed with SIGKILL in the middle of a generation run, another started at once: the new worker's sweeper
  re-queues the run when its lease runs out, and it finishes with nothing lost or written twice;
- the broker down at launch: 503, the run saved as queued; the broker back: a worker's sweeper sends it and it runs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection, transaction

from curation.models import Example, GenerationRun, LLMCall
from curation.services.generation import generation_run_create
from limrank_app.jobs import JobStatus
from tests import factories
from tests.conftest import broker_switched, celery_worker, redis_available, redis_url, wait_for
from tests.curation.test_generation import accounted, assert_no_duplicates
from tests.llm_server import LLMServer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.worker, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_broker():
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail("Redis is not reachable in CI")
        pytest.skip("Redis not reachable")
    import redis

    redis.Redis.from_url(redis_url()).flushdb()
    return redis_url()


@pytest.fixture
def postgres():
    if connection.vendor != "postgresql":
        pytest.skip("a worker process needs the test database on a server (PostgreSQL)")


def _database_url() -> str:
    d = connection.settings_dict
    auth = d["USER"] + (f":{d['PASSWORD']}" if d["PASSWORD"] else "")
    return f"postgres://{auth}@{d['HOST'] or '127.0.0.1'}:{d['PORT'] or 5432}/{d['NAME']}"


def _start_worker(name: str, broker: str, llm_url: str, tmp_path: Path) -> subprocess.Popen:
    """A real `celery worker` process (solo pool: the task runs in this very process, so SIGKILL kills it mid-job)."""
    env = {
        **os.environ, "DATABASE_URL": _database_url(), "CELERY_BROKER_URL": broker, "DEBUG": "true",
        "LIMRANK_VAR_DIR": str(tmp_path / "var"),
        "LIMRANK_GENERATOR_BASE_URL": llm_url, "LIMRANK_REASONER_BASE_URL": llm_url,
        "LIMRANK_JOB_LEASE_SECONDS": "4", "LIMRANK_JOB_SWEEP_SECONDS": "1", "LIMRANK_WORKER_HEARTBEAT_SECONDS": "0.5",
    }
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "limrank_app", "worker", "-Q", "llm", "-P", "solo", "-n", f"{name}@%h",
         "--without-gossip", "--without-mingle", "--loglevel=WARNING"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_killed_worker_job_finishes_on_the_next_worker(postgres, redis_broker, tmp_path):
    factories.SeedQueryFactory.create_batch(3)
    factories.PersonaFactory.create_batch(2)
    with LLMServer(latency=0.25) as llm, broker_switched(redis_broker):
        first = _start_worker("first", redis_broker, llm.url, tmp_path)
        second = None
        try:
            with transaction.atomic():
                run = generation_run_create(n_seeds=3, n_personas=2, in_flight=2, consistency_k=1)
            assert wait_for(lambda: GenerationRun.objects.get(pk=run.pk).progress_done >= 4, timeout=90), \
                (tmp_path / "first.log").read_text()[-3000:]
            os.killpg(first.pid, signal.SIGKILL)  # mid-job, no shutdown, no ack
            first.wait()
            second = _start_worker("second", redis_broker, llm.url, tmp_path)  # at once, within the lease
            mid = GenerationRun.objects.get(pk=run.pk)
            assert mid.status == JobStatus.RUNNING and 0 < mid.progress_done < mid.progress_total
            assert wait_for(lambda: GenerationRun.objects.get(pk=run.pk).is_finished, timeout=150), \
                (tmp_path / "second.log").read_text()[-3000:]
        finally:
            _stop(first, signal.SIGKILL)
            if second is not None:
                _stop(second)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.attempts == 2  # the killed attempt, then the one the sweeper re-queued
    assert run.progress_done == run.progress_total == 3 * 2 * 2 * 3
    assert accounted(run) == run.progress_total  # nothing lost
    assert_no_duplicates(run)  # nothing written twice
    assert run.stats["calls"] <= LLMCall.objects.filter(generation_run=run).count()
    assert Example.objects.filter(generation_run=run).values("content_hash").distinct().count() == \
        Example.objects.filter(generation_run=run).count()


def test_broker_down_then_up_the_launched_run_runs(postgres, redis_broker, admin_client):
    with broker_switched("redis://127.0.0.1:1/0"):  # nothing listens there
        r = admin_client.post("/runs/", {"n_seeds": 0, "n_personas": 0, "random_seed": 1, "in_flight": 1,
                                         "consistency_k": 1, "n_hard_negatives": 1})
    assert r.status_code == 503
    run = GenerationRun.objects.get()
    assert run.status == JobStatus.QUEUED and run.heartbeat_at is None
    with celery_worker(redis_broker, queues=("llm",)):  # the broker is back: the worker's sweeper sends the run
        assert wait_for(lambda: GenerationRun.objects.get(pk=run.pk).is_finished, timeout=60)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.attempts == 1
