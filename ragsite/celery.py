"""The Celery app: `celery -A ragsite worker --pool solo` runs ingestions queued by the web
processes (INGEST_QUEUE=celery, or auto with QDRANT_URL and a broker set).

Its configuration is Django's settings with the CELERY_ prefix (CELERY_BROKER_URL, by
default REDIS_URL). Task status lives in the database, so any web replica reports it.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

app = Celery("ragsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["ingestion"])
