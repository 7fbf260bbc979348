import re

import pytest
from django.test import override_settings
from django.utils import translation

from core.errors import REGISTRY

ARABIC = re.compile(r"[\u0600-\u06FF]")
probe = override_settings(ROOT_URLCONF="tests.platform.probe_api")


def error_of(response):
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    return body["error"]


def test_unknown_route_is_404_in_the_envelope(api):
    r = api.get("/api/v1/no-such-thing")
    assert r.status_code == 404
    err = error_of(r)
    assert err["code"] == "request.not_found"
    assert err["message"] == "The requested resource was not found."


def test_unknown_route_in_arabic(api):
    r = api.get("/api/v1/no-such-thing", headers={"Accept-Language": "ar"})
    assert r.status_code == 404
    err = error_of(r)
    assert err["code"] == "request.not_found"
    assert ARABIC.search(err["message"])
    assert r["Content-Language"] == "ar"


def test_unsupported_language_falls_back_to_english(api):
    r = api.get("/api/v1/no-such-thing", headers={"Accept-Language": "fr-FR,de;q=0.8"})
    assert error_of(r)["message"] == "The requested resource was not found."


def test_wrong_method_is_405_with_allow(api):
    r = api.post("/api/v1/info", data="{}", content_type="application/json")
    assert r.status_code == 405
    assert error_of(r)["code"] == "request.method_not_allowed"
    assert "GET" in r["Allow"]


def test_wrong_content_type_is_415(api):
    r = api.post("/api/v1/info", data="name=x", content_type="text/plain")
    assert r.status_code == 415
    assert error_of(r)["code"] == "request.unsupported_media_type"


def test_declared_oversized_body_is_413_before_reading(api, settings):
    settings.API_MAX_BODY_BYTES = 100
    r = api.post("/api/v1/info", data="x" * 101, content_type="application/json")
    assert r.status_code == 413
    assert error_of(r)["code"] == "request.too_large"


@probe
def test_malformed_json_is_422_request_invalid(api):
    r = api.post("/api/probe/items", data="{not json", content_type="application/json")
    assert r.status_code == 422
    err = error_of(r)
    assert err["code"] == "request.invalid"
    assert err["fields"] == {"body": "The request body is not valid JSON."}


@probe
def test_invalid_utf8_body_is_422(api):
    r = api.post("/api/probe/items", data=b"\xff\xfe{", content_type="application/json")
    assert r.status_code == 422
    assert error_of(r)["code"] == "request.invalid"


@probe
def test_validation_errors_name_each_field_in_arabic(api):
    r = api.post(
        "/api/probe/items",
        data={"name": "far too long a name", "count": 0},
        content_type="application/json",
        headers={"Accept-Language": "ar"},
    )
    assert r.status_code == 422
    err = error_of(r)
    assert err["code"] == "request.invalid"
    assert set(err["fields"]) == {"name", "count"}
    assert all(ARABIC.search(m) for m in err["fields"].values())


@probe
def test_missing_field_is_required(api):
    r = api.post("/api/probe/items", data={"name": "ok"}, content_type="application/json")
    assert error_of(r)["fields"] == {"count": "This field is required."}


@probe
def test_valid_body_passes(api):
    r = api.post(
        "/api/probe/items", data={"name": "ok", "count": 2}, content_type="application/json"
    )
    assert r.status_code == 200
    assert r.json() == {"name": "ok", "count": 2}


@probe
def test_unexpected_exception_is_500_without_details(api, caplog):
    r = api.get("/api/probe/boom", headers={"X-Request-ID": "req-boom-1"})
    assert r.status_code == 500
    err = error_of(r)
    assert err["code"] == "server.error"
    assert "secret" not in r.content.decode()
    logged = [rec for rec in caplog.records if rec.name == "telemed.errors"]
    assert logged and logged[0].request_id == "req-boom-1"


@probe
@pytest.mark.parametrize(
    ("sqlstate", "status", "code"),
    [
        ("40P01", 409, "request.conflict"),  # deadlock detected
        ("40001", 409, "request.conflict"),  # serialization failure
        ("57P01", 500, "server.error"),  # the server shut down: not the client's to retry
    ],
)
def test_a_transaction_the_database_rolled_back_is_a_conflict(api, sqlstate, status, code):
    r = api.get(f"/api/probe/database/{sqlstate}", headers={"Accept-Language": "ar"})
    assert r.status_code == status
    assert error_of(r)["code"] == code
    if status == 409:
        assert (
            error_of(r)["message"]
            != "The request conflicts with the current state. Please reload and try again."
        )


@probe
@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/probe/private", 401, "auth.unauthenticated"),
        ("/api/probe/forbidden", 403, "auth.forbidden"),
        ("/api/probe/conflict", 409, "request.conflict"),
        ("/api/probe/limited", 429, "request.rate_limited"),
    ],
)
def test_status_codes_use_the_envelope(api, path, status, code):
    r = api.get(path)
    assert r.status_code == status
    assert error_of(r)["code"] == code


@probe
def test_rate_limited_sends_retry_after(api):
    assert api.get("/api/probe/limited")["Retry-After"] == "7"


@probe
def test_401_names_the_bearer_scheme(api):
    assert api.get("/api/probe/private")["WWW-Authenticate"] == "Bearer"


def test_every_error_code_has_a_real_arabic_message():
    assert len(REGISTRY) >= 10
    for code, cls in REGISTRY.items():
        assert re.fullmatch(r"[a-z_]+\.[a-z_]+", code), code
        with translation.override("en"):
            english = str(cls.message)
        with translation.override("ar"):
            arabic = str(cls.message)
        assert ARABIC.search(arabic), f"{code} has no Arabic message"
        assert arabic != english, code


@probe
@pytest.mark.parametrize("body", ["[null, null]", '"text"', "3"])
def test_a_json_body_that_is_not_an_object_is_422(api, body):
    r = api.post("/api/probe/items", data=body, content_type="application/json")
    assert r.status_code == 422
    assert error_of(r)["code"] == "request.invalid"
