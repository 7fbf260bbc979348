"""A ``Content-Type`` whose charset cannot be read is refused (415) in the envelope, on every
path, before Django fails on it: an RFC 2231 parameter naming an unknown charset (Django
cannot even build the request), an unknown charset, a codec that is no text encoding."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from telemed.asgi import application

ARABIC = re.compile(r"[\u0600-\u06FF]")
ENGLISH = "This character set is not supported. Send UTF-8."
MULTIPART = (
    b'--xx\r\nContent-Disposition: form-data; name="title"\r\n\r\nhello\r\n'
    b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
    b"Content-Type: application/pdf\r\n\r\n%PDF-1.4 x\r\n--xx--\r\n"
)


def refused(response, *, arabic: bool) -> None:
    assert response.status_code == 415, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "request.unsupported_media_type"
    assert bool(ARABIC.search(body["error"]["message"])) is arabic
    assert (body["error"]["message"] == ENGLISH) is not arabic


def asgi_requests(*requests: tuple[str, str, dict[str, str], bytes]) -> list[httpx.Response]:
    """The requests sent to the whole ASGI application, as a server hands them over."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return [
                await c.request(method, path, headers=headers, content=body)
                for method, path, headers, body in requests
            ]

    return asyncio.run(run())


@pytest.mark.django_db(transaction=True)
def test_a_content_type_django_cannot_parse_is_415_in_the_envelope_on_every_path():
    """``a*=bogus''x`` makes Django's request constructor raise ``ValueError``: the server
    answered a plain-text 500 with a traceback in the log, before any middleware ran."""
    responses = asgi_requests(
        ("POST", "/healthz", {"Content-Type": "text/plain; a*=nope''x"}, b"x"),
        (
            "POST",
            "/api/v1/appointments",
            {
                "Content-Type": "application/json; charset*=x''y",
                "Accept-Language": "ar",
                "X-Request-ID": "req-charset-1",
            },
            b"{}",
        ),
        ("GET", "/healthz", {"Content-Type": "text/plain; a*=nope''x"}, b""),
    )
    health, appointment, bodiless = responses
    refused(health, arabic=False)
    refused(appointment, arabic=True)
    assert bodiless.status_code == 200  # no body, nothing to decode: the header is not read
    # It went through the middleware like any request: its id, the security headers.
    assert appointment.headers["X-Request-ID"] == "req-charset-1"
    assert health.headers["X-Request-ID"]
    for response in (health, appointment):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


@pytest.mark.django_db
@pytest.mark.parametrize("charset", ["rot13", "base64", "hex", "zlib", "no-such-charset"])
def test_a_charset_that_is_no_text_encoding_is_415_not_a_500(api, charset, caplog):
    r = api.generic(
        "POST",
        "/api/v1/records",
        MULTIPART,
        content_type=f"multipart/form-data; boundary=xx; charset={charset}",
        headers={"Accept-Language": "ar"},
    )
    refused(r, arabic=True)
    r = api.generic(
        "POST",
        "/api/v1/realtime/twilio/status",
        b"a=b",
        content_type=f"application/x-www-form-urlencoded; charset={charset}",
    )
    refused(r, arabic=False)
    assert not [rec for rec in caplog.records if rec.levelname == "ERROR"]


@pytest.mark.django_db
def test_a_form_in_a_text_charset_other_than_utf8_is_422_not_a_500(api, caplog):
    """Django reads urlencoded bodies in UTF-8 only and raises ``BadRequest`` for another
    charset when the view first reads the form."""
    r = api.generic(
        "POST",
        "/api/v1/realtime/twilio/status",
        b"a=b",
        content_type="application/x-www-form-urlencoded; charset=latin-1",
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "request.invalid"
    assert r.json()["error"]["fields"] == {"body": "The request body is not valid form data."}
    assert not [rec for rec in caplog.records if rec.levelname == "ERROR"]


@pytest.mark.django_db
@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", '"utf-8"', "latin-1"])
def test_a_text_charset_reaches_the_view(api, charset):
    r = api.generic(
        "POST",
        "/api/v1/records",
        MULTIPART,
        content_type=f"multipart/form-data; boundary=xx; charset={charset}",
    )
    assert r.status_code == 401  # the view's own answer: not signed in
