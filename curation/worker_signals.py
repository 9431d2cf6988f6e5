"""Workers keep the cached aggregates warm (curation.selectors.aggregates.aggregate_warm): at start and every
LIMRANK_AGGREGATE_CACHE_SECONDS, so the dashboard, the home page and the data-quality page are rarely computed by a
request (14 s for the dashboard at a million examples). Only the refresh tasks are sent from here; any worker runs
them, one at a time per aggregate. Needs a cache shared with the web processes (CACHE_URL=redis://...) to help them.

Connected to Celery's worker_ready only: the embedded test workers (celery.contrib.testing) do not warm."""
from __future__ import annotations

import logging
import threading

from celery import signals
from django.conf import settings

from curation.selectors.aggregates import aggregate_warm

log = logging.getLogger(__name__)
_stop = threading.Event()


def _warm_loop() -> None:
    while True:
        try:
            aggregate_warm()
        except Exception:  # the cache or the broker may be briefly away; the next round tries again
            log.exception("warming the aggregates failed")
        if _stop.wait(max(settings.LIMRANK_AGGREGATE_CACHE_SECONDS, 1)):
            return


@signals.worker_ready.connect
def on_worker_ready(sender=None, **kwargs):
    _stop.clear()
    threading.Thread(target=_warm_loop, name="aggregate-warm", daemon=True).start()


@signals.worker_shutdown.connect
def on_worker_shutdown(sender=None, **kwargs):
    _stop.set()
