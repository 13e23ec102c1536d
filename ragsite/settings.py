"""Django settings for ragsite.

This module is the only place that reads the environment. Every variable is listed,
with one comment each, in `.env.example`. A `.env` file in the project root is read
when present; real environment variables win over it. A variable with a bad value
stops start-up with an `ImproperlyConfigured` that names it.
"""

from __future__ import annotations

import os
import secrets
import warnings
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent

if os.environ.get("RAGSITE_SKIP_DOTENV", "").lower() not in {"1", "true", "yes"}:
    load_dotenv(BASE_DIR / ".env", override=False)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    """Return the variable as a stripped string, or the default when unset."""
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    """Return a boolean variable; anything but a yes/no word is an error."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false (got {raw!r}).")


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Return an integer variable within bounds, or raise naming the variable."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number (got {raw!r}).") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum} (got {value}).")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    """Return a float variable at or above a minimum, or raise naming the variable."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number (got {raw!r}).") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum} (got {value}).")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """Return a comma-separated variable as a list of non-empty items (blank: default)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_url(name: str, default: str = "") -> str:
    """Return an http(s) URL without a trailing slash, or raise naming the variable."""
    value = env_str(name, default)
    if not value:
        return ""
    parsed = urlparse(value)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise ImproperlyConfigured(f"{name} must be an http(s) URL (got {value!r}).")
    return value.rstrip("/")


def env_choice(name: str, default: str, choices: set[str]) -> str:
    """Return a variable that must be one of a fixed set of words."""
    value = env_str(name, default).lower() or default
    if value not in choices:
        raise ImproperlyConfigured(
            f"{name} must be one of {', '.join(sorted(choices))} (got {value!r})."
        )
    return value


def _path(name: str, default: Path) -> Path:
    raw = env_str(name)
    path = Path(raw) if raw else default
    if not path.is_absolute():
        path = BASE_DIR / path
    return path.resolve()


# --- Where things live ---------------------------------------------------------------

DATA_DIR = _path("RAGSITE_DATA_DIR", BASE_DIR / "data")
try:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
except OSError as exc:
    raise ImproperlyConfigured(f"RAGSITE_DATA_DIR {DATA_DIR} is not writable: {exc}") from exc

BOOK_DIR = _path("BOOK_DIR", BASE_DIR / "docs")
SITE_URL = env_url("SITE_URL")
# Docusaurus serves pages under <SITE_URL>/docs/ by default; a book published at the
# site root sets SITE_DOCS_PREFIX to "/".
_docs_prefix = env_str("SITE_DOCS_PREFIX", "docs").strip("/")
SITE_DOCS_PREFIX = f"/{_docs_prefix}" if _docs_prefix else ""
# The generator that publishes the book, for its page-URL and heading-id rules
# (ingestion/sites.py); "auto" detects it from the files in and above BOOK_DIR.
SITE_GENERATOR = env_choice(
    "SITE_GENERATOR",
    "auto",
    {"auto", "docusaurus", "mdbook", "mkdocs", "vitepress", "starlight", "hugo", "plain"},
)


def _secret_key() -> str:
    given = env_str("SECRET_KEY")
    if given:
        return given
    key_file = DATA_DIR / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    key = secrets.token_urlsafe(50)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- Django ------------------------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "drf_spectacular_sidecar",  # Swagger UI's files for /api/docs (no CDN)
    "ragsite",  # for its `serve` management command; it has no models
    "ingestion",
    "chat",
    "evaluation",  # the eval_retrieval command and its harness; it has no models
]

MIDDLEWARE = [
    "ragsite.observability.ObservabilityMiddleware",
    # Django's own middleware, with their pure hooks on the event loop (ragsite/middleware.py)
    "ragsite.middleware.SecurityMiddleware",
    "ragsite.staticfiles.AsyncWhiteNoiseMiddleware",  # WhiteNoise, on the async path
    "ragsite.cors.CorsMiddleware",  # django-cors-headers', never the unlisted `null` origin
    "ragsite.middleware.SessionMiddleware",
    "ragsite.middleware.CommonMiddleware",
    "ragsite.middleware.CsrfViewMiddleware",
    "ragsite.middleware.AuthenticationMiddleware",
    "ragsite.middleware.MessageMiddleware",
    "ragsite.middleware.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ragsite.urls"
ASGI_APPLICATION = "ragsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database and cache: SQLite and memory by default, PostgreSQL and Redis to scale out ---
# DATABASE_URL (e.g. postgres://user:pass@host:5432/ragsite) moves the database off the
# data folder so several web replicas and the ingestion worker share it.
DATABASE_URL = env_str("DATABASE_URL")
# PostgreSQL connections are pooled in each process (psycopg_pool): async views run the
# ORM in a worker thread, where persistent per-thread connections (CONN_MAX_AGE) would
# leak; a pool hands a warm connection to whichever thread asks.
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 10, minimum=1, maximum=200)


def database_from_url(url: str, *, pool_max_size: int = 10) -> dict:
    """Return Django's DATABASES entry for a database URL (PostgreSQL gets a pool)."""
    import dj_database_url

    try:
        database = dj_database_url.parse(url, conn_max_age=0)
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from exc
    if database["ENGINE"] == "django.db.backends.postgresql":
        database.setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": pool_max_size,
            "timeout": 10,
        }
    return database


SQLITE_CONN_MAX_AGE_S = 600

if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL, pool_max_size=DATABASE_POOL_MAX_SIZE)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "ragsite.sqlite3",
            "OPTIONS": {
                # WAL lets the serving process read while an ingestion writes.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            # Each request's sync work runs in a thread kept between requests
            # (ragsite/asgi.py), so a connection kept per thread is reused by the next
            # request instead of being opened (init_command, functions) and closed for
            # every one: ~10 % of the server's CPU under load.
            "CONN_MAX_AGE": SQLITE_CONN_MAX_AGE_S,
            "CONN_HEALTH_CHECKS": True,
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The cache holds rate-limit counters, LLM token budgets and the health probe. With the
# embedded store ragsite serves from one process, so memory is shared enough; REDIS_URL
# (redis://host:6379/0) shares them across processes and replicas.
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL and urlparse(REDIS_URL).scheme not in {"redis", "rediss", "unix"}:
    raise ImproperlyConfigured(f"REDIS_URL must be a redis:// URL (got {REDIS_URL!r}).")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "ragsite",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]
RATELIMIT_USE_CACHE = "default"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "staticfiles"  # filled by `collectstatic` (Docker); empty is fine
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# WhiteNoise serves files through a sync iterator; under ASGI Django reads it in a thread
# and warns on every static request. The files are small, so the warning is only noise.
warnings.filterwarnings(
    "ignore", message="StreamingHttpResponse must consume synchronous iterators"
)

# --- CORS, CSRF and request bodies (docs/security.md) -----------------------


def _origin(url: str) -> str:
    """Return scheme://host[:port] of a URL (a browser's Origin for pages under it)."""
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}"


def _cors_origins(name: str, default: list[str]) -> list[str]:
    """Return a list of origins; each must be `null` or scheme://host[:port], no path."""
    origins = env_list(name, default)
    for origin in origins:
        if origin != "null" and (
            origin.rstrip("/") != _origin(origin)
            or urlparse(origin).scheme not in {"http", "https"}
            or not urlparse(origin).netloc
        ):
            raise ImproperlyConfigured(
                f"{name} must list origins like https://book.example, without a path "
                f"(got {origin!r})."
            )
    return [origin.rstrip("/") for origin in origins]


# Which pages may call the API from a browser: every origin (`*`) only when
# CORS_ALLOW_ALL_ORIGINS=true is said out loud; else the listed origins; else the book's
# own site (SITE_URL's origin); with no SITE_URL (the local demo, which is same-origin),
# only loopback pages, such as a book's dev server on http://localhost:3000. The `null`
# origin is never allowed unless listed (ragsite/cors.py). Bodies must be
# application/json, so every cross-origin POST is preflighted.
CORS_ALLOWED_ORIGINS = _cors_origins(
    "CORS_ALLOWED_ORIGINS", [_origin(SITE_URL)] if SITE_URL else []
)
CORS_ALLOW_ALL_ORIGINS = env_bool("CORS_ALLOW_ALL_ORIGINS", False)
CORS_ALLOWED_ORIGIN_REGEXES = (
    []
    if CORS_ALLOWED_ORIGINS or CORS_ALLOW_ALL_ORIGINS
    else [r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]+)?$"]
)
CORS_URLS_REGEX = r"^/(api|static)/.*$"
CORS_EXPOSE_HEADERS = ["Retry-After"]
# The JSON API is CSRF-exempt (no cookies; ragsite/urls.py); this answers JSON under /api/.
CSRF_FAILURE_VIEW = "ragsite.http.csrf_failure"
# /api/ bodies over this are a 413, refused before they are read (ragsite/guard.py).
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 64 * 1024, minimum=1024, maximum=10 * 2**20)
# A request whose body has not fully arrived this long after it started is dropped (408).
REQUEST_BODY_TIMEOUT_S = env_float("REQUEST_BODY_TIMEOUT_S", 10.0, minimum=0.1)

LOG_LEVEL = env_choice("LOG_LEVEL", "info", {"debug", "info", "warning", "error"}).upper()
# "json": one JSON object a line (for log collectors), each with the request id.
LOG_FORMAT = env_choice("LOG_FORMAT", "plain", {"plain", "json"})
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "ragsite.observability.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"httpx": {"level": "WARNING"}, "django.request": {"level": "ERROR"}},
}

# --- ragsite ------------------------------------------------------------------------

INGEST_TOKEN = env_str("INGEST_TOKEN")

# --- scale-out: workers, the ingestion queue, metrics --------------------------------------
# uvicorn worker processes for `manage.py serve`; more than 1 needs QDRANT_URL (the embedded
# store allows one process).
WEB_CONCURRENCY = env_int("WEB_CONCURRENCY", 1, minimum=1, maximum=64)
# Where ingestions run: "thread" (a background thread of the serving process), "celery"
# (queued to a `celery -A ragsite worker` process through CELERY_BROKER_URL), or "auto":
# celery when QDRANT_URL and a broker are set, else thread.
INGEST_QUEUE = env_choice("INGEST_QUEUE", "auto", {"auto", "thread", "celery"})
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ACKS_LATE = False  # a killed worker's task is failed and re-run by hand, not replayed
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
if INGEST_QUEUE == "celery" and not CELERY_BROKER_URL:
    raise ImproperlyConfigured("INGEST_QUEUE=celery needs CELERY_BROKER_URL or REDIS_URL.")
# /metrics (Prometheus text format). Empty METRICS_TOKEN: open; else Bearer token required.
METRICS_ENABLED = env_bool("METRICS_ENABLED", True)
METRICS_TOKEN = env_str("METRICS_TOKEN")
# With several workers: a folder they share for prometheus-client's multiprocess mode
# (read by prometheus-client itself too; `manage.py serve` empties it at start-up).
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)

QDRANT_URL = env_url("QDRANT_URL")
QDRANT_API_KEY = env_str("QDRANT_API_KEY")
QDRANT_PATH = _path("QDRANT_PATH", DATA_DIR / "qdrant")
QDRANT_COLLECTION = env_str("QDRANT_COLLECTION", "book")
QDRANT_TIMEOUT = env_float("QDRANT_TIMEOUT", 10.0, minimum=0.1)
# Server mode only (ignored by the embedded engines): see docs/vector-store.md.
QDRANT_PREFER_GRPC = env_bool("QDRANT_PREFER_GRPC", False)
QDRANT_RETRIES = env_int("QDRANT_RETRIES", 2, minimum=0, maximum=10)
QDRANT_SHARDS = env_int("QDRANT_SHARDS", 1, minimum=1, maximum=1000)
QDRANT_REPLICAS = env_int("QDRANT_REPLICAS", 1, minimum=1, maximum=100)
QDRANT_ON_DISK_PAYLOAD = env_bool("QDRANT_ON_DISK_PAYLOAD", False)
# Engine of the embedded store (no QDRANT_URL): qdrant-edge (Qdrant's Rust engine
# in-process, the default: a hybrid search at 10k chunks takes a few ms) or qdrant-local
# (qdrant-client's local mode, pure Python, ~0.5 s there; see docs/vector-store.md).
VECTOR_ENGINE = env_choice("VECTOR_ENGINE", "qdrant-edge", {"qdrant-local", "qdrant-edge"})

EMBEDDING_PROVIDER = env_choice("EMBEDDING_PROVIDER", "local", {"local", "openai"})
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 16, minimum=1, maximum=2048)
# How the packaged model runs: "int8" (its matrix products quantized on this machine on
# first use, cached in EMBEDDING_MODEL_CACHE or ~/.cache/ragsite: ~1.5x the throughput)
# or "packaged" (the file as shipped). See docs/embeddings.md.
LOCAL_EMBEDDING_GRAPH = env_choice("LOCAL_EMBEDDING_GRAPH", "int8", {"int8", "packaged"})
OPENAI_EMBEDDING_MODEL = env_str("OPENAI_EMBEDDING_MODEL", "text-embedding-3-small")
OPENAI_EMBEDDING_DIMENSIONS = env_int("OPENAI_EMBEDDING_DIMENSIONS", 0, minimum=0)

OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env_url("OPENAI_BASE_URL")
OPENAI_CHAT_MODEL = env_str("OPENAI_CHAT_MODEL", "gpt-4o-mini")
OPENAI_TIMEOUT = env_float("OPENAI_TIMEOUT", 30.0, minimum=0.1)
OPENAI_MAX_RETRIES = env_int("OPENAI_MAX_RETRIES", 2, minimum=0, maximum=10)
# "auto" uses the OpenAI-compatible model when a key or base URL is set, else extractive.
LLM_PROVIDER = env_choice("LLM_PROVIDER", "auto", {"auto", "openai", "extractive"})
if LLM_PROVIDER == "openai" and not (OPENAI_API_KEY or OPENAI_BASE_URL):
    raise ImproperlyConfigured("LLM_PROVIDER=openai needs OPENAI_API_KEY or OPENAI_BASE_URL.")
if EMBEDDING_PROVIDER == "openai" and not (OPENAI_API_KEY or OPENAI_BASE_URL):
    raise ImproperlyConfigured("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY or OPENAI_BASE_URL.")
# Deadlines and size caps of the LLM on the chat path (faults cost seconds, not minutes).
# Most tokens one LLM call may produce (answers, rewrites and follow-ups all pass it).
LLM_MAX_TOKENS = env_int("LLM_MAX_TOKENS", 700, minimum=16, maximum=32768)
# Seconds the LLM has to send its first token; then the reader gets the extractive answer.
LLM_FIRST_TOKEN_TIMEOUT_S = env_float("LLM_FIRST_TOKEN_TIMEOUT_S", 8.0, minimum=0.1)
# Seconds the LLM has for a whole answer; past it, a started answer ends with an error event.
LLM_ANSWER_TIMEOUT_S = env_float("LLM_ANSWER_TIMEOUT_S", 60.0, minimum=0.1)
# Seconds the LLM has to rewrite a follow-up; then the deterministic rule rewrites it.
REWRITE_TIMEOUT_S = env_float("REWRITE_TIMEOUT_S", 1.5, minimum=0.05)

CHUNK_TOKENS = env_int("CHUNK_TOKENS", 256, minimum=32, maximum=8192)
CHUNK_OVERLAP_TOKENS = env_int("CHUNK_OVERLAP_TOKENS", 32, minimum=0, maximum=1024)
if CHUNK_OVERLAP_TOKENS >= CHUNK_TOKENS:
    raise ImproperlyConfigured("CHUNK_OVERLAP_TOKENS must be smaller than CHUNK_TOKENS.")
INGEST_IGNORE = env_list("INGEST_IGNORE", [])

RETRIEVAL_K = env_int("RETRIEVAL_K", 5, minimum=1, maximum=50)
RETRIEVAL_SCORE_FLOOR = env_float("RETRIEVAL_SCORE_FLOOR", 0.23, minimum=0.0)
# Candidates each search channel (dense, BM25) returns before the service fuses them.
RETRIEVAL_POOL = env_int("RETRIEVAL_POOL", 50, minimum=1, maximum=500)
# How the two rankings are fused: "minmax" (normalised scores, weighted sum) or "rrf".
RETRIEVAL_FUSION = env_choice("RETRIEVAL_FUSION", "blend", {"blend", "minmax", "rrf"})
# Weight of the dense channel in the fusion (the BM25 channel gets 1 minus it).
RETRIEVAL_DENSE_WEIGHT = env_float("RETRIEVAL_DENSE_WEIGHT", 0.45, minimum=0.0)
# The second stage: the fused candidates re-ordered by their best sentence's cosine with
# the question (the sentence vectors stored with each chunk), at this weight beside the
# fused score; 0 turns it off (docs/retrieval-quality.md).
RETRIEVAL_SENTENCE_WEIGHT = env_float("RETRIEVAL_SENTENCE_WEIGHT", 0.5, minimum=0.0)
# Then late interaction: the best 20 re-ordered by how closely the question's words
# match the chunk's tokens one by one (the token signature stored with each chunk), at
# this weight beside the order so far; 0 turns it off (ragsite/rag/interaction.py).
RETRIEVAL_TOKEN_WEIGHT = env_float("RETRIEVAL_TOKEN_WEIGHT", 1.5, minimum=0.0)
# Dense cosine at or above which the book supports an answer without more evidence.
RETRIEVAL_CONFIDENT_SCORE = env_float("RETRIEVAL_CONFIDENT_SCORE", 0.45, minimum=0.0)
# Below that, the largest share of the query's terms the book's candidates may lack.
RETRIEVAL_MISSING_TERMS = env_float("RETRIEVAL_MISSING_TERMS", 0.2, minimum=0.0)
for _name in ("RETRIEVAL_DENSE_WEIGHT", "RETRIEVAL_MISSING_TERMS"):
    if globals()[_name] > 1.0:
        raise ImproperlyConfigured(f"{_name} must be at most 1 (got {globals()[_name]}).")
CONTEXT_TOKEN_BUDGET = env_int("CONTEXT_TOKEN_BUDGET", 3000, minimum=256)
CHAT_HISTORY_TURNS = env_int("CHAT_HISTORY_TURNS", 3, minimum=0, maximum=20)
CHAT_SESSION_IDLE_MINUTES = env_int("CHAT_SESSION_IDLE_MINUTES", 60 * 24, minimum=1)

# --- Limits, client addresses and secure defaults (docs/security.md) -------------------

# Reverse proxies in front of ragsite that append the address they saw to
# X-Forwarded-For (1 behind Hugging Face Spaces' proxy, as in the Dockerfile). The
# client is the entry that many hops from the right; 0 uses the socket peer and ignores
# the header, which any client can write.
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0, minimum=0, maximum=10)
if env_str("RATELIMIT_IP_META_KEY"):
    raise ImproperlyConfigured(
        "RATELIMIT_IP_META_KEY is no longer read: set TRUSTED_PROXY_HOPS to the number of "
        "proxies in front of ragsite instead (docs/security.md)."
    )

# Requests per client address (count/period, period s, m, h or d). Ingest counts every
# POST /api/ingest, so wrong bearer tokens run out too.
CHAT_RATE_LIMIT = env_str("CHAT_RATE_LIMIT", "30/m")
SEARCH_RATE_LIMIT = env_str("SEARCH_RATE_LIMIT", "120/m")
FEEDBACK_RATE_LIMIT = env_str("FEEDBACK_RATE_LIMIT", "30/m")
INGEST_RATE_LIMIT = env_str("INGEST_RATE_LIMIT", "10/m")
# MCP requests (each JSON-RPC call, /mcp) per client address; like search by default.
MCP_RATE_LIMIT = env_str("MCP_RATE_LIMIT", SEARCH_RATE_LIMIT)
for _name, _value in (
    ("CHAT_RATE_LIMIT", CHAT_RATE_LIMIT),
    ("SEARCH_RATE_LIMIT", SEARCH_RATE_LIMIT),
    ("FEEDBACK_RATE_LIMIT", FEEDBACK_RATE_LIMIT),
    ("INGEST_RATE_LIMIT", INGEST_RATE_LIMIT),
    ("MCP_RATE_LIMIT", MCP_RATE_LIMIT),
):
    _count, _, _period = _value.partition("/")
    if not _count.isdigit() or not _period or _period[-1] not in "smhd":
        raise ImproperlyConfigured(f"{_name} must look like 30/m (got {_value!r}).")

# LLM tokens (prompt + completion) a client address / a chat session may spend per UTC
# day; 0 turns that budget off. Extractive answers cost nothing.
LLM_DAILY_TOKENS_PER_IP = env_int("LLM_DAILY_TOKENS_PER_IP", 200_000, minimum=0)
LLM_DAILY_TOKENS_PER_SESSION = env_int("LLM_DAILY_TOKENS_PER_SESSION", 50_000, minimum=0)

# Admin login throttling (django-axes): after this many failed logins for one username
# from one client address, that pair is locked out for the cool-off.
ADMIN_LOGIN_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
ADMIN_LOGIN_COOLOFF_MINUTES = env_int("ADMIN_LOGIN_COOLOFF_MINUTES", 15, minimum=1)
INSTALLED_APPS += ["axes"]
MIDDLEWARE.insert(1, "ragsite.ratelimit.ClientAddressMiddleware")  # before anything that limits
MIDDLEWARE.append("axes.middleware.AxesMiddleware")  # last, as django-axes requires
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = ADMIN_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=ADMIN_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["ip_address", "username"]]
AXES_CLIENT_IP_CALLABLE = "ragsite.ratelimit.axes_client_ip"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

# Behind a platform's HTTPS proxy (the Dockerfile): trust its X-Forwarded-Proto (the
# proxy must set it), redirect plain HTTP, secure cookies, HSTS. The health check stays
# reachable over plain HTTP for the container's own HEALTHCHECK.
BEHIND_HTTPS_PROXY = env_bool("BEHIND_HTTPS_PROXY", False)
if BEHIND_HTTPS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", BEHIND_HTTPS_PROXY)
SECURE_REDIRECT_EXEMPT = [r"^api/health$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = BEHIND_HTTPS_PROXY
SECURE_HSTS_SECONDS = env_int(
    "SECURE_HSTS_SECONDS", 31_536_000 if BEHIND_HTTPS_PROXY else 0, minimum=0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Preloading is the domain owner's decision (made at hstspreload.org), not a default.
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS += ["security.W021"]
