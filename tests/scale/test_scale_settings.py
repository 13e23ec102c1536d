"""DATABASE_URL, REDIS_URL, INGEST_QUEUE, WEB_CONCURRENCY: read once, checked at start-up."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.processes import run_manage as manage
from tests.scale.conftest import REPO_DIR, scale_env

_SHOW = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "db = s.DATABASES['default']; "
    "print(json.dumps({'engine': db['ENGINE'], 'name': str(db['NAME']), "
    "'conn_max_age': db.get('CONN_MAX_AGE'), 'pool': db.get('OPTIONS', {}).get('pool'), "
    "'cache': s.CACHES['default']['BACKEND'], 'location': s.CACHES['default'].get('LOCATION'), "
    "'broker': s.CELERY_BROKER_URL}))"
)


def _settings(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _SHOW],
        cwd=REPO_DIR,
        env={**env, "DJANGO_SETTINGS_MODULE": "ragsite.settings", "RAGSITE_SKIP_DOTENV": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_defaults_are_sqlite_in_the_data_folder_and_memory_cache(tmp_path):
    result = _settings(scale_env(data_dir=tmp_path))
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["engine"] == "django.db.backends.sqlite3"
    assert shown["name"] == str(tmp_path / "ragsite.sqlite3")
    assert shown["cache"].endswith("LocMemCache")
    assert shown["broker"] == ""


def test_database_url_selects_pooled_postgresql(tmp_path):
    env = scale_env(
        data_dir=tmp_path,
        DATABASE_URL="postgres://book:secret@db.internal:5432/ragsite",
        DATABASE_POOL_MAX_SIZE="7",
    )
    shown = json.loads(_settings(env).stdout)
    assert shown["engine"] == "django.db.backends.postgresql"
    assert shown["name"] == "ragsite"
    assert shown["conn_max_age"] == 0  # pooled connections, not per-thread persistent ones
    assert shown["pool"]["max_size"] == 7


def test_redis_url_shares_the_cache_and_is_the_default_broker(tmp_path):
    env = scale_env(data_dir=tmp_path, REDIS_URL="redis://cache.internal:6379/2")
    shown = json.loads(_settings(env).stdout)
    assert shown["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert shown["location"] == "redis://cache.internal:6379/2"
    assert shown["broker"] == "redis://cache.internal:6379/2"


def test_bad_values_stop_start_up_naming_the_variable(tmp_path):
    cases = {
        "DATABASE_URL": "nosuchdb://x/y",
        "REDIS_URL": "http://cache.internal:6379",
        "INGEST_QUEUE": "celery",
    }
    for name, value in cases.items():
        result = _settings(scale_env(data_dir=tmp_path / name, **{name: value}))
        assert result.returncode != 0
        assert name in result.stderr.splitlines()[-1] or name in result.stderr


def test_serve_refuses_several_workers_on_the_embedded_store(tmp_path):
    result = manage(scale_env(data_dir=tmp_path), "serve", "--workers", "2", "--no-migrate")
    assert result.returncode != 0
    assert "QDRANT_URL" in result.stderr
    assert "one process" in result.stderr
