"""Reads for health and status: database, broker, workers."""
from __future__ import annotations

from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import connection
from django.utils import timezone

from .models import WorkerHeartbeat


def health_database() -> dict:
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
        return {"ok": True, "vendor": connection.vendor}
    except Exception as exc:  # report, never raise: this is a health probe
        return {"ok": False, "error": str(exc)[:300]}


def health_broker() -> dict:
    url = current_app.conf.broker_url or ""
    transport = url.split("://", 1)[0]
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return {"ok": True, "transport": transport}
    except Exception as exc:
        return {"ok": False, "transport": transport, "error": str(exc)[:300]}


def health_workers() -> dict:
    window = timedelta(seconds=max(15.0, 3 * settings.LIMRANK_WORKER_HEARTBEAT_SECONDS))
    cutoff = timezone.now() - window
    rows = list(WorkerHeartbeat.objects.order_by("-last_seen")[:50])
    alive = [w for w in rows if not w.stopped and w.last_seen >= cutoff]
    return {
        "ok": bool(alive),
        "alive": [{"hostname": w.hostname, "queues": w.queues, "last_seen": w.last_seen.isoformat()} for w in alive],
        "down": [{"hostname": w.hostname, "last_seen": w.last_seen.isoformat()} for w in rows if w not in alive][:10],
    }


def health_report() -> dict:
    report = {"database": health_database(), "broker": health_broker()}
    report["workers"] = health_workers() if report["database"]["ok"] else {"ok": False, "error": "database down"}
    report["ok"] = all(part["ok"] for part in report.values())
    return report
