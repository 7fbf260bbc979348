"""allauth's one-time codes end after three wrong tries, also when the tries come at once:
each session checks one code at a time (``accounts.middleware``), and checks are limited per
client address."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory

from accounts.auth import session_of_token
from accounts.middleware import _TURN, AllauthEdgeMiddleware
from core.sessions import SessionStore
from tests.factories import AUTH, bearer, last_code, login, make_user, post
from tests.threads import run_together

CONFIRM = f"{AUTH}/auth/code/confirm"
PARALLEL = 8


def wrong_code(good: str) -> str:
    return "AAAA-AAAA" if good != "AAAA-AAAA" else "BBBB-BBBB"


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_codes_are_checked_one_at_a_time_and_three_end_the_code():
    user = make_user()
    r = post(Client(), f"{AUTH}/auth/code/request", {"email": user.email})
    session = {"X-Session-Token": r.json()["meta"]["session_token"]}
    good = last_code()

    def guess(n: int):
        return post(Client(), CONFIRM, {"code": wrong_code(good)}, **session)

    answers = []
    for _burst in range(3):
        found, errors = run_together(PARALLEL, guess)
        assert errors == []
        answers += found
    checked = [a for a in answers if a.status_code == 400]
    refused = [a for a in answers if a.status_code == 429]
    assert len(checked) == 3  # each seeing the count the one before saved
    # The rest were refused while another was checked, or came after the third ended the code.
    assert {a.status_code for a in answers} <= {400, 429, 409} and refused
    assert refused[0].json() == {
        "status": 429,
        "errors": [
            {
                "message": "Too many attempts to enter a code. Please wait a moment, then try again.",
                "code": "too_many_code_checks",
            }
        ],
    }
    assert refused[0]["Retry-After"] == "1"

    r = post(Client(), CONFIRM, {"code": good}, **session)
    assert r.status_code == 409, r.json()  # three wrong tries ended the code: no login pending


@pytest.mark.django_db
def test_a_session_checks_its_codes_again_once_the_check_before_has_answered():
    user = make_user()
    client = Client()
    r = post(client, f"{AUTH}/auth/code/request", {"email": user.email})
    session = {"X-Session-Token": r.json()["meta"]["session_token"]}
    good = last_code()
    assert post(client, CONFIRM, {"code": wrong_code(good)}, **session).status_code == 400
    assert post(client, CONFIRM, {"code": wrong_code(good)}, **session).status_code == 400
    r = post(client, CONFIRM, {"code": good}, **session)
    assert r.status_code == 200 and r.json()["meta"]["is_authenticated"]


@pytest.mark.django_db
def test_code_checks_are_limited_per_client_address(settings):
    assert (
        settings.ACCOUNT_RATE_LIMITS["code_check"] == "30/m/ip"
    )  # CODE_CHECK_RATE_LIMIT's default
    limit = 30
    for _ in range(limit):  # no session: nothing to check, yet counted
        assert post(Client(), CONFIRM, {"code": "AAAA-AAAA"}).status_code != 429
    r = post(Client(), CONFIRM, {"code": "AAAA-AAAA"}, **{"Accept-Language": "ar"})
    assert r.status_code == 429
    assert int(r["Retry-After"]) > 0
    error = r.json()["errors"][0]
    assert error["code"] == "too_many_code_checks"
    assert error["message"] == "محاولات كثيرة لإدخال رمز. يرجى الانتظار قليلًا ثم المحاولة مرة أخرى."


@pytest.mark.django_db
def test_the_limit_per_client_address_is_a_setting(settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "code_check": "2/m/ip"}
    answers = [post(Client(), CONFIRM, {"code": "AAAA-AAAA"}).status_code for _ in range(3)]
    assert 429 not in answers[:2] and answers[2] == 429


@pytest.mark.django_db
def test_a_code_check_reads_its_session_once_and_takes_that_sessions_turn(monkeypatch):
    """The session is found once per request, as allauth finds it (the access token's when
    no ``X-Session-Token`` is sent), by the pending-step check and the code check turn."""
    user = make_user()
    access = login(Client(), user.email)["access"]
    session = session_of_token(access)
    assert session is not None and session.session_key
    turn = f"allauth-code-check:{hashlib.sha256(session.session_key.encode()).hexdigest()}"
    loads: list[str | None] = []
    load = SessionStore.load

    def counted_load(self: SessionStore) -> dict[str, Any]:
        loads.append(self.session_key)
        return load(self)

    monkeypatch.setattr(SessionStore, "load", counted_load)
    edge = AllauthEdgeMiddleware(lambda request: HttpResponse())
    for headers in (bearer(access), {"X-Session-Token": session.session_key}):
        loads.clear()
        request = RequestFactory().post(
            f"{AUTH}/auth/phone/verify", {"code": "AAAA-AAAA"}, "application/json", headers=headers
        )
        assert edge.process_request(request) is None
        assert loads == [session.session_key]
        assert getattr(request, _TURN) == turn
        edge.process_response(request, HttpResponse())  # gives the turn back
