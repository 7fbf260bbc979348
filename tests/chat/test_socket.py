"""Chat over the socket: the gateway's registered chat.* messages call the same services."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.test import Client

from chat.models import Message
from realtime.unread import _key
from tests.chat.test_live import _next_chat_event, _setup, _socket
from tests.factories import bearer


async def _connected(*tokens: str) -> list[WebsocketCommunicator]:
    sockets = [_socket(token) for token in tokens]
    for ws in sockets:
        assert (await ws.connect())[0]
    await asyncio.sleep(0.2)  # the sockets join the fan-out registry after accepting
    return sockets


async def _next_of(ws: WebsocketCommunicator, kind: str) -> dict[str, Any]:
    """The next event of this type (the sender's own devices also get chat.message)."""
    while True:
        event = await _next_chat_event(ws)
        if event["type"] == kind:
            return event


async def _drain(ws: WebsocketCommunicator, quiet: float = 0.5) -> list[str]:
    """The types of whatever arrives until the socket is quiet (presence etc. included)."""
    types = []
    while not await ws.receive_nothing(timeout=quiet):
        types.append((await ws.receive_json_from())["type"])
    return types


def _unread(token: str) -> dict[str, Any]:
    r = Client().get("/api/v1/notifications/unread", headers=bearer(token))
    assert r.status_code == 200, r.content
    return r.json()["counts"]  # type: ignore[no-any-return]


@pytest.mark.django_db(transaction=True)
async def test_send_ack_duplicate_read_and_the_unread_counter_over_the_socket():
    patient, doc, conversation, patient_token, doc_token = await database_sync_to_async(_setup)()
    phone, doctor_ws = await _connected(patient_token, doc_token)
    cid = str(conversation.pk)
    try:
        assert (await database_sync_to_async(_unread)(doc_token))["chat"] == 0  # now cached
        await phone.send_json_to(
            {
                "type": "chat.send",
                "conversation_id": cid,
                "text": "Fever since Monday",
                "client_id": "c-1",
            }
        )
        ack = await _next_of(phone, "chat.ack")
        assert ack["data"]["seq"] == 1
        assert ack["data"]["text"] == "Fever since Monday"
        pushed = await _next_chat_event(doctor_ws)
        assert pushed == {"type": "chat.message", "data": ack["data"]}
        # the same client id again: the same acknowledgement, one message stored
        await phone.send_json_to(
            {
                "type": "chat.send",
                "conversation_id": cid,
                "text": "Fever since Monday",
                "client_id": "c-1",
            }
        )
        again = await _next_of(phone, "chat.ack")
        assert again == ack
        assert (
            await database_sync_to_async(Message.objects.filter(conversation=conversation).count)()
            == 1
        )
        # the doctor's cached unread counter moved with the message
        assert (await database_sync_to_async(_unread)(doc_token))["chat"] == 1
        await doctor_ws.send_json_to({"type": "chat.read", "conversation_id": cid, "seq": 1})
        read_ack = await _next_of(doctor_ws, "chat.read.ack")
        assert read_ack["data"]["unread"] == 0
        seen = await _next_of(phone, "chat.read")
        assert seen["data"]["seq"] == 1
        assert (await database_sync_to_async(_unread)(doc_token))["chat"] == 0
        # Redis lost the counter: it is rebuilt from the database
        await phone.send_json_to(
            {"type": "chat.send", "conversation_id": cid, "text": "And a cough", "client_id": "c-2"}
        )
        await _next_of(phone, "chat.ack")
        await database_sync_to_async(cache.delete)(_key("chat", doc.pk))
        assert (await database_sync_to_async(_unread)(doc_token))["chat"] == 1
    finally:
        for ws in (phone, doctor_ws):
            await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_bad_chat_messages_are_error_events_and_the_socket_stays_open():
    patient, doc, conversation, patient_token, _ = await database_sync_to_async(_setup)()
    (phone,) = await _connected(patient_token)
    cid = str(conversation.pk)
    bad = [
        ({"type": "chat.send", "conversation_id": cid, "text": "   ", "client_id": "x"}, "chat."),
        (
            {"type": "chat.send", "conversation_id": cid, "text": "a" * 4001, "client_id": "y"},
            "chat.",
        ),
        ({"type": "chat.send", "conversation_id": "nope", "text": "hi", "client_id": "z"}, "chat."),
        ({"type": "chat.read", "conversation_id": cid, "seq": 99}, "chat."),
        ({"type": "chat.read", "conversation_id": cid, "seq": "1"}, "request."),
        (
            {"type": "chat.typing", "conversation_id": "00000000-0000-0000-0000-000000000000"},
            "chat.",
        ),
    ]
    try:
        for message, prefix in bad:
            await phone.send_json_to(message)
            event = await phone.receive_json_from(timeout=5)
            assert event["type"] == "error", (message, event)
            assert event["error"]["code"].startswith(prefix), (message, event)
        assert await database_sync_to_async(Message.objects.count)() == 0
        await phone.send_json_to(
            {"type": "chat.send", "conversation_id": cid, "text": "still here", "client_id": "ok"}
        )
        assert (await _next_of(phone, "chat.ack"))["data"]["text"] == "still here"
    finally:
        await phone.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_typing_reaches_the_other_side_throttled_and_is_not_stored():
    patient, doc, conversation, patient_token, doc_token = await database_sync_to_async(_setup)()
    phone, doctor_ws = await _connected(patient_token, doc_token)
    try:
        for _ in range(3):  # a burst: one event
            await phone.send_json_to(
                {"type": "chat.typing", "conversation_id": str(conversation.pk)}
            )
        event = await _next_chat_event(doctor_ws)
        assert event == {
            "type": "chat.typing",
            "data": {"conversation_id": str(conversation.pk), "user_id": str(patient.pk)},
        }
        assert "chat.typing" not in await _drain(doctor_ws)  # the burst was one event
        assert "chat.typing" not in await _drain(phone)  # the typist is not told
        assert await database_sync_to_async(Message.objects.count)() == 0
    finally:
        for ws in (phone, doctor_ws):
            await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_reconnect_and_resume_returns_exactly_the_missed_messages_in_order():
    from chat import services

    patient, doc, conversation, patient_token, doc_token = await database_sync_to_async(_setup)()
    cid = str(conversation.pk)
    (phone,) = await _connected(patient_token)
    await phone.send_json_to(
        {"type": "chat.send", "conversation_id": cid, "text": "hello", "client_id": "p1"}
    )
    assert (await _next_of(phone, "chat.ack"))["data"]["seq"] == 1
    await phone.disconnect()
    missed = []
    for n in range(3):  # the doctor writes while the patient is away
        ack = await database_sync_to_async(services.message_send)(
            user=doc, conversation_id=cid, text=f"reply {n}", client_id=f"d{n}"
        )
        missed.append(ack)
    (phone,) = await _connected(patient_token)
    try:
        after = await database_sync_to_async(_last_event_id)(patient)
        await phone.send_json_to({"type": "resume", "after": after, "chat": {cid: 1}})
        got = []
        while True:
            event = await phone.receive_json_from(timeout=5)
            if event["type"] == "resume.done":
                break
            got.append(event)
        chat = [e for e in got if e["type"].startswith("chat.")]
        assert chat == [{"type": "chat.message", "data": m} for m in missed] + [
            {
                "type": "chat.resume.done",
                "data": {
                    "more": False,
                    "marks": {cid: [4, 0]},
                    "reads": {cid: {"read_seq": 0, "other_read_seq": 0}},
                },
            }
        ]
        # a bad map is an error event; the socket stays open
        await phone.send_json_to({"type": "resume", "after": after, "chat": {"x": "1"}})
        event = await phone.receive_json_from(timeout=5)
        assert event["type"] == "error" and event["error"]["fields"].keys() == {"chat"}
        await phone.send_json_to({"type": "resume", "after": after, "chat": {cid: 4}})
        tail = [await phone.receive_json_from(timeout=5) for _ in range(2)]
        assert [e["type"] for e in tail] == ["chat.resume.done", "resume.done"]
    finally:
        await phone.disconnect()


def _last_event_id(user: Any) -> int:
    from realtime.models import Notification

    return (
        Notification.objects.filter(user=user)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
        or 0
    )


@pytest.mark.django_db(transaction=True)
async def test_concurrent_senders_pushes_arrive_in_seq_order(settings):
    """8 threads x 10 messages into one conversation: every socket sees seq 1..80 in order
    (commits are in seq order; the pushes after them must not overtake each other)."""
    from chat import services
    from tests.threads import run_together

    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "chat_send": "10000/m/user"}
    patient, doc, conversation, patient_token, doc_token = await database_sync_to_async(_setup)()
    phone, doctor_ws = await _connected(patient_token, doc_token)

    def send_all() -> list[BaseException]:
        def sender(n: int) -> None:
            for i in range(10):
                services.message_send(
                    user=patient if n % 2 else doc,
                    conversation_id=conversation.pk,
                    text=f"{n}-{i}",
                    client_id=f"{n}-{i}",
                )

        return run_together(8, sender)[1]

    try:
        assert await database_sync_to_async(send_all)() == []
        for ws in (phone, doctor_ws):
            seqs: list[int] = []
            while len(seqs) < 80:
                event = await _next_chat_event(ws)
                if event["type"] == "chat.message":
                    seqs.append(event["data"]["seq"])
            assert seqs == list(range(1, 81))
    finally:
        for ws in (phone, doctor_ws):
            await ws.disconnect()
