"""POST /api/ingest and GET /api/ingest/status, as API.md describes them."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.db import connection
from django.test import Client

from ingestion.models import Document
from ingestion.services import task_create
from ingestion.views import AUTH_MISSING_MESSAGE, AUTH_WRONG_MESSAGE, INGEST_DISABLED_MESSAGE

from .conftest import assert_index_consistent

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "s3cret-ingest-token"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
STATUS_FIELDS = {
    "task_id", "status", "source", "book_dir", "files_total", "files_done", "files_unchanged",
    "files_failed", "files_deleted", "chunks_added", "chunks_deleted", "embeddings_computed",
    "progress", "started_at", "finished_at", "duration_s", "errors",
}  # fmt: skip


@pytest.fixture
def token(settings):
    settings.INGEST_TOKEN = TOKEN
    return TOKEN


def post_ingest(client: Client, body: object = None, **headers):
    import json

    data = "" if body is None else (body if isinstance(body, str) else json.dumps(body))
    return client.post("/api/ingest", data=data, content_type="application/json", **headers)


def wait_for(client: Client, task_id: str, timeout: float = 240.0) -> dict:
    """Poll the status endpoint until the task leaves queued/running."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/ingest/status/{task_id}")
        assert response.status_code == 200
        status = response.json()
        if status["status"] not in {"queued", "running"}:
            return status
        assert time.monotonic() < deadline, f"task still {status['status']}: {status}"
        time.sleep(0.2)


def test_ingest_is_disabled_without_a_configured_token(client, settings):
    settings.INGEST_TOKEN = ""

    response = post_ingest(client, **AUTH)

    assert response.status_code == 403
    assert response.json()["error"]["message"] == INGEST_DISABLED_MESSAGE


def test_ingest_needs_the_right_bearer_token(client, token):
    missing = post_ingest(client)
    wrong = post_ingest(client, HTTP_AUTHORIZATION="Bearer not-the-token")
    basic = post_ingest(client, HTTP_AUTHORIZATION=f"Basic {TOKEN}")

    assert missing.status_code == 401
    assert missing.json()["error"] == {
        "code": "unauthorized",
        "message": AUTH_MISSING_MESSAGE,
        "details": {},
    }
    assert wrong.status_code == 403
    assert wrong.json()["error"]["message"] == AUTH_WRONG_MESSAGE
    assert basic.status_code == 401


def test_ingest_refuses_paths_outside_the_book_and_bad_bodies(client, token, tiny_book, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tiny_book / "sneaky").symlink_to(outside)

    for path in ("../outside", "lab/../../outside", str(outside), "/etc", "sneaky"):
        response = post_ingest(client, {"path": path}, **AUTH)
        assert response.status_code == 400, path
        assert response.json()["error"]["code"] == "path_outside_book"
    assert post_ingest(client, {"path": "no-such-folder"}, **AUTH).status_code == 400
    assert post_ingest(client, "{not json", **AUTH).json()["error"]["code"] == "bad_request"
    assert post_ingest(client, {"force": "yes"}, **AUTH).status_code == 400
    assert post_ingest(client, {"pth": "typo"}, **AUTH).status_code == 400
    assert post_ingest(client, ["a list"], **AUTH).status_code == 400
    assert not Document.objects.exists()


def test_wrong_methods_get_405_json(client):
    assert client.get("/api/ingest").status_code == 405
    response = client.post("/api/ingest/status")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_unknown_tasks_are_404(client):
    assert client.get("/api/ingest/status").status_code == 404  # nothing ran yet
    assert client.get(f"/api/ingest/status/{uuid.uuid4()}").status_code == 404
    response = client.get("/api/ingest/status/not-a-uuid")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_concurrent_requests_start_one_ingestion_that_runs_in_the_background(
    token, tiny_book, store
):
    barrier = threading.Barrier(2)
    responses = []

    def request() -> None:
        try:
            barrier.wait()
            responses.append(post_ingest(Client(), {"force": False}, **AUTH))
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    accepted, refused = sorted(responses, key=lambda r: r.status_code)
    assert accepted.status_code == 202
    started = accepted.json()
    assert started["status"] == "queued"
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "ingestion_running"
    assert refused.json()["error"]["details"] == {"task_id": started["task_id"]}

    client = Client()
    finished = wait_for(client, started["task_id"])

    assert finished["status"] == "succeeded", finished["errors"]
    assert STATUS_FIELDS <= set(finished)
    assert finished["source"] == "api"
    assert finished["files_total"] == finished["files_done"] == 2
    assert finished["progress"] == 1.0
    assert finished["finished_at"].endswith("Z")
    assert finished["embeddings_computed"] == finished["chunks_added"] > 0
    assert client.get("/api/ingest/status").json()["task_id"] == started["task_id"]
    assert_index_consistent(store)

    # The book's pages are now what the index holds; a sub-path run is accepted too.
    again = post_ingest(client, {"path": "lab"}, **AUTH)
    assert again.status_code == 202
    rerun = wait_for(client, again.json()["task_id"])
    assert (rerun["status"], rerun["files_total"], rerun["embeddings_computed"]) == (
        "succeeded",
        1,
        0,
    )


def test_a_queued_task_blocks_a_new_request(client, token, tiny_book):
    queued = task_create(source="admin", book_dir=tiny_book)

    response = post_ingest(client, **AUTH)

    assert response.status_code == 409
    assert response.json()["error"]["details"]["task_id"] == str(queued.pk)
