"""qdrant-client only: the process's client, server mode's options and retries.

Every behaviour shared with qdrant-edge is in test_store_contract.py.
"""

from __future__ import annotations

import json
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ragsite.rag import providers
from ragsite.rag.config import get_config
from ragsite.rag.exceptions import VectorStoreError
from ragsite.rag.vectorstore import (
    QdrantOptions,
    QdrantStore,
    client_args,
    close_client,
    collection_args,
    get_client,
    memory_client,
)
from tests.rag.corpus import CORPUS, QUERY_TEXT, QUERY_VECTOR, names


def test_health_reports_points_and_fails_on_a_closed_client():
    config = get_config()
    store = QdrantStore(get_client(config), "test")
    store.ensure_collection(dimension=4)
    store.upsert([CORPUS["legs"][0]], [CORPUS["legs"][1]])
    assert store.health() == {"status": "ok", "mode": "embedded", "points": 1}
    close_client()
    with pytest.raises(VectorStoreError):
        store.health()


def test_get_client_is_shared_within_the_process():
    config = get_config()
    assert get_client(config) is get_client(config)


def test_providers_store_uses_the_test_settings(settings):
    settings.VECTOR_ENGINE = "qdrant-local"
    store = providers.get_store()
    assert store is providers.get_store()
    assert store.mode == "embedded"
    assert store.collection == "test"
    store.ensure_collection(dimension=4)
    store.upsert([CORPUS["lidar"][0]], [CORPUS["lidar"][1]])
    assert store.health() == {"status": "ok", "mode": "embedded", "points": 1}
    assert (Path(settings.QDRANT_PATH) / "collection" / "test").is_dir()
    other = providers.get_store("eval-tmp")
    assert other.collection == "eval-tmp"
    assert other.count() == 0


# --- server mode, as far as local mode and a loopback fake allow ------------------------------


def test_collection_arguments_carry_the_server_options():
    options = QdrantOptions(shards=3, replicas=2, on_disk_payload=True)
    args = collection_args(384, options)
    assert args["shard_number"] == 3
    assert args["replication_factor"] == 2
    assert args["on_disk_payload"] is True
    assert args["vectors_config"]["dense"].size == 384
    assert args["vectors_config"]["dense"].distance == "Cosine"
    assert args["sparse_vectors_config"]["sparse"].modifier == "idf"


def test_local_mode_takes_the_server_code_path_silently():
    """The same create_collection arguments and payload index run in local mode."""
    store = QdrantStore(
        memory_client(),
        "cluster",
        options=QdrantOptions(shards=4, replicas=3, on_disk_payload=True),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # local mode's payload-index warning would fail here
        store.ensure_collection(dimension=4)
    store.upsert([CORPUS["lidar"][0]], [CORPUS["lidar"][1]])
    hits = store.search(query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=3)
    assert names(hits) == ["lidar"]


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_server_settings_reach_the_client_and_the_store(settings):
    settings.QDRANT_URL = "http://127.0.0.1:9"  # never contacted: the client is lazy
    settings.QDRANT_API_KEY = "s3cret"
    settings.QDRANT_PREFER_GRPC = True
    settings.QDRANT_TIMEOUT = 3.0
    settings.QDRANT_RETRIES = 4
    settings.QDRANT_SHARDS = 6
    settings.QDRANT_REPLICAS = 2
    settings.QDRANT_ON_DISK_PAYLOAD = True
    config = get_config()
    assert client_args(config) == {
        "url": "http://127.0.0.1:9",
        "api_key": "s3cret",
        "timeout": 3.0,
        "prefer_grpc": True,
        "check_compatibility": False,
    }
    store = providers.get_store()
    assert isinstance(store, QdrantStore)
    assert store.mode == "server"
    assert store.options == QdrantOptions(shards=6, replicas=2, on_disk_payload=True, retries=4)
    assert store._client.init_options["prefer_grpc"] is True


class _FlakyQdrant(BaseHTTPRequestHandler):
    """A loopback stand-in for Qdrant's REST count endpoint: 503 `failures` times, then 7."""

    failures = 0
    seen: list[tuple[str, str | None]]

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).seen.append((self.path, self.headers.get("api-key")))
        if type(self).failures > 0:
            type(self).failures -= 1
            status, body = 503, {"status": {"error": "overloaded"}, "time": 0}
        else:
            status, body = 200, {"result": {"count": 7}, "status": "ok", "time": 0}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_qdrant(settings):
    _FlakyQdrant.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyQdrant)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.QDRANT_URL = f"http://127.0.0.1:{server.server_address[1]}"
    settings.QDRANT_API_KEY = "s3cret"
    settings.QDRANT_RETRIES = 2
    yield _FlakyQdrant
    server.shutdown()
    server.server_close()


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_server_calls_retry_a_5xx_and_send_the_api_key(flaky_qdrant):
    flaky_qdrant.failures = 2
    assert providers.get_store().count() == 7
    assert [path for path, _ in flaky_qdrant.seen] == ["/collections/test/points/count"] * 3
    assert {key for _, key in flaky_qdrant.seen} == {"s3cret"}


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_server_calls_give_up_after_the_retries(flaky_qdrant):
    flaky_qdrant.failures = 10
    with pytest.raises(VectorStoreError, match="could not count chunks"):
        providers.get_store().count()
    counts = [path for path, _ in flaky_qdrant.seen if path.endswith("/count")]
    assert len(counts) == 3  # the first try and QDRANT_RETRIES=2


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_server_health_is_never_retried(flaky_qdrant):
    flaky_qdrant.failures = 1
    with pytest.raises(VectorStoreError, match="could not count chunks"):
        providers.get_store().health()
    assert len([path for path, _ in flaky_qdrant.seen if path.endswith("/count")]) == 1
