"""A real Celery worker renders a built version's export files and marks it ready (both brokers; no eager mode)."""
import pytest

from curation import exports
from curation.models import DatasetVersion
from curation.services.datasets import dataset_version_build
from tests import factories
from tests.conftest import celery_worker, wait_for
from tests.curation.api.conftest import make_examples

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_worker_renders_the_files_of_a_built_version(broker_url, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    ds = factories.DatasetFactory(name="rendered by a worker")
    make_examples(7, dataset=ds, tag="worker")
    with celery_worker(broker_url, queues=("llm",)):  # curation.tasks.* are routed to the llm queue
        version = dataset_version_build(dataset=ds, filters={}, recipe={"seed": 2})
        assert version.status == DatasetVersion.Status.BUILDING
        assert wait_for(lambda: DatasetVersion.objects.get(pk=version.pk).status != DatasetVersion.Status.BUILDING,
                        timeout=90)
    version.refresh_from_db()
    assert version.status == DatasetVersion.Status.READY, version.error
    body = exports.export_path(version, "jsonl").read_bytes()
    assert body == b"".join(exports.jsonl_blocks(version)) and body.count(b"\n") == 7
    assert exports.export_path(version, "parquet").read_bytes().endswith(b"PAR1")
