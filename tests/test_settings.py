"""Settings come from the environment only; a bad value stops start-up naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parent.parent


def load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Import ragsite.settings in a fresh interpreter with exactly these variables."""
    clean = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "SYSTEMROOT"}}
    clean |= {"RAGSITE_SKIP_DOTENV": "1", "RAGSITE_DATA_DIR": str(tmp_path / "data"), **env}
    code = (
        "import ragsite.settings as s; "
        "print(s.DEBUG, s.EMBEDDING_PROVIDER, s.LLM_PROVIDER, s.QDRANT_URL or '-', "
        "s.BOOK_DIR.name, s.SITE_DOCS_PREFIX or '-', s.ALLOWED_HOSTS[0], s.CORS_ALLOW_ALL_ORIGINS)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_defaults_run_offline_and_keep_a_generated_secret_key(tmp_path):
    first = load_settings(tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == [
        "False",
        "local",
        "auto",
        "-",
        "docs",
        "/docs",
        "127.0.0.1",
        "False",  # CORS: no `*` unless CORS_ALLOW_ALL_ORIGINS=true (tests/test_api_cors.py)
    ]
    key_file = tmp_path / "data" / "secret_key"
    key = key_file.read_text()
    assert len(key) > 40
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    # A second start reuses the same key (sessions survive restarts).
    assert load_settings(tmp_path).returncode == 0
    assert key_file.read_text() == key


def test_blank_variables_mean_the_default(tmp_path):
    result = load_settings(tmp_path, DEBUG="", ALLOWED_HOSTS=" ", CORS_ALLOW_ALL_ORIGINS="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "False"
    assert result.stdout.split()[6] == "127.0.0.1"
    assert result.stdout.split()[7] == "False"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DEBUG": "maybe"}, "DEBUG must be true or false (got 'maybe')."),
        ({"PORT": "eighty"}, "PORT must be a whole number (got 'eighty')."),
        ({"PORT": "70000"}, "PORT must be between 1 and 65535 (got 70000)."),
        (
            {"QDRANT_URL": "localhost:6333"},
            "QDRANT_URL must be an http(s) URL (got 'localhost:6333').",
        ),
        ({"SITE_URL": "ftp://x"}, "SITE_URL must be an http(s) URL (got 'ftp://x')."),
        (
            {"EMBEDDING_PROVIDER": "torch"},
            "EMBEDDING_PROVIDER must be one of local, openai (got 'torch').",
        ),
        (
            {"LLM_PROVIDER": "openai"},
            "LLM_PROVIDER=openai needs OPENAI_API_KEY or OPENAI_BASE_URL.",
        ),
        (
            {"EMBEDDING_PROVIDER": "openai"},
            "EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY or OPENAI_BASE_URL.",
        ),
        ({"OPENAI_TIMEOUT": "soon"}, "OPENAI_TIMEOUT must be a number (got 'soon')."),
        ({"CHAT_RATE_LIMIT": "lots"}, "CHAT_RATE_LIMIT must look like 30/m (got 'lots')."),
        ({"FEEDBACK_RATE_LIMIT": "9"}, "FEEDBACK_RATE_LIMIT must look like 30/m (got '9')."),
        ({"INGEST_RATE_LIMIT": "5/w"}, "INGEST_RATE_LIMIT must look like 30/m (got '5/w')."),
        (
            {"TRUSTED_PROXY_HOPS": "-1"},
            "TRUSTED_PROXY_HOPS must be between 0 and 10 (got -1).",
        ),
        (
            {"LLM_DAILY_TOKENS_PER_IP": "many"},
            "LLM_DAILY_TOKENS_PER_IP must be a whole number (got 'many').",
        ),
        (
            {"RATELIMIT_IP_META_KEY": "HTTP_X_FORWARDED_FOR"},
            "RATELIMIT_IP_META_KEY is no longer read: set TRUSTED_PROXY_HOPS",
        ),
        ({"BEHIND_HTTPS_PROXY": "sure"}, "BEHIND_HTTPS_PROXY must be true or false (got 'sure')."),
        (
            {"CHUNK_TOKENS": "64", "CHUNK_OVERLAP_TOKENS": "64"},
            "CHUNK_OVERLAP_TOKENS must be smaller than CHUNK_TOKENS.",
        ),
    ],
)
def test_malformed_variable_stops_start_up_naming_it(tmp_path, env, expected):
    result = load_settings(tmp_path, **env)
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {expected}" in result.stderr


def test_provider_settings_switch_on_llm_and_server_mode(tmp_path):
    result = load_settings(
        tmp_path,
        OPENAI_BASE_URL="http://127.0.0.1:11434/v1/",
        QDRANT_URL="https://qdrant.example:6333",
        SITE_DOCS_PREFIX="/",
    )
    assert result.returncode == 0, result.stderr
    fields = result.stdout.split()
    assert fields[3] == "https://qdrant.example:6333"
    assert fields[5] == "-"  # book served at the site root


def test_rag_config_reflects_settings(settings):
    from ragsite.rag.config import get_config

    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    config = get_config()
    assert config.llm_enabled is True
    assert config.store_mode == "embedded"
    settings.LLM_PROVIDER = "extractive"
    assert get_config().llm_enabled is False
