"""Live delivery through the real socket and the Redis channel layer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from chat import services
from telemed.asgi import application
from tests.chat.conftest import in_care_with
from tests.doctors.factories import doctor
from tests.factories import login, make_user


def _setup() -> tuple[Any, Any, Any, str, str]:
    patient, doc = make_user(), doctor().user
    in_care_with(doc, patient)
    conversation = services.conversation_open(user=patient, other_id=doc.pk)[0]
    return (
        patient,
        doc,
        conversation,
        login(Client(), patient.email)["access"],
        login(Client(), doc.email)["access"],
    )


def _socket(token: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(
        application, "/ws/v1/", headers=[(b"authorization", f"Bearer {token}".encode())]
    )


async def _next_chat_event(ws: WebsocketCommunicator) -> dict[str, Any]:
    """The next ``chat.*`` event (other events, e.g. notifications, are skipped)."""
    while True:
        event = await ws.receive_json_from(timeout=5)
        if event["type"].startswith("chat.") and event["type"] != "chat.unread":
            return event  # type: ignore[no-any-return]


@pytest.mark.django_db(transaction=True)
async def test_both_devices_of_the_patient_and_the_doctor_see_the_reply_and_the_read():
    patient, doc, conversation, patient_token, doc_token = await database_sync_to_async(_setup)()
    phone, laptop, doctor_ws = _socket(patient_token), _socket(patient_token), _socket(doc_token)
    for ws in (phone, laptop, doctor_ws):
        assert (await ws.connect())[0]
    await asyncio.sleep(0.2)  # the sockets join the fan-out registry after accepting
    try:
        ack = await database_sync_to_async(services.message_send)(
            user=doc, conversation_id=conversation.pk, text="Take it twice a day", client_id="r1"
        )
        for ws in (phone, laptop, doctor_ws):
            event = await _next_chat_event(ws)
            assert event == {"type": "chat.message", "data": ack}
        await database_sync_to_async(services.read_up_to)(
            user=patient, conversation_id=conversation.pk, seq=ack["seq"]
        )
        seen = await _next_chat_event(doctor_ws)
        assert seen["type"] == "chat.read"
        assert seen["data"] == {
            "conversation_id": str(conversation.pk),
            "user_id": str(patient.pk),
            "seq": 1,
        }
    finally:
        for ws in (phone, laptop, doctor_ws):
            await ws.disconnect()
