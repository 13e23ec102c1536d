"""/metrics in Prometheus format, one request id from the access log to the response,
and JSON logs."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ragsite.observability import REQUEST_ID_HEADER


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.django_db
def test_metrics_count_requests_per_endpoint(client):
    before = _samples(client.get("/metrics").content.decode())
    for _ in range(3):
        assert client.get("/api/ingest/status").status_code in (200, 404)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    after = _samples(response.content.decode())
    key = next(
        k
        for k in after
        if k[0] == "ragsite_http_requests_total" and ("endpoint", "ingest-status") in k[1]
    )
    assert after[key] - before.get(key, 0) == 3
    names = {name for name, _ in after}
    for expected in (
        "ragsite_http_request_duration_seconds_bucket",
        "ragsite_chat_time_to_sources_seconds_bucket",
        "ragsite_chat_time_to_first_token_seconds_bucket",
        "ragsite_retrieval_duration_seconds_bucket",
    ):
        assert expected in names


@pytest.mark.django_db
def test_metrics_token_is_required_when_set(client, settings):
    settings.METRICS_TOKEN = "s3cret-metrics"
    assert client.get("/metrics").status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
    assert ok.status_code == 200


@pytest.mark.django_db
def test_request_id_is_echoed_made_and_in_the_access_log(client, caplog):
    caplog.set_level(logging.INFO, logger="ragsite.access")
    given = client.get("/api/health", headers={REQUEST_ID_HEADER: "trace-abc-12345"})
    assert given[REQUEST_ID_HEADER] == "trace-abc-12345"
    made = client.get("/api/health", headers={REQUEST_ID_HEADER: "bad id with spaces!"})
    assert made[REQUEST_ID_HEADER] != "bad id with spaces!"
    assert len(made[REQUEST_ID_HEADER]) == 32
    lines = [r for r in caplog.records if r.name == "ragsite.access"]
    assert [r.request_id for r in lines[-2:]] == ["trace-abc-12345", made[REQUEST_ID_HEADER]]
    assert '"GET /api/health"' in lines[-1].getMessage()


def test_json_log_lines_carry_the_request_id():
    from pythonjsonlogger.json import JsonFormatter

    from ragsite.observability import RequestIdFilter, request_id_var

    formatter = JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
        rename_fields={"levelname": "level", "name": "logger"},
    )
    record = logging.LogRecord("chat.views", logging.INFO, __file__, 1, "answered", None, None)
    token = request_id_var.set("req-00000001")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    line = json.loads(formatter.format(record))
    assert line["request_id"] == "req-00000001"
    assert line["level"] == "INFO"
    assert line["message"] == "answered"
