import pytest
from django.urls import reverse
from django.utils import timezone

from limrank_app.models import WorkerHeartbeat
from tests.conftest import celery_worker


@pytest.mark.django_db
def test_healthz_down_without_worker(client, tmp_path):
    from limrank_app.celery import app

    old = app.conf.broker_url
    app.conf.broker_url = f"sqla+sqlite:///{tmp_path / 'b.sqlite3'}"
    app._pool = None
    try:
        resp = client.get(reverse("healthz"))
    finally:
        app.conf.broker_url = old
        app._pool = None
    body = resp.json()
    assert resp.status_code == 503
    assert body["database"]["ok"] and body["broker"]["ok"]
    assert body["workers"]["ok"] is False


@pytest.mark.django_db
def test_healthz_stale_heartbeat_is_down(client):
    old = timezone.now() - timezone.timedelta(minutes=5)
    WorkerHeartbeat.objects.create(hostname="w@gone", started_at=old, last_seen=old)
    body = client.get(reverse("healthz")).json()
    assert body["workers"]["ok"] is False and body["workers"]["down"][0]["hostname"] == "w@gone"


@pytest.mark.django_db
def test_healthz_broker_down(client):
    from limrank_app.celery import app

    old = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens there
    app.pool.force_close_all()
    app._pool = None
    try:
        resp = client.get(reverse("healthz"))
    finally:
        app.conf.broker_url = old
        app._pool = None
    assert resp.status_code == 503 and resp.json()["broker"]["ok"] is False


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_healthz_follows_a_real_worker(client, broker_url):
    with celery_worker(broker_url):
        resp = client.get(reverse("healthz"))
        body = resp.json()
        assert resp.status_code == 200, body
        assert body["workers"]["ok"] and body["workers"]["alive"][0]["queues"] == "default,gpu,llm"
    # stopped worker -> down
    resp = client.get(reverse("healthz"))
    assert resp.status_code == 503 and resp.json()["workers"]["ok"] is False
