"""The Celery app: queues llm (generation), gpu (training, scoring), default."""
import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "limrank_app.settings")

app = Celery("limrank_app")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("llm"), Queue("gpu"))
app.autodiscover_tasks()
# Worker heartbeats and orphaned-job recovery (limrank_app/worker_signals.py) connect in LimrankAppConfig.ready().
