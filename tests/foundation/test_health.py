import pytest
from django.urls import reverse
from django.utils import timezone

from limrank_app.models import WorkerHeartbeat
from tests.conftest import broker_switched, celery_worker, wait_for


@pytest.mark.django_db
def test_healthz_down_without_worker(client, tmp_path):
    with broker_switched(f"sqla+sqlite:///{tmp_path / 'b.sqlite3'}"):
        resp = client.get(reverse("healthz"))
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
    with broker_switched("redis://127.0.0.1:1/0"):  # nothing listens there
        resp = client.get(reverse("healthz"))
    assert resp.status_code == 503 and resp.json()["broker"]["ok"] is False


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_healthz_follows_a_real_worker(client, broker_url):
    with celery_worker(broker_url):
        # The test worker reports "started" a moment before its start-up signal (which writes the first heartbeat)
        # has run in the worker's thread: poll.
        assert wait_for(lambda: client.get(reverse("healthz")).status_code == 200, timeout=30), client.get(reverse("healthz")).json()
        resp = client.get(reverse("healthz"))
        body = resp.json()
        assert resp.status_code == 200, body
        assert body["workers"]["ok"] and body["workers"]["alive"][0]["queues"] == "default,gpu,llm"
    # stopped worker -> down
    resp = client.get(reverse("healthz"))
    assert resp.status_code == 503 and resp.json()["workers"]["ok"] is False
