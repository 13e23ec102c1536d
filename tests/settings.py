"""Test settings: the real settings module, read from a clean, isolated environment.

Variables from the developer's shell or `.env` (an OpenAI key, a Qdrant URL) must not
change what the suite tests, so they are removed before `ragsite.settings` reads them.
"""

import os
import tempfile

# A subprocess started by a test (crash test, lock test) sets RAGSITE_TEST_SUBPROCESS=1
# and passes its own RAGSITE_DATA_DIR, QDRANT_* and BOOK_DIR, which are then kept.
_SUBPROCESS = os.environ.get("RAGSITE_TEST_SUBPROCESS") == "1"

for _name in [] if _SUBPROCESS else list(os.environ):
    if _name.startswith(
        (
            "OPENAI_",
            "QDRANT_",
            "EMBEDDING_",
            "LLM_",
            "CHAT_",
            "SEARCH_",
            "CHUNK_",
            "RETRIEVAL_",
            "SITE_",
            "INGEST_",
            "CORS_",
            "VECTOR_",
            "CELERY_",
            "METRICS_",
            "TRUSTED_",
            "FEEDBACK_",
            "ADMIN_LOGIN_",
            "SECURE_",
            "BEHIND_",
        )
    ) or _name in {
        "SECRET_KEY",
        "DEBUG",
        "ALLOWED_HOSTS",
        "BOOK_DIR",
        "PORT",
        "RAGSITE_DATA_DIR",
        "DATABASE_URL",
        "REDIS_URL",
        "INGEST_QUEUE",
        "WEB_CONCURRENCY",
        "LOG_FORMAT",
    }:
        del os.environ[_name]
os.environ["RAGSITE_SKIP_DOTENV"] = "1"
if not _SUBPROCESS:
    os.environ["RAGSITE_DATA_DIR"] = tempfile.mkdtemp(prefix="ragsite-test-")
    os.environ["SITE_URL"] = "https://book.example"

from ragsite.settings import *  # noqa: E402,F403

ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# A file, not SQLite's in-memory default: uvicorn serves live-server tests from
# another thread, which must see the same database.
# The PostgreSQL pass of CI (.ci/run): the same tests on a real PostgreSQL server. Only
# this process: subprocesses started by tests keep SQLite in their own data folder.
if not _SUBPROCESS and os.environ.get("RAGSITE_TEST_DATABASE_URL"):
    DATABASES = {"default": database_from_url(os.environ["RAGSITE_TEST_DATABASE_URL"])}  # noqa: F405
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}  # noqa: F405
