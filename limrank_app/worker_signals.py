"""Worker lifecycle: one timer thread per worker that records the worker's heartbeat (for /healthz) and runs the job
sweeper (limrank_app.jobs.job_sweep) at start and every LIMRANK_JOB_SWEEP_SECONDS.

Why the worker's own timer and not Celery beat: beat is one more process to deploy and keep alive (the embedded
default runs none), and if it is down jobs hang again. The sweeper is needed exactly where workers run, every worker
runs it, and its conditional updates make concurrent sweeps send each job once."""
from __future__ import annotations

import logging
import threading
import time

from celery import signals
from celery.contrib.testing.worker import test_worker_started, test_worker_stopped
from django.conf import settings
from django.db import close_old_connections

from limrank_app.jobs import job_sweep
from limrank_app.services import worker_heartbeat_record, worker_heartbeat_stop

log = logging.getLogger(__name__)
_stop = threading.Event()


def _hostname(sender) -> str:
    return getattr(sender, "hostname", None) or str(sender)


def _beat(hostname: str, queues: str, interval: float) -> None:
    last_sweep = time.monotonic()
    while not _stop.wait(interval):
        try:
            worker_heartbeat_record(hostname=hostname, queues=queues)
            if time.monotonic() - last_sweep >= settings.LIMRANK_JOB_SWEEP_SECONDS:
                last_sweep = time.monotonic()
                job_sweep()
        except Exception:  # the DB or the broker may be briefly away; keep beating
            log.exception("heartbeat or sweep failed")
        finally:
            close_old_connections()


def _started(hostname: str, app) -> None:
    queues = ",".join(sorted(app.amqp.queues.consume_from)) if app is not None else ""
    worker_heartbeat_record(hostname=hostname, queues=queues, started=True)
    _stop.clear()
    threading.Thread(
        target=_beat, args=(hostname, queues, settings.LIMRANK_WORKER_HEARTBEAT_SECONDS), daemon=True
    ).start()
    try:
        job_sweep()
    except Exception:
        log.exception("job sweep failed")
    finally:
        close_old_connections()


def _stopped(hostname: str) -> None:
    _stop.set()
    try:
        worker_heartbeat_stop(hostname=hostname)
    except Exception:
        log.exception("could not mark worker stopped")


@signals.worker_ready.connect
def on_worker_ready(sender=None, **kwargs):
    # sender is the worker's Consumer
    _started(sender.hostname, sender.app)


@signals.worker_shutdown.connect
def on_worker_shutdown(sender=None, **kwargs):
    _stopped(_hostname(sender))


# The embedded test worker (celery.contrib.testing) sends its own signals instead of worker_ready.
@test_worker_started.connect
def on_test_worker_started(sender=None, worker=None, consumer=None, **kwargs):
    _started(consumer.hostname, sender)


@test_worker_stopped.connect
def on_test_worker_stopped(sender=None, worker=None, **kwargs):
    if worker is not None:
        _stopped(worker.hostname)
