"""Ids and cursors that are not what they claim to be: a JSON number where a conversation id
goes, a cursor that is not UTF-8. Each is answered as an unknown conversation or a bad cursor
(an ``error`` event, the socket open; an error over REST), never a crash."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from accounts.models import Role
from chat import selectors, services
from chat.errors import ConversationNotFound, NotInCare
from core.ids import is_uuid
from core.pagination import InvalidCursor, decode_cursor
from tests.chat.test_live import _setup
from tests.chat.test_socket import _connected, _next_of
from tests.factories import make_user

# str() of it is "-1234...": a hyphen and 32 hex digits, which uuid.UUID takes.
NUMBER_LIKE_A_UUID = -12345678901234567890123456789012
# A lone surrogate: valid JSON ("\ud800"), not UTF-8, so it cannot be hashed.
SURROGATE_CURSOR = "\ud800:x"


def test_only_text_or_uuids_are_ids():
    assert is_uuid(str(uuid.uuid4())) and is_uuid(uuid.uuid4())
    assert not is_uuid(NUMBER_LIKE_A_UUID)
    assert not is_uuid(uuid.uuid4().int)
    assert not is_uuid(None)
    assert not is_uuid("\ud800" * 32)


async def _next_error(ws: WebsocketCommunicator) -> dict[str, Any]:
    """The next event, which must be an ``error`` (presence changes skipped)."""
    event = await ws.receive_json_from(timeout=5)
    while event["type"] == "presence.changed":
        event = await ws.receive_json_from(timeout=5)
    assert event["type"] == "error", event
    return event


@pytest.mark.django_db(transaction=True)
async def test_a_number_as_conversation_id_is_an_unknown_conversation_over_the_socket():
    patient, doc, conversation, patient_token, _ = await database_sync_to_async(_setup)()
    (phone,) = await _connected(patient_token)
    cid = str(conversation.pk)
    unknown = str(uuid.uuid4())
    try:
        for message in (
            {"type": "chat.send", "text": "hi", "client_id": "n1"},
            {"type": "chat.read", "seq": 0},
            {"type": "chat.typing"},
        ):
            # The same answer as for a conversation that does not exist.
            await phone.send_json_to({**message, "conversation_id": unknown})
            expected = (await _next_error(phone))["error"]["code"]
            assert expected == "chat.not_found"
            await phone.send_json_to({**message, "conversation_id": NUMBER_LIKE_A_UUID})
            assert (await _next_error(phone))["error"]["code"] == expected, message
        await phone.send_json_to(
            {"type": "chat.send", "conversation_id": cid, "text": "still here", "client_id": "ok"}
        )
        assert (await _next_of(phone, "chat.ack"))["data"]["text"] == "still here"
    finally:
        await phone.disconnect()


def test_a_number_as_an_id_names_nothing_in_the_services(db, conversation, patient, doc):
    with pytest.raises(ConversationNotFound):
        selectors.conversation_for(viewer=patient, conversation_id=NUMBER_LIKE_A_UUID)
    with pytest.raises(ConversationNotFound):
        services.read_up_to(user=patient, conversation_id=NUMBER_LIKE_A_UUID, seq=0)
    with pytest.raises(NotInCare):
        services.conversation_open(user=patient, other_id=NUMBER_LIKE_A_UUID)
    with pytest.raises(ConversationNotFound):
        services.break_glass_read(
            staff=make_user(role=Role.ADMIN),
            conversation_id=NUMBER_LIKE_A_UUID,
            reason="an emergency, truly",
        )


def test_a_cursor_that_is_not_utf8_or_not_text_is_an_invalid_cursor():
    for cursor in (SURROGATE_CURSOR, "\ud800", "x:\udfff", 5, None, ["x"]):
        with pytest.raises(InvalidCursor):
            decode_cursor(cursor, scope="chat.messages")  # type: ignore[arg-type]


def test_rest_paging_refuses_a_surrogate_cursor_as_a_forged_one(db, conversation, patient):
    """The REST lists that page with signed cursors (HTTP itself cannot carry a lone
    surrogate: the selectors are where another caller would bring one)."""
    for cursor in ("forged", SURROGATE_CURSOR):
        with pytest.raises(InvalidCursor):
            selectors.conversation_list(viewer=patient, cursor=cursor, limit=20)
        with pytest.raises(InvalidCursor):
            selectors.message_page(conversation=conversation, cursor=cursor)


@pytest.mark.django_db(transaction=True)
async def test_a_surrogate_resume_cursor_is_an_invalid_cursor_and_the_socket_stays_open():
    patient, doc, conversation, patient_token, _ = await database_sync_to_async(_setup)()
    (phone,) = await _connected(patient_token)
    try:
        # send_json_to escapes it: the frame is ASCII, "\\ud800:x" in JSON.
        await phone.send_json_to(
            {"type": "resume", "after": 0, "chat": {}, "chat_cursor": SURROGATE_CURSOR}
        )
        error = await _next_error(phone)
        assert error["error"]["code"] == "request.invalid_cursor"
        await phone.send_json_to({"type": "resume", "after": 0, "chat": {}, "chat_cursor": None})
        done = await _next_of(phone, "chat.resume.done")
        assert done["data"]["cursor"] is None
    finally:
        await phone.disconnect()
