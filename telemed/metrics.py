"""Prometheus metrics of this process (scraped at ``/metrics`` with ``METRICS_TOKEN``)."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

import realtime.metrics  # noqa: F401  (registers the socket gauges on the same registry)

REQUESTS = Counter("telemed_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "telemed_http_request_duration_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(route).observe(seconds)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition, for a scraper holding ``Authorization: Bearer <METRICS_TOKEN>``.
    With no token configured it is open in development and closed in production."""
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return HttpResponse(status=401, headers={"WWW-Authenticate": "Bearer"})
    elif settings.PRODUCTION:
        return HttpResponse(status=404)
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
