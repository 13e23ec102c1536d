"""Secure defaults: `manage.py check --deploy` is clean with the Dockerfile's settings,
and behind the platform's HTTPS proxy plain HTTP is redirected, cookies are secure and
HSTS is sent, while the container's own health check still answers over HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parent.parent
# Build-time variables of the image that are no ragsite setting.
NOT_SETTINGS = {"PATH", "RAGSITE_DATA_DIR"}


def dockerfile_env() -> dict[str, str]:
    """The ENV variables the Dockerfile sets (the deployment people copy)."""
    text = (REPO_DIR / "Dockerfile").read_text()
    env: dict[str, str] = {}
    for block in re.findall(r"^ENV\s+((?:.*\\\n)*.*)$", text, flags=re.MULTILINE):
        for name, value in re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", block):
            if name not in NOT_SETTINGS and not name.startswith(("UV_", "PYTHON")):
                env[name] = value
    return env


def deploy_check(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `manage.py check --deploy --fail-level WARNING` with exactly these variables."""
    clean = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    clean |= {
        "RAGSITE_SKIP_DOTENV": "1",
        "RAGSITE_DATA_DIR": str(tmp_path / "data"),
        "DJANGO_SETTINGS_MODULE": "ragsite.settings",
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_dockerfile_sets_the_proxy_and_https_settings():
    env = dockerfile_env()
    assert env["TRUSTED_PROXY_HOPS"] == "1"
    assert env["BEHIND_HTTPS_PROXY"] == "true"
    assert "FORWARDED_ALLOW_IPS" not in env


def test_deploy_check_is_clean_with_the_dockerfile_settings(tmp_path):
    result = deploy_check(tmp_path, dockerfile_env())
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout
    # The generated key is a real one (W009 would flag a short or insecure one).
    assert len((tmp_path / "data" / "secret_key").read_text()) >= 50


def test_deploy_check_flags_what_the_dockerfile_fixes(tmp_path):
    env = dockerfile_env()
    del env["BEHIND_HTTPS_PROXY"]
    result = deploy_check(tmp_path, {**env, "SECRET_KEY": "django-insecure-short"})
    assert result.returncode != 0
    output = result.stderr + result.stdout
    for warning in ("security.W004", "security.W008", "security.W009", "security.W012"):
        assert warning in output


@pytest.fixture
def behind_https(settings):
    """The settings BEHIND_HTTPS_PROXY=true produces."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    return settings


@pytest.mark.django_db
def test_behind_https_plain_http_is_redirected_but_health_is_not(client, behind_https):
    redirected = client.get("/api/search", {"q": "lidar"})
    assert redirected.status_code == 301
    assert redirected["Location"].startswith("https://")
    health = client.get("/api/health")
    assert health.status_code == 200  # the container's HEALTHCHECK speaks plain HTTP
    secure = client.get("/api/search", {"q": "lidar"}, HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


@pytest.mark.django_db
def test_behind_https_the_admin_cookies_are_secure(client, behind_https):
    response = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert response.cookies["csrftoken"]["secure"] is True


def test_the_healthcheck_gives_health_more_than_its_one_second():
    text = (REPO_DIR / "Dockerfile").read_text()
    docker_timeout = int(re.search(r"HEALTHCHECK .*--timeout=(\d+)s", text).group(1))
    client_timeout = int(re.search(r"/api/health', timeout=(\d+)\)", text).group(1))
    assert 1 < client_timeout < docker_timeout
