"""Shared fixtures: users by role, a logged-in client per role, and a real Celery worker."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from tests import factories

SHARED = Path(os.environ.get("LIMRANK_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
SHARED_DATA = SHARED / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"../shared/data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _cache_cleared():
    """Each test starts with an empty cache: cached aggregates (curation.selectors.aggregates) never leak between tests."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def reviewer_user(db):
    return factories.reviewer(username="rita")


@pytest.fixture
def admin_user(db):
    return factories.admin(username="ada")


@pytest.fixture
def reviewer_client(client, reviewer_user):
    client.force_login(reviewer_user)
    return client


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _pools_reset(app) -> None:
    app.pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None  # it holds the pool closed above: .delay() would fail with "closed pool"
    from kombu import pools as kombu_pools

    kombu_pools.reset()  # kombu's global producer registry still maps this broker to the closed pool


@contextlib.contextmanager
def broker_switched(broker_url: str):
    """Point the project's Celery app at another broker for the duration.
    Celery reads CELERY_BROKER_URL from the environment before its config, so both are switched."""
    from limrank_app.celery import app

    old, old_options = app.conf.broker_url, app.conf.broker_transport_options
    old_env = os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = broker_url
    app.conf.broker_url = broker_url
    app.conf.broker_transport_options = {"visibility_timeout": 3600} if broker_url.startswith("redis") else {}
    _pools_reset(app)
    try:
        yield app
    finally:
        if old_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = old_env
        app.conf.broker_url, app.conf.broker_transport_options = old, old_options
        _pools_reset(app)


@contextlib.contextmanager
def celery_worker(broker_url: str, *, queues=("default", "llm", "gpu"), concurrency: int = 1, pool: str = "threads"):
    """A real worker on the project's app against the given broker (no eager mode)."""
    from celery.contrib.testing.worker import start_worker

    with broker_switched(broker_url) as app:
        assert app.connection_for_write().as_uri().split("://")[0] == broker_url.split("://")[0]
        with start_worker(
            app, concurrency=concurrency, pool=pool, perform_ping_check=False, loglevel="WARNING",
            queues=list(queues), shutdown_timeout=30,
        ) as worker:
            yield worker


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2) -> bool:
    """Poll until predicate() is true (a worker runs in another thread or process); False on timeout."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def redis_url() -> str:
    return os.environ.get("LIMRANK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(redis_url(), socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.fixture(params=["redis", "sqlite"])
def broker_url(request, tmp_path):
    """Both brokers the studio supports: real Redis and kombu's SQLAlchemy transport on a SQLite file."""
    if request.param == "redis":
        if not redis_available():
            if os.environ.get("CI"):
                pytest.fail("Redis is not reachable in CI")
            pytest.skip("Redis not reachable")
        import redis

        redis.Redis.from_url(redis_url()).flushdb()
        return redis_url()
    return f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
