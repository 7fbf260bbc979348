"""Django's error pages (``handler400`` ...) answer the envelope under ``/api/``, also where a
middleware before ``ApiGuardMiddleware`` refuses the request, and stay Django's elsewhere."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.urls import get_resolver

ARABIC = re.compile(r"[\u0600-\u06FF]")


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_bad_host_under_the_https_redirect_is_the_envelope(settings, method):
    """With ``SECURE_SSL_REDIRECT`` (production), ``SecurityMiddleware`` asks for the host
    before ``ApiGuardMiddleware`` and ``LocaleMiddleware`` have run."""
    settings.SECURE_SSL_REDIRECT = True
    r = getattr(Client(), method)(
        "/api/v1/info",
        HTTP_HOST="evil.example",
        headers={"Accept-Language": "ar", "X-Request-ID": "req-host-1"},
    )
    assert r.status_code == 400
    assert r["Content-Type"].startswith("application/json")
    error = r.json()["error"]
    assert error["code"] == "request.invalid"
    assert ARABIC.search(error["message"])
    assert r["X-Request-ID"] == "req-host-1"


def test_a_bad_host_outside_the_api_keeps_djangos_page(settings):
    settings.SECURE_SSL_REDIRECT = True
    r = Client().get("/admin/login/", HTTP_HOST="evil.example")
    assert r.status_code == 400
    assert r["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "request.invalid"),
        (403, "auth.forbidden"),
        (404, "request.not_found"),
        (500, "server.error"),
    ],
)
def test_each_error_page_is_the_envelope_under_the_api(status, code):
    handler: Any = get_resolver().resolve_error_handler(status)  # as Django calls each
    kwargs = {} if status == 500 else {"exception": Exception()}
    request = RequestFactory().get("/api/v1/x", headers={"Accept-Language": "en"})
    response = handler(request, **kwargs)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["error"]["code"] == code
    page = RequestFactory().get("/calendar/x.ics")
    outside = handler(page, **kwargs)
    assert outside.status_code == status
    assert outside["Content-Type"].startswith("text/html")
