"""A chat resume replays what changed while a device was away, not only new messages: the
edits, deletions, closes and reopens of conversations it had seen (by ``rev``), and the
conversations it did not know of."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async

from chat import consumers, services
from chat.models import Conversation
from realtime import presence
from realtime.models import Notification
from tests.chat.conftest import in_care_with
from tests.chat.test_live import _setup, _socket
from tests.doctors.factories import doctor
from tests.factories import make_user


def _resume(user: Any, chat: Any) -> list[dict[str, Any]]:
    return consumers.resume(user=user, content={"type": "resume", "chat": chat})


def _send(user: Any, conversation: Any, text: str) -> dict[str, Any]:
    return services.message_send(
        user=user, conversation_id=conversation.pk, text=text, client_id=text
    )


def test_edits_deletions_and_a_close_of_seen_messages_are_replayed(db, patient, doc):
    in_care_with(doc, patient)
    conversation = services.conversation_open(user=patient, other_id=doc.pk)[0]
    cid = str(conversation.pk)
    for text in ("one", "two", "three"):
        _send(doc, conversation, text)
    # The patient's device saw seq 1..3, then went away; meanwhile:
    edited = services.message_edit(user=doc, conversation_id=cid, seq=1, text="one, edited")
    deleted = services.message_delete(user=doc, conversation_id=cid, seq=2)
    services.conversation_close(user=doc, conversation_id=cid)
    assert (edited["rev"], deleted["rev"]) == (1, 2)
    reads = {cid: {"read_seq": 0, "other_read_seq": 0}}

    events = _resume(patient, {cid: [3, 0]})
    assert events == [
        {"type": "chat.closed", "data": {"conversation_id": cid, "rev": 3}},
        {"type": "chat.message", "data": edited},
        {"type": "chat.message", "data": deleted},
        {
            "type": "chat.resume.done",
            "data": {"more": False, "marks": {cid: [3, 3]}, "reads": reads},
        },
    ]
    assert deleted["deleted_at"] and deleted["text"] == ""
    # A bare seq (the first protocol's, which knows no rev) replays no earlier change, only
    # the state (such a client learns of a close only live).
    assert _resume(patient, {cid: 3}) == [
        {"type": "chat.closed", "data": {"conversation_id": cid, "rev": 3}},
        {
            "type": "chat.resume.done",
            "data": {"more": False, "marks": {cid: [3, 3]}, "reads": reads},
        },
    ]

    # Caught up: nothing more; a reopen then comes alone.
    assert _resume(patient, {cid: [3, 3]}) == [
        {"type": "chat.resume.done", "data": {"more": False, "marks": {}, "reads": reads}}
    ]
    services.conversation_reopen(user=doc, conversation_id=cid)
    assert _resume(patient, {cid: [3, 3]}) == [
        {"type": "chat.reopened", "data": {"conversation_id": cid, "rev": 4}},
        {
            "type": "chat.resume.done",
            "data": {"more": False, "marks": {cid: [3, 4]}, "reads": reads},
        },
    ]
    conversation.refresh_from_db()
    assert (conversation.rev, conversation.state_rev, conversation.last_seq) == (4, 4, 3)


def test_a_cut_resume_goes_on_from_its_marks_and_loses_nothing(db, patient, doc, settings):
    settings.REALTIME_RESUME_LIMIT = 2
    in_care_with(doc, patient)
    conversation = services.conversation_open(user=patient, other_id=doc.pk)[0]
    cid = str(conversation.pk)
    for n in range(4):
        _send(doc, conversation, f"m{n}")
    for seq in (3, 1, 2):  # changes of seen messages, out of seq order
        services.message_edit(user=doc, conversation_id=cid, seq=seq, text=f"e{seq}")
    for n in range(4, 7):
        _send(doc, conversation, f"m{n}")
    marks: dict[str, Any] = {cid: [4, 0]}
    got: list[tuple[int, int]] = []
    for _ in range(10):
        events = _resume(patient, marks)
        done = events[-1]
        got += [(e["data"]["seq"], e["data"]["rev"]) for e in events[:-1]]
        assert len(events) - 1 <= 2
        marks = {**marks, **done["data"]["marks"]}
        if not done["data"]["more"]:
            break
    # the changes in rev order, then the new messages in seq order; each once
    assert got == [(3, 1), (1, 2), (2, 3), (5, 0), (6, 0), (7, 0)]
    assert marks == {cid: [7, 3]}


def test_conversations_the_client_did_not_name_come_as_list_items(db, patient, doc):
    in_care_with(doc, patient)
    known = services.conversation_open(user=patient, other_id=doc.pk)[0]
    other_doc = doctor().user
    in_care_with(other_doc, patient)
    new = services.conversation_open(user=other_doc, other_id=patient.pk)[0]
    _send(other_doc, new, "first words")
    events = _resume(patient, {str(known.pk): [0, 0]})
    assert [e["type"] for e in events] == ["chat.conversation", "chat.resume.done"]
    item = events[0]["data"]
    assert item["id"] == str(new.pk) and item["last_seq"] == 1 and item["rev"] == 0
    assert item["last_message"]["text"] == "first words" and item["unread"] == 1
    assert item["doctor"]["id"] == str(other_doc.pk)
    # Without a chat part, nothing of chat.
    assert consumers.resume(user=patient, content={"type": "resume"}) == []


def test_new_conversations_are_capped(db, patient, monkeypatch):
    monkeypatch.setattr(consumers, "MAX_NEW_CONVERSATIONS", 2)
    for _ in range(3):
        Conversation.objects.create(patient=patient, doctor=doctor().user)
    events = consumers.resume(
        user=patient, content={"type": "resume", "chat": {}, "chat_cursor": None}
    )
    assert [e["type"] for e in events] == ["chat.conversation"] * 2 + ["chat.resume.done"]
    assert events[-1]["data"]["more"] is True and events[-1]["data"]["cursor"]
    # Without chat_cursor (the earlier protocol) the same page, and no cursor: that client
    # moves on by naming them (tests/chat/test_resume_paging.py).
    events = _resume(patient, {})
    assert [e["type"] for e in events] == ["chat.conversation"] * 2 + ["chat.resume.done"]
    assert events[-1]["data"] == {"more": True, "marks": {}, "reads": {}}
    assert Conversation.objects.filter(patient=patient).count() == 3


def test_edits_deletions_and_state_changes_take_the_push_turn(db, patient, doc, monkeypatch):
    """An edit then a deletion (or a close) of one conversation are pushed in ``rev`` order:
    each takes the conversation's push turn, as a send does."""
    in_care_with(doc, patient)
    conversation = services.conversation_open(user=patient, other_id=doc.pk)[0]
    _send(doc, conversation, "one")
    turns: list[str] = []
    real = services._hold_push_order

    def hold(conversation_id: Any):
        turns.append(str(conversation_id))
        return real(conversation_id)

    monkeypatch.setattr(services, "_hold_push_order", hold)
    cid = str(conversation.pk)
    services.message_edit(user=doc, conversation_id=cid, seq=1, text="edited")
    services.message_delete(user=doc, conversation_id=cid, seq=1)
    services.conversation_close(user=doc, conversation_id=cid)
    services.conversation_reopen(user=doc, conversation_id=cid)
    assert turns == [cid] * 4


@pytest.mark.django_db(transaction=True)
async def test_a_message_in_a_new_conversation_reaches_a_device_whose_presence_was_stale():
    """The review's reproduction: presence says online (a dead device), so no notification
    is stored; the new conversation is not among the client's marks."""

    def setup() -> tuple[Any, Any, str]:
        from tests.factories import login

        patient, doc = make_user(), doctor().user
        in_care_with(doc, patient)
        presence.heartbeat(user_id=str(patient.pk), device="dead")
        conversation = services.conversation_open(user=doc, other_id=patient.pk)[0]
        _send(doc, conversation, "Your results are in")
        from django.test import Client

        return patient, conversation, login(Client(), patient.email)["access"]

    patient, conversation, token = await database_sync_to_async(setup)()
    assert not await database_sync_to_async(
        Notification.objects.filter(user=patient, kind="chat.unread").exists
    )()
    ws = _socket(token)
    assert (await ws.connect())[0]
    await asyncio.sleep(0.2)
    try:
        await ws.send_json_to({"type": "resume", "after": 0, "chat": {}})
        got = []
        while True:
            event = await ws.receive_json_from(timeout=5)
            if event["type"] == "resume.done":
                break
            got.append(event)
        items = [e["data"] for e in got if e["type"] == "chat.conversation"]
        assert [i["id"] for i in items] == [str(conversation.pk)]
        assert items[0]["last_message"]["text"] == "Your results are in"
    finally:
        await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_bad_chat_part_answers_an_error_and_replays_nothing():
    """Refused before the stored events are sent: otherwise the client got them and then
    an error, and never ``resume.done``."""
    patient, doc, conversation, patient_token, _ = await database_sync_to_async(_setup)()

    def stored() -> None:  # a stored event for the patient, away (no presence)
        _send(doc, conversation, "are you there?")
        assert Notification.objects.filter(user=patient).exists()

    await database_sync_to_async(stored)()
    ws = _socket(patient_token)
    assert (await ws.connect())[0]
    await asyncio.sleep(0.2)
    try:
        await ws.send_json_to({"type": "resume", "after": 0, "chat": {"x": 1}})
        event = await ws.receive_json_from(timeout=5)
        while event["type"] == "presence.changed":
            event = await ws.receive_json_from(timeout=5)
        assert event["type"] == "error" and event["error"]["fields"].keys() == {"chat"}
        assert await ws.receive_nothing(timeout=0.5)
    finally:
        await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_rate_limited_send_over_the_socket_says_when_to_retry(settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "chat_send": "1/m/user"}
    patient, doc, conversation, patient_token, _ = await database_sync_to_async(_setup)()
    ws = _socket(patient_token)
    assert (await ws.connect())[0]
    await asyncio.sleep(0.2)
    cid = str(conversation.pk)
    try:
        for n in range(2):
            await ws.send_json_to(
                {"type": "chat.send", "conversation_id": cid, "text": "hi", "client_id": f"c{n}"}
            )
        while True:
            event = await ws.receive_json_from(timeout=5)
            if event["type"] == "error":
                break
        assert event["error"]["code"] == "chat.rate_limited"
        assert isinstance(event["retry_after"], int) and 1 <= event["retry_after"] <= 120
    finally:
        await ws.disconnect()


def test_a_mark_past_the_conversation_is_answered_with_its_own(db, patient, doc):
    """A client whose marks passed the conversation (its bug, or a database restored from a
    backup) is told the conversation's marks: kept, its own would skip the messages that
    get those seqs next."""
    in_care_with(doc, patient)
    conversation = services.conversation_open(user=patient, other_id=doc.pk)[0]
    cid = str(conversation.pk)
    _send(doc, conversation, "one")
    reads = {cid: {"read_seq": 0, "other_read_seq": 0}}
    for mark in ([9, 0], [1, 7], 9):
        assert _resume(patient, {cid: mark}) == [
            {
                "type": "chat.resume.done",
                "data": {"more": False, "marks": {cid: [1, 0]}, "reads": reads},
            }
        ]
    # Corrected, the client gets the next message.
    _send(doc, conversation, "two")
    events = _resume(patient, {cid: [1, 0]})
    assert [e["data"].get("text") for e in events[:-1]] == ["two"]
