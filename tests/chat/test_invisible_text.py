"""A message that shows nothing is empty: text of invisible characters alone (zero-width
spaces, direction marks, the byte-order mark, combining marks with nothing to mark) is
refused as no text at all, over REST and the socket, when sent and when edited; direction
marks inside visible Arabic or English text are kept. A client id may not be invisible. A
socket ``chat.send`` without ``text`` is a message of attachments alone, as over REST."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async

from chat import consumers
from chat.errors import EmptyText
from core.errors import InvalidRequest
from tests.chat.conftest import send, url
from tests.chat.test_attachments import _record
from tests.chat.test_live import _next_chat_event, _setup, _socket

INVISIBLE = [
    "\u200b",  # zero-width space
    "\u202e\u200f",  # right-to-left override, right-to-left mark
    "\u2060",  # word joiner
    "\ufeff",  # byte-order mark
    " \u200b\n\u200d\t",  # whitespace and zero-width joiner
    "\u0651\u064e",  # Arabic shadda and fatha, marking no letter
    "\u20dd",  # combining enclosing circle
]
VISIBLE = [
    "\u200fمرحبا دكتور\u200f",
    "الجرعة \u200e500mg\u200e مرتين يومياً",
    "OK\u200e",
    "شُكْرًا",
]


@pytest.mark.parametrize("text", INVISIBLE)
def test_invisible_text_is_empty_over_rest_and_the_socket(
    api, conversation, patient, patient_h, text
):
    r = send(api, patient_h, conversation, text)
    assert r.status_code == 422, r.content
    assert r.json()["error"]["code"] == "chat.empty_text"
    content = {"conversation_id": str(conversation.pk), "text": text, "client_id": "c-1"}
    with pytest.raises(EmptyText):
        consumers.send(user=patient, content=content)
    assert conversation.messages.count() == 0


@pytest.mark.parametrize("text", VISIBLE)
def test_visible_text_with_direction_marks_is_sent_as_written(
    api, conversation, patient, patient_h, text
):
    r = send(api, patient_h, conversation, text)
    assert r.status_code == 201, r.content
    assert r.json()["text"] == text
    content = {"conversation_id": str(conversation.pk), "text": text, "client_id": "c-2"}
    assert consumers.send(user=patient, content=content)["data"]["text"] == text


@pytest.mark.parametrize("text", INVISIBLE)
def test_an_edit_to_invisible_text_is_refused(api, conversation, patient_h, text):
    assert send(api, patient_h, conversation, "Fever since Monday").status_code == 201
    r = api.patch(
        url(conversation, "/messages/1"),
        {"text": text},
        content_type="application/json",
        headers=patient_h,
    )
    assert r.status_code == 422, r.content
    assert r.json()["error"]["code"] == "chat.empty_text"
    r = api.patch(
        url(conversation, "/messages/1"),
        {"text": VISIBLE[0]},
        content_type="application/json",
        headers=patient_h,
    )
    assert r.status_code == 200 and r.json()["text"] == VISIBLE[0]


@pytest.mark.parametrize("client_id", ["\u200b", "\ufeff", "\u202e", "c\u200b1", "\u2060 ", "  "])
def test_an_invisible_client_id_is_refused_over_rest_and_the_socket(
    api, conversation, patient, patient_h, client_id
):
    r = send(api, patient_h, conversation, "hello", client_id=client_id)
    assert r.status_code == 422, r.content
    assert r.json()["error"]["code"] == "request.invalid"
    assert "client_id" in r.json()["error"]["fields"]
    content = {"conversation_id": str(conversation.pk), "text": "hello", "client_id": client_id}
    with pytest.raises(InvalidRequest) as refused:
        consumers.send(user=patient, content=content)
    assert refused.value.fields.keys() == {"client_id"}
    assert conversation.messages.count() == 0


def test_a_socket_send_without_text_is_a_message_of_attachments_alone(conversation, patient):
    record = _record(patient)
    content: dict[str, Any] = {"conversation_id": str(conversation.pk), "client_id": "f-1"}
    with pytest.raises(EmptyText):  # no text and nothing attached: empty, not malformed
        consumers.send(user=patient, content=content)
    ack = consumers.send(user=patient, content={**content, "attachments": [str(record.pk)]})
    assert ack["type"] == "chat.ack"
    assert (ack["data"]["text"], ack["data"]["attachments"]) == ("", [str(record.pk)])
    with pytest.raises(InvalidRequest):  # null is no text (REST refuses it too)
        consumers.send(user=patient, content={**content, "client_id": "f-2", "text": None})


@pytest.mark.django_db(transaction=True)
async def test_over_a_live_socket_attachments_alone_are_sent_and_invisible_text_is_empty():
    patient, _, conversation, patient_token, _ = await database_sync_to_async(_setup)()
    record = await database_sync_to_async(_record)(patient)
    ws = _socket(patient_token)
    assert (await ws.connect())[0]
    await asyncio.sleep(0.2)  # the socket joins the fan-out registry after accepting
    cid = str(conversation.pk)
    try:
        await ws.send_json_to(
            {"type": "chat.send", "conversation_id": cid, "client_id": "w-1", "text": "\u200b"}
        )
        while (event := await ws.receive_json_from(timeout=5))["type"] != "error":
            pass
        assert event["error"]["code"] == "chat.empty_text"
        await ws.send_json_to(
            {
                "type": "chat.send",
                "conversation_id": cid,
                "client_id": "w-2",
                "attachments": [str(record.pk)],
            }
        )
        while (event := await _next_chat_event(ws))["type"] != "chat.ack":
            pass
        assert event["data"]["seq"] == 1 and event["data"]["text"] == ""
        assert event["data"]["attachments"] == [str(record.pk)]
    finally:
        await ws.disconnect()
