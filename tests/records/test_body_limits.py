"""Upload size limits at the ASGI edge (before Django reads the body) and through a real
server process: a declared length over the limit is refused at once, a body that grows past
it is cut off."""

from __future__ import annotations

import json

import httpx
import pytest

from tests import asgi_edge as edge
from tests import procs
from tests.factories import bearer, make_user
from tests.records.conftest import PDF


def _scope(headers: list[tuple[bytes, bytes]]) -> dict:
    return edge.scope("/api/v1/records", headers)


async def _call(scope: dict, chunks: list[bytes]) -> tuple[int, dict, int]:
    status, body, read = await edge.call(scope, chunks)
    return status, json.loads(body), read


async def test_declared_length_over_the_limit_is_413_without_reading_a_byte(settings):
    scope = _scope([(b"content-length", str(21 * 1024 * 1024).encode())])
    status, body, read = await _call(scope, [b"x" * 1024])
    assert (status, body["error"]["code"], read) == (413, "request.too_large", 0)


async def test_chunked_body_growing_past_the_limit_is_cut_off(settings):
    settings.API_BODY_LIMITS = {"/api/v1/records": 3 * 65536}
    scope = _scope([(b"transfer-encoding", b"chunked"), (b"accept-language", b"ar")])
    status, body, read = await _call(scope, [b"x" * 65536] * 10)
    assert status == 413
    assert read == 4  # stopped at the first chunk past the limit, the rest never read
    assert body["error"]["message"] != "The request body is too large."  # Arabic


async def test_other_api_paths_keep_the_small_json_limit(settings):
    scope = _scope([(b"content-length", str(2 * 1024 * 1024).encode())])
    scope["path"] = "/api/v1/appointments"
    status, _, _ = await _call(scope, [b"{}"])
    assert status == 413


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_real_server_refuses_a_21_mb_upload_and_takes_a_1_mb_one(server_env, workdir):
    from tests.factories import PASSWORD

    patient = make_user()
    with procs.running(procs.start_server(workdir, server_env, kind="uvicorn")) as proc:
        base = proc.info["base"]
        login = httpx.post(
            f"{base}/_allauth/app/v1/auth/login",
            json={"email": patient.email, "password": PASSWORD},
        )
        headers = bearer(login.json()["meta"]["access_token"])
        data = {"category": "report", "title": "big"}
        big = PDF + b"0" * (21 * 1024 * 1024)
        r = httpx.post(
            f"{base}/api/v1/records", headers=headers, data=data, files={"file": ("a.pdf", big)}
        )
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "request.too_large"

        def chunked():  # no Content-Length: cut off when the body passes the limit
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n\r\n'
            for _ in range(22):
                yield b"0" * (1024 * 1024)

        r = httpx.post(
            f"{base}/api/v1/records",
            headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},
            content=chunked(),
        )
        assert r.status_code == 413
        ok = PDF + b"0" * (1024 * 1024)
        r = httpx.post(
            f"{base}/api/v1/records", headers=headers, data=data, files={"file": ("a.pdf", ok)}
        )
        assert r.status_code == 201, r.text
        assert r.json()["size"] == len(ok)
