"""Chat against hostile or broken input and a missing Redis: text that cannot be stored,
client ids the database refuses, typing once care has ended, and Redis going away (pushes,
presence, counters and the send quota only save work: the database answers without them)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.utils import timezone, translation

from audit.models import AuditEvent
from bookings.models import Appointment
from chat import selectors, services
from chat.errors import NotInCare
from chat.models import Message
from core.errors import ApplicationError
from realtime.models import Notification
from realtime.unread import unread_counts
from tests.chat.conftest import send, url
from tests.chat.test_live import _next_chat_event, _setup, _socket
from tests.factories import make_user
from tests.records.conftest import headers_for

ARABIC = {"Accept-Language": "ar"}
BAD_TEXT = "Remove the characters that cannot be stored from this text."
BAD_CLIENT_ID = "The client id may hold only printable characters."


def _arabic(msgid: str) -> str:
    with translation.override("ar"):
        found = translation.gettext(msgid)
    assert found != msgid  # really translated
    return found


# --- Text that cannot be stored -------------------------------------------------------


def test_a_lone_surrogate_in_a_sent_message_is_a_translated_422(api, conversation, patient_h):
    r = send(api, {**patient_h, **ARABIC}, conversation, "hi \ud800")
    assert r.status_code == 422, r.content
    assert r.json()["error"]["code"] == "request.invalid"
    assert r.json()["error"]["fields"] == {"text": _arabic(BAD_TEXT)}
    assert not Message.objects.exists()


def test_a_lone_surrogate_in_an_edit_is_a_422_and_the_message_is_unchanged(
    api, conversation, patient_h
):
    assert send(api, patient_h, conversation, "fine").status_code == 201
    r = api.patch(
        url(conversation, "/messages/1"),
        {"text": "not \udfff fine"},
        "application/json",
        headers=patient_h,
    )
    assert r.status_code == 422, r.content
    assert r.json()["error"]["fields"] == {"text": BAD_TEXT}
    assert Message.objects.get().text == "fine"


@pytest.mark.parametrize("bad", ["\ud800", "\x00"])
def test_a_break_glass_reason_that_cannot_be_stored_is_a_422_and_not_audited(conversation, bad):
    """REST refuses both at its edge; the service, which writes the reason into the audit
    trail, refuses them whoever calls it."""
    from accounts.models import Role

    with pytest.raises(ApplicationError) as refused:
        services.break_glass_read(
            staff=make_user(role=Role.ADMIN),
            conversation_id=conversation.pk,
            reason=f"Harassment reported {bad} ticket 4471",
        )
    assert refused.value.status == 422 and refused.value.fields == {"reason": BAD_TEXT}
    assert not AuditEvent.objects.filter(action="chat.break_glass_read").exists()


# --- Client ids the database refuses --------------------------------------------------


@pytest.mark.parametrize("client_id", ["a\x00b", "line\nbreak", "\x7f", "x\ud800", "\udc00"])
def test_a_client_id_with_nul_control_or_surrogate_characters_is_refused(
    conversation, patient, client_id
):
    with pytest.raises(ApplicationError) as refused:
        services.message_send(
            user=patient, conversation_id=conversation.pk, text="hi", client_id=client_id
        )
    assert refused.value.code == "request.invalid" and refused.value.status == 422
    assert refused.value.fields == {"client_id": BAD_CLIENT_ID}
    assert not Message.objects.exists()


def test_a_control_character_in_a_client_id_over_rest_is_a_translated_422(
    api, conversation, patient_h
):
    r = send(api, {**patient_h, **ARABIC}, conversation, "hi", client_id="a\x01b")
    assert r.status_code == 422, r.content
    assert r.json()["error"]["fields"] == {"client_id": _arabic(BAD_CLIENT_ID)}


@pytest.mark.django_db(transaction=True)
async def test_bad_text_and_client_ids_are_error_events_and_the_socket_stays_open():
    patient, doc, conversation, patient_token, _ = await database_sync_to_async(_setup)()
    phone = _socket(patient_token)
    assert (await phone.connect())[0]
    await asyncio.sleep(0.2)  # the socket joins the fan-out registry after accepting
    cid = str(conversation.pk)
    bad = [
        ({"text": "hi \ud800", "client_id": "s1"}, "text"),
        ({"text": "hi \x00", "client_id": "s2"}, "text"),
        ({"text": "hi", "client_id": "a\x00b"}, "client_id"),
        ({"text": "hi", "client_id": "\udc00"}, "client_id"),
    ]
    try:
        for fields, field in bad:
            await phone.send_json_to({"type": "chat.send", "conversation_id": cid, **fields})
            event = await phone.receive_json_from(timeout=5)
            assert event["type"] == "error", event
            assert event["error"]["code"] == "request.invalid"
            assert list(event["error"]["fields"]) == [field]
        await phone.send_json_to(
            {"type": "chat.send", "conversation_id": cid, "text": "still here", "client_id": "ok"}
        )
        while (event := await _next_chat_event(phone))["type"] != "chat.ack":
            pass
        assert event["data"]["text"] == "still here"
        assert await database_sync_to_async(Message.objects.count)() == 1
    finally:
        await phone.disconnect()


# --- Care ended -----------------------------------------------------------------------


def _end_care(settings: Any) -> None:
    settings.CARE_RELATIONSHIP_DAYS = 0
    Appointment.objects.update(
        start=timezone.now() - timedelta(days=3), end=timezone.now() - timedelta(days=3)
    )


def test_typing_is_refused_once_care_has_ended(
    conversation, doc, settings, events, django_capture_on_commit_callbacks
):
    _end_care(settings)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(NotInCare):
        services.typing(user=doc, conversation_id=conversation.pk)
    assert events == []


def test_typing_in_care_still_reaches_the_other_side(
    conversation, patient, doc, events, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.typing(user=doc, conversation_id=conversation.pk)
    assert [ids for ids, _ in events] == [[str(patient.pk)]]


def test_after_care_a_read_moves_the_marker_but_tells_only_the_readers_devices(
    api, conversation, patient, doc_h, settings, events, django_capture_on_commit_callbacks
):
    send(api, doc_h, conversation, "last words")
    events.clear()
    _end_care(settings)
    with django_capture_on_commit_callbacks(execute=True):
        answer = services.read_up_to(user=patient, conversation_id=conversation.pk, seq=1)
    assert answer["seq"] == 1 and answer["unread"] == 0
    assert [(ids, event["type"]) for ids, event in events] == [([str(patient.pk)], "chat.read")]


# --- Redis away -----------------------------------------------------------------------

DEAD = "redis://127.0.0.1:1/0"


def _point_redis_at_nothing(settings: Any) -> None:
    """The cache, presence and the channel layer point at a port where nothing listens."""
    settings.REDIS_URL = DEAD
    settings.CACHES = {
        "default": {
            "BACKEND": "core.cache.SharedClientRedisCache",
            "LOCATION": DEAD,
            "KEY_PREFIX": "dead",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": DEAD}], "prefix": "dead"},
        }
    }


@pytest.fixture
def redis_down(settings: Any) -> None:
    _point_redis_at_nothing(settings)


def test_with_redis_down_a_send_commits_and_the_lists_answer_from_the_database(
    conversation, patient, doc, redis_down, django_capture_on_commit_callbacks
):
    # Authentication is not chat's (its cache is another's to degrade): the services are
    # what the endpoints call.
    with django_capture_on_commit_callbacks(execute=True):
        ack = services.message_send(
            user=doc, conversation_id=conversation.pk, text="still works", client_id="r1"
        )
        services.message_send(
            user=doc, conversation_id=conversation.pk, text="and again", client_id="r2"
        )
    assert ack["seq"] == 1
    assert [m.text for m in Message.objects.order_by("seq")] == ["still works", "and again"]
    # the patient had no socket Redis could vouch for: told by a notification
    assert Notification.objects.filter(user=patient, kind="chat.unread").count() == 1

    items, _ = selectors.conversation_list(viewer=patient, cursor=None, limit=20)
    assert [(c["unread"], c["other_online"]) for c in items] == [(2, None)]
    assert unread_counts(user_id=patient.pk)["chat"] == 2

    with django_capture_on_commit_callbacks(execute=True):
        services.typing(user=doc, conversation_id=conversation.pk)  # dropped, not an error
        assert services.read_up_to(user=patient, conversation_id=conversation.pk, seq=2) == {
            "conversation_id": str(conversation.pk),
            "user_id": str(patient.pk),
            "seq": 2,
            "unread": 0,
        }
    assert unread_counts(user_id=patient.pk)["chat"] == 0


def test_with_redis_down_the_rest_endpoints_answer_when_authentication_does(
    api, conversation, patient, doc, settings
):
    """Over REST, where authentication itself survives the loss (its own cache is not
    chat's): if it does not, this test says so rather than failing chat for it."""
    doc_h, patient_h = headers_for(api, doc), headers_for(api, patient)
    _point_redis_at_nothing(settings)
    probe = Client().get("/api/v1/me", headers=patient_h)
    if probe.status_code != 200:
        pytest.skip("authentication needs Redis: not chat's to degrade (see the test above)")
    r = send(api, doc_h, conversation, "over rest")
    assert r.status_code == 201, r.content
    listed = api.get("/api/v1/conversations", headers=patient_h)
    assert listed.status_code == 200, listed.content
    assert listed.json()["unread_total"] == 1
    unread = api.get("/api/v1/notifications/unread", headers=patient_h)
    assert unread.status_code == 200, unread.content
    assert unread.json()["counts"]["chat"] == 1


def test_redis_lost_after_the_push_turn_was_taken_does_not_fail_the_committed_send(
    conversation, patient, monkeypatch, django_capture_on_commit_callbacks
):
    """The turn is given back after commit: Redis gone by then must not turn a stored
    message into an error."""
    import redis
    from django.core.cache import caches

    def gone(*args: Any, **kwargs: Any) -> None:
        raise redis.exceptions.ConnectionError("Redis went away")

    class GoneClient:
        eval = staticmethod(gone)  # the compare-and-delete that gives the turn back

    monkeypatch.setattr(caches["default"], "delete", gone)
    monkeypatch.setattr(services, "default_redis", lambda: (GoneClient(), str))
    with django_capture_on_commit_callbacks(execute=True):
        ack = services.message_send(
            user=patient, conversation_id=conversation.pk, text="kept", client_id="t1"
        )
    assert ack["seq"] == 1 and Message.objects.get().text == "kept"


def test_after_care_a_message_can_be_deleted_but_not_edited(
    api, conversation, patient, doc, doc_h, settings, events, django_capture_on_commit_callbacks
):
    """An edit says something new, as a message does: it needs care. Deleting one's own
    message takes something back, and stays possible (and is shown to both)."""
    send(api, doc_h, conversation, "take the blue pills")
    send(api, doc_h, conversation, "call me tomorrow")
    events.clear()
    _end_care(settings)
    with pytest.raises(NotInCare):
        services.message_edit(user=doc, conversation_id=conversation.pk, seq=1, text="red")
    assert Message.objects.get(conversation=conversation, seq=1).text == "take the blue pills"
    with django_capture_on_commit_callbacks(execute=True):
        services.message_delete(user=doc, conversation_id=conversation.pk, seq=2)
    assert Message.objects.get(conversation=conversation, seq=2).deleted_at is not None
    assert sorted(map(sorted, (ids for ids, _ in events))) == [
        sorted([str(patient.pk), str(doc.pk)])
    ]
