import json
import logging

from django.test import override_settings

from telemed.logging import JsonFormatter, RequestContextFilter


def test_info_endpoint(api):
    r = api.get("/api/v1/info")
    assert r.status_code == 200
    assert r.json()["languages"] == ["en", "ar"]


def test_request_id_is_accepted_and_echoed(api):
    r = api.get("/api/v1/info", headers={"X-Request-ID": "abc-123"})
    assert r["X-Request-ID"] == "abc-123"


def test_malformed_request_id_is_replaced(api):
    r = api.get("/api/v1/info", headers={"X-Request-ID": "bad id\n<script>"})
    assert r["X-Request-ID"] != "bad id\n<script>"
    assert len(r["X-Request-ID"]) == 32


def test_security_headers_on_every_response(api):
    for path in ("/api/v1/info", "/api/v1/nope", "/healthz"):
        r = api.get(path)
        assert r["X-Content-Type-Options"] == "nosniff"
        assert r["X-Frame-Options"] == "DENY"
        assert "default-src 'none'" in r["Content-Security-Policy"]
        assert r["Referrer-Policy"] == "same-origin"
    assert api.get("/api/v1/info")["Cache-Control"] == "no-store"


def test_docs_page_and_openapi(api):
    assert api.get("/api/v1/docs").status_code == 200
    spec = api.get("/api/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/info" in spec["paths"]


def test_openapi_spec_is_valid(api):
    from openapi_spec_validator import validate

    validate(api.get("/api/v1/openapi.json").json())


@override_settings(CORS_ALLOWED_ORIGINS=["https://app.example.org"])
def test_cors_allows_only_listed_origins(api):
    ok = api.get("/api/v1/info", headers={"Origin": "https://app.example.org"})
    assert ok["Access-Control-Allow-Origin"] == "https://app.example.org"
    other = api.get("/api/v1/info", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other


def test_access_log_is_json_with_route_not_raw_path(api, caplog):
    caplog.set_level(logging.INFO, logger="telemed.access")
    api.get("/api/v1/no-such-thing?token=s3cret", headers={"X-Request-ID": "log-1"})
    record = next(r for r in caplog.records if r.name == "telemed.access")
    RequestContextFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["status"] == 404
    assert line["route"] == "unmatched"
    assert "s3cret" not in json.dumps(line)
    assert line["level"] == "INFO"


def test_json_formatter_carries_request_id(api, caplog):
    api.get("/api/v1/info", headers={"X-Request-ID": "log-2"})
    record = next(r for r in caplog.records if r.name == "telemed.access")
    assert json.loads(JsonFormatter().format(record))["request_id"] == "log-2"
    assert record.route == "/api/v1/info"


def test_csrf_kept_for_cookie_authenticated_pages():
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    r = client.post("/admin/login/", {"username": "x", "password": "y"})
    assert r.status_code == 403
