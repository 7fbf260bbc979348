from django.test import override_settings


def test_metrics_need_the_token(api):
    with override_settings(METRICS_TOKEN="t0ken"):
        assert api.get("/metrics").status_code == 401
        assert api.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        api.get("/api/v1/info")
        r = api.get("/metrics", headers={"Authorization": "Bearer t0ken"})
    assert r.status_code == 200
    text = r.content.decode()
    assert 'telemed_http_requests_total{method="GET",route="/api/v1/info",status="200"}' in text
    assert "telemed_http_request_duration_seconds_bucket" in text
    assert "telemed_websocket_connections" in text


def test_metrics_closed_in_production_without_a_token(api):
    with override_settings(METRICS_TOKEN="", PRODUCTION=True):
        assert api.get("/metrics").status_code == 404
