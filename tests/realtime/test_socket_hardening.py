"""The gateway under hostile or careless clients: malformed frames, a bogus resume point, the
socket's language, revoked sessions, accounts that must change their password, too many
sockets and too many tickets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils.translation import gettext

from accounts.models import User
from realtime.services import notify
from telemed.asgi import application
from tests.factories import AUTH, PASSWORD, bearer, login, make_user, post
from tests.realtime.conftest import open_socket, receive_type

pytestmark = pytest.mark.django_db(transaction=True)

CLOSED_4401 = {"type": "websocket.close", "code": 4401}
CLOSED_4403 = {"type": "websocket.close", "code": 4403}
CLOSED_4409 = {"type": "websocket.close", "code": 4409}
ARABIC_WHOLE_NUMBER = "أرسل عددًا صحيحًا يساوي 0 أو أكثر."


def _tokens(user: User) -> dict[str, str]:
    return login(Client(), user.email)


def _ticket(token: str) -> str:
    r = post(Client(), "/api/v1/realtime/ticket", **bearer(token))
    assert r.status_code == 201, r.content
    return str(r.json()["ticket"])


async def _connect(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    ws = WebsocketCommunicator(application, path, headers=headers or [])
    assert (await ws.connect())[0]  # accepted; a refusal is a close right after
    return ws


async def _bearer_socket(token: str, *extra: tuple[bytes, bytes]) -> Any:
    ws = await _connect("/ws/v1/", [(b"authorization", f"Bearer {token}".encode()), *extra])
    await asyncio.sleep(0.2)  # the socket joins the fan-out registry after accepting
    return ws


async def _ticket_socket(token: str) -> Any:
    ticket = await database_sync_to_async(_ticket)(token)
    ws = await _connect(f"/ws/v1/?ticket={ticket}")
    await asyncio.sleep(0.2)
    return ws


async def _still_open(ws: Any) -> None:
    await ws.send_json_to({"type": "resume", "after": 0})
    assert (await receive_type(ws, "resume.done"))["data"]["last"] == 0


# --- malformed frames --------------------------------------------------------------------


async def test_deeply_nested_and_undecodable_frames_get_errors_and_the_socket_keeps_working():
    user = await database_sync_to_async(make_user)()
    ws = await open_socket(user)
    frames = [
        "[" * 5000,  # past the parser's recursion limit
        '{"type": ' + "[" * 900 + "]" * 900 + "}",  # parses, but too deep to handle safely
        '{"type": "resume", "chat": ' + "[" * 40 + "]" * 40 + "}",
        '{"type": "resume", "after": 0, "x": "\ud800"}',  # a lone surrogate, not UTF-8
    ]
    for frame in frames:
        await ws.send_to(text_data=frame)
        reply = await ws.receive_json_from(timeout=5)
        assert reply["type"] == "error", frame[:40]
        assert reply["error"]["code"] == "realtime.malformed", frame[:40]
    await ws.send_to(bytes_data=b'{"type": "resume", "x": "\xed\xa0\x80"}')  # the same, encoded
    assert (await ws.receive_json_from(timeout=5))["error"]["code"] == "realtime.malformed"
    await _still_open(ws)
    await ws.disconnect()


# --- resume --------------------------------------------------------------------------------


def _notify(user: User, title: str) -> None:
    notify(users=[user], kind="notification.created", data={}, render=lambda u: (title, ""))


@pytest.mark.parametrize("after", [10**15, 2**70])
async def test_a_resume_past_the_last_event_is_clamped_and_later_events_still_arrive(after):
    user = await database_sync_to_async(make_user)()
    for title in ("one", "two"):
        await database_sync_to_async(_notify)(user, title)
    ws = await open_socket(user)
    await ws.send_json_to({"type": "resume", "after": after})
    assert (await receive_type(ws, "resume.done"))["data"] == {"last": 2, "more": False}
    await database_sync_to_async(_notify)(user, "three")
    event = await receive_type(ws, "notification.created")
    assert (event["id"], event["data"]["title"]) == (3, "three")
    await ws.disconnect()


async def test_a_resume_past_the_end_with_no_events_at_all_is_zero():
    user = await database_sync_to_async(make_user)()
    ws = await open_socket(user)
    await ws.send_json_to({"type": "resume", "after": 99})
    assert (await receive_type(ws, "resume.done"))["data"] == {"last": 0, "more": False}
    await database_sync_to_async(_notify)(user, "first")
    assert (await receive_type(ws, "notification.created"))["id"] == 1
    await ws.disconnect()


async def test_a_resume_after_retention_deleted_every_event_keeps_the_clients_place():
    from realtime.models import Notification

    user = await database_sync_to_async(make_user)()
    for title in ("one", "two"):
        await database_sync_to_async(_notify)(user, title)
    await database_sync_to_async(lambda: Notification.objects.filter(user=user).delete())()
    ws = await open_socket(user)
    await ws.send_json_to({"type": "resume", "after": 2})
    # Not 0: the ids given out are the counter's, and the next one is still 3.
    assert (await receive_type(ws, "resume.done"))["data"] == {"last": 2, "more": False}
    await database_sync_to_async(_notify)(user, "three")
    assert (await receive_type(ws, "notification.created"))["id"] == 3
    await ws.disconnect()


# --- language -------------------------------------------------------------------------------


async def test_field_errors_of_handlers_and_resume_are_in_the_users_language():
    from core.errors import InvalidRequest
    from realtime.consumers import HANDLERS

    def picky(*, user, content):
        raise InvalidRequest(fields={"n": gettext("Send a whole number, 0 or more.")})

    user = await database_sync_to_async(make_user)(language="ar")
    HANDLERS["test.picky"] = picky
    try:
        ws = await open_socket(user)
        await ws.send_json_to({"type": "test.picky"})
        reply = await receive_type(ws, "error")
        assert reply["error"]["fields"] == {"n": ARABIC_WHOLE_NUMBER}
        await ws.send_json_to({"type": "resume", "after": -1})
        reply = await receive_type(ws, "error")
        assert reply["error"]["fields"] == {"after": ARABIC_WHOLE_NUMBER}
        await ws.send_json_to({"type": "resume", "chat": 5})  # chat's resumer, in a thread
        reply = await receive_type(ws, "error")
        assert reply["error"]["fields"]["chat"] == (
            "أرسل كائنًا يربط كل معرّف محادثة بآخر رقم تسلسلي وآخر رقم مراجعة اطّلعت عليهما."
        )
        await ws.disconnect()
    finally:
        del HANDLERS["test.picky"]


@pytest.mark.parametrize(
    ("saved", "header", "expected"),
    [
        ("ar", b"en-US,en;q=0.9", "Send a whole number, 0 or more."),
        ("en", b"ar", ARABIC_WHOLE_NUMBER),
        ("ar", b"fr-FR", ARABIC_WHOLE_NUMBER),  # no language we speak: the saved one
    ],
)
async def test_the_handshakes_accept_language_wins_over_the_saved_language(saved, header, expected):
    user = await database_sync_to_async(make_user)(language=saved)
    tokens = await database_sync_to_async(_tokens)(user)
    ws = await _bearer_socket(tokens["access"], (b"accept-language", header))
    await ws.send_json_to({"type": "resume", "after": -1})
    assert (await receive_type(ws, "error"))["error"]["fields"] == {"after": expected}
    await ws.disconnect()


# --- revoked sessions -------------------------------------------------------------------------


async def test_a_logout_closes_the_sockets_of_its_token():
    user = await database_sync_to_async(make_user)()
    tokens = await database_sync_to_async(_tokens)(user)
    sockets = [await _bearer_socket(tokens["access"]), await _ticket_socket(tokens["access"])]

    def logout() -> None:
        r = Client().delete(f"{AUTH}/auth/session", headers=bearer(tokens["access"]))
        assert r.status_code == 401  # logged out

    await database_sync_to_async(logout)()
    for ws in sockets:
        assert await ws.receive_output(timeout=5) == CLOSED_4403
        await ws.disconnect()


async def test_a_password_change_closes_every_socket_of_the_user_once():
    user = await database_sync_to_async(make_user)()
    first, second = [await database_sync_to_async(_tokens)(user) for _ in range(2)]
    sockets = [await _bearer_socket(first["access"]), await _ticket_socket(second["access"])]

    def change() -> None:
        r = post(
            Client(),
            f"{AUTH}/account/password/change",
            {"current_password": PASSWORD, "new_password": "Another-Strong-pw-77"},
            **bearer(second["access"]),
        )
        assert r.status_code == 401  # logged out everywhere

    await database_sync_to_async(change)()
    for ws in sockets:
        assert await ws.receive_output(timeout=5) == CLOSED_4403
        assert await ws.receive_nothing(timeout=0.3)  # told twice (change, logout): one close
        await ws.disconnect()


async def test_a_replayed_refresh_token_closes_the_sockets_of_the_user():
    user = await database_sync_to_async(make_user)()
    tokens = await database_sync_to_async(_tokens)(user)
    ws = await _bearer_socket(tokens["access"])

    def replay() -> None:
        for expected in (200, 400):
            r = post(Client(), f"{AUTH}/tokens/refresh", {"refresh_token": tokens["refresh"]})
            assert r.status_code == expected

    await database_sync_to_async(replay)()
    assert await ws.receive_output(timeout=5) == CLOSED_4403
    await ws.disconnect()


async def test_a_ticket_asked_before_a_logout_opens_nothing_after_it():
    user = await database_sync_to_async(make_user)()
    tokens = await database_sync_to_async(_tokens)(user)
    ticket = await database_sync_to_async(_ticket)(tokens["access"])

    def logout() -> None:
        Client().delete(f"{AUTH}/auth/session", headers=bearer(tokens["access"]))

    await database_sync_to_async(logout)()
    ws = await _connect(f"/ws/v1/?ticket={ticket}")
    assert await ws.receive_output(timeout=5) == CLOSED_4401
    await ws.disconnect()


# --- must change the password ---------------------------------------------------------------


async def test_an_account_that_must_change_its_password_gets_no_socket():
    user = await database_sync_to_async(make_user)(must_change_password=True)
    tokens = await database_sync_to_async(_tokens)(user)
    ws = await _connect("/ws/v1/", [(b"authorization", f"Bearer {tokens['access']}".encode())])
    assert await ws.receive_output(timeout=5) == CLOSED_4403
    await ws.disconnect()

    def ticket_refused() -> None:
        r = post(Client(), "/api/v1/realtime/ticket", **bearer(tokens["access"]))
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "auth.password_change_required"

    await database_sync_to_async(ticket_refused)()


# --- limits ------------------------------------------------------------------------------


async def test_sockets_past_the_per_user_cap_are_closed_4409(settings):
    settings.REALTIME_MAX_SOCKETS_PER_USER = 2
    user, other = [await database_sync_to_async(make_user)() for _ in range(2)]
    tokens = await database_sync_to_async(_tokens)(user)
    first, second = [await _bearer_socket(tokens["access"]) for _ in range(2)]
    third = await _connect("/ws/v1/", [(b"authorization", f"Bearer {tokens['access']}".encode())])
    assert await third.receive_output(timeout=5) == CLOSED_4409
    await third.disconnect()
    others = await open_socket(other)  # someone else's count
    await _still_open(others)
    await _still_open(second)
    await first.disconnect()  # a slot is free again
    again = await _bearer_socket(tokens["access"])
    await _still_open(again)
    for ws in (second, again, others):
        await ws.disconnect()


def test_tickets_are_rate_limited_per_user(api, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "realtime_ticket": "2/m/user"}
    user, other = make_user(), make_user()
    token = login(api, user.email)["access"]
    for _ in range(2):
        assert post(api, "/api/v1/realtime/ticket", **bearer(token)).status_code == 201
    r = post(api, "/api/v1/realtime/ticket", **bearer(token))
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "request.rate_limited"
    assert int(r["Retry-After"]) >= 1
    other_token = login(api, other.email)["access"]
    assert post(api, "/api/v1/realtime/ticket", **bearer(other_token)).status_code == 201


def test_a_ticket_stored_by_the_previous_release_is_refused_not_a_crash():
    from django.core.cache import cache

    from realtime import tickets

    cache.set(tickets._key("old-ticket"), str(make_user().pk), timeout=30)  # a user id alone
    assert tickets.ticket_redeem("old-ticket") is None


# --- metrics -----------------------------------------------------------------------------


def _closes(label: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("telemed_websocket_closes_total", {"code": label}) or 0.0


async def test_a_client_chosen_close_code_is_counted_as_other_not_as_a_series_of_its_own():
    user = await database_sync_to_async(make_user)()
    before_other, before_normal = _closes("other"), _closes("1000")
    for code in (4999, 1000):
        ws = await open_socket(user)
        await ws.send_input({"type": "websocket.disconnect", "code": code})
        await ws.wait(timeout=5)
    assert _closes("4999") == 0.0
    assert _closes("other") == before_other + 1
    assert _closes("1000") == before_normal + 1


def test_every_close_code_the_gateway_sends_has_a_series_of_its_own():
    from realtime import consumers, fanout
    from realtime.metrics import close_code_label

    for code in (
        consumers.CLOSE_UNAUTHENTICATED,
        consumers.CLOSE_FORBIDDEN,
        consumers.CLOSE_TOO_MANY_SOCKETS,
        consumers.CLOSE_FLOOD,
        fanout.CLOSE_SERVICE_RESTART,
    ):
        assert close_code_label(code) == str(code)


async def test_removing_a_staff_members_device_closes_their_sockets():
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.services import totp_devices_delete

    admin, other = [
        await database_sync_to_async(make_user)(role="admin", is_staff=True) for _ in range(2)
    ]
    tokens = await database_sync_to_async(_tokens)(admin)  # passes the second factor
    ws = await _bearer_socket(tokens["access"])

    def remove() -> None:
        totp_devices_delete(actor=other, devices=TOTPDevice.objects.filter(user=admin))

    await database_sync_to_async(remove)()
    assert await ws.receive_output(timeout=5) == CLOSED_4403
    await ws.disconnect()
    headers = [(b"authorization", f"Bearer {tokens['access']}".encode())]
    again = WebsocketCommunicator(application, "/ws/v1/", headers=headers)
    assert (await again.connect())[0]
    assert (await again.receive_output(timeout=5))["code"] == 4401
    await again.disconnect()


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (RuntimeError("a bug of ours"), "server.error"),
        (redis.ConnectionError("Redis away"), "server.unavailable"),
    ],
)
async def test_a_handler_that_fails_answers_an_error_event_and_the_socket_stays_open(
    monkeypatch, failure, code
):
    """A failure other than an application error (a bug, Redis away) is answered as REST
    answers it, and the socket goes on: its task must not die with the handler."""
    from realtime import consumers

    def boom(*, user, content):
        raise failure

    monkeypatch.setitem(consumers.HANDLERS, "test.boom", boom)
    user = await database_sync_to_async(make_user)()
    ws = await open_socket(user)
    try:
        await ws.send_json_to({"type": "test.boom"})
        event = await receive_type(ws, "error")
        assert event["error"]["code"] == code
        await ws.send_json_to({"type": "resume", "after": 0})
        assert (await receive_type(ws, "resume.done"))["data"]["last"] == 0
    finally:
        await ws.disconnect()
