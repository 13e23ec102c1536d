"""docker-compose.yml: the five services, one image for web and worker, and only settings
that ragsite reads (each documented in .env.example)."""

from __future__ import annotations

import re

import yaml

from tests.scale.conftest import REPO_DIR

COMPOSE = yaml.safe_load((REPO_DIR / "docker-compose.yml").read_text())
DOCUMENTED = set(
    re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO_DIR / ".env.example").read_text(), re.M)
)


def test_compose_runs_web_worker_qdrant_postgres_and_redis():
    services = COMPOSE["services"]
    assert set(services) == {"web", "worker", "qdrant", "postgres", "redis"}
    assert services["web"]["build"] == services["worker"]["build"] == "."
    assert services["worker"]["command"][:4] == ["celery", "-A", "ragsite", "worker"]
    assert services["web"]["ports"] == ["7860:7860"]
    web_env = services["web"]["environment"]
    assert web_env["INGEST_QUEUE"] == services["worker"]["environment"]["INGEST_QUEUE"] == "celery"
    assert web_env["QDRANT_URL"] == "http://qdrant:6333"
    assert web_env["DATABASE_URL"].startswith("postgres://")
    assert web_env["REDIS_URL"].startswith("redis://redis:")


def test_every_compose_setting_is_a_documented_ragsite_setting():
    used = set(COMPOSE["services"]["web"]["environment"])
    assert used - DOCUMENTED == set()
