"""A read while a device was away (the other side's, or the user's own on another device)
moves no ``seq`` and no ``rev``: a resume tells it in ``chat.resume.done`` (``reads``, both
markers of each named conversation), or the device would show them stale until the next
live ``chat.read``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async

from chat import consumers, services
from chat.models import Conversation
from tests.chat.test_live import _setup, _socket
from tests.doctors.factories import doctor
from tests.factories import make_user


def _resume(user: Any, chat: Any, **extra: Any) -> list[dict[str, Any]]:
    return consumers.resume(user=user, content={"type": "resume", "chat": chat, **extra})


def _send(user: Any, conversation: Any, text: str) -> None:
    services.message_send(user=user, conversation_id=conversation.pk, text=text, client_id=text)


def test_reads_while_away_come_with_the_resume_of_both_sides(db, conversation, patient, doc):
    cid = str(conversation.pk)
    _send(patient, conversation, "one")
    _send(patient, conversation, "two")
    _send(doc, conversation, "three")
    # The patient's phone saw seq 1..3 and went away; then the doctor read up to 2 and the
    # patient read the reply on the laptop.
    services.read_up_to(user=doc, conversation_id=cid, seq=2)
    services.read_up_to(user=patient, conversation_id=cid, seq=3)

    events = _resume(patient, {cid: [3, 0]})
    assert events == [
        {
            "type": "chat.resume.done",
            "data": {
                "more": False,
                "marks": {},  # no message and no change: nothing else to send
                "reads": {cid: {"read_seq": 3, "other_read_seq": 2}},
            },
        }
    ]
    # The doctor's side, named by a bare seq (the first protocol), and with a cursor.
    done = _resume(doc, {cid: 3}, chat_cursor=None)[-1]["data"]
    assert done["reads"] == {cid: {"read_seq": 2, "other_read_seq": 3}}


def test_reads_name_only_the_viewers_named_conversations(db, conversation, patient, doc):
    """Not the conversations it did not name (their list items carry both markers), nor a
    named one of other people."""
    cid = str(conversation.pk)
    strangers = Conversation.objects.create(patient=patient, doctor=doctor().user)
    others = Conversation.objects.create(patient=make_user(), doctor=doc)
    events = _resume(patient, {cid: [0, 0], str(others.pk): [0, 0]})
    assert events[-1]["data"]["reads"] == {cid: {"read_seq": 0, "other_read_seq": 0}}
    (item,) = [e["data"] for e in events if e["type"] == "chat.conversation"]
    assert item["id"] == str(strangers.pk)
    assert (item["read_seq"], item["other_read_seq"]) == (0, 0)


@pytest.mark.django_db(transaction=True)
async def test_a_reconnecting_device_learns_of_the_reads_it_missed():
    patient, doc, conversation, patient_token, _ = await database_sync_to_async(_setup)()
    cid = str(conversation.pk)

    def meanwhile() -> None:
        _send(patient, conversation, "how long do I take it?")
        services.read_up_to(user=doc, conversation_id=cid, seq=1)  # read while away

    await database_sync_to_async(meanwhile)()
    phone = _socket(patient_token)
    assert (await phone.connect())[0]
    await asyncio.sleep(0.2)
    try:
        await phone.send_json_to(
            {"type": "resume", "after": 0, "chat": {cid: [1, 0]}, "chat_cursor": None}
        )
        while (event := await phone.receive_json_from(timeout=5))["type"] != "chat.resume.done":
            assert event["type"] != "resume.done"
        assert event["data"]["reads"] == {cid: {"read_seq": 0, "other_read_seq": 1}}
    finally:
        await phone.disconnect()
