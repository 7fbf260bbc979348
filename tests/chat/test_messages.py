from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chat import services
from chat.errors import ConversationClosed
from chat.models import Message
from chat.selectors import message_data
from core.errors import ApplicationError
from realtime.models import Notification
from tests.chat.conftest import send, url
from tests.factories import make_user, post
from tests.records.conftest import headers_for


def test_send_acknowledges_with_the_next_seq_and_returns_plain_text(api, conversation, patient_h):
    html = "<b>bold</b> & <script>alert(1)</script>"
    r = send(api, patient_h, conversation, html, client_id="c-1")
    assert r.status_code == 201, r.json()
    ack = r.json()
    assert ack["seq"] == 1 and ack["client_id"] == "c-1" and ack["text"] == html
    assert send(api, patient_h, conversation, "second").json()["seq"] == 2
    conversation.refresh_from_db()
    assert conversation.last_seq == 2


def test_same_client_id_twice_is_one_message_and_the_same_ack(api, conversation, patient_h, events):
    first = send(api, patient_h, conversation, "once", client_id="dup")
    again = send(api, patient_h, conversation, "once", client_id="dup")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert Message.objects.count() == 1


def test_the_same_client_id_from_the_other_side_is_another_message(
    api, conversation, patient_h, doc_h
):
    a = send(api, patient_h, conversation, "p", client_id="same").json()
    b = send(api, doc_h, conversation, "d", client_id="same").json()
    assert (a["seq"], b["seq"]) == (1, 2)


def test_every_message_is_pushed_to_both_participants(
    api, conversation, patient, doc, doc_h, django_capture_on_commit_callbacks, events
):
    with django_capture_on_commit_callbacks(execute=True):
        ack = send(api, doc_h, conversation, "reply").json()
    stored = message_data(Message.objects.get())
    assert events == [
        (sorted([str(patient.pk), str(doc.pk)]), {"type": "chat.message", "data": stored}),
    ]
    assert (stored["seq"], stored["text"], stored["client_id"]) == (1, "reply", ack["client_id"])


def test_history_pages_back_and_forward_in_ascending_order(api, conversation, patient_h):
    for i in range(1, 8):
        assert send(api, patient_h, conversation, f"m{i}").json()["seq"] == i
    latest = api.get(url(conversation, "/messages?limit=3"), headers=patient_h).json()
    assert [m["seq"] for m in latest["items"]] == [5, 6, 7]
    older = api.get(
        url(conversation, f"/messages?limit=3&cursor={latest['next']}"), headers=patient_h
    ).json()
    assert [m["seq"] for m in older["items"]] == [2, 3, 4]
    oldest = api.get(
        url(conversation, f"/messages?limit=3&cursor={older['next']}"), headers=patient_h
    ).json()
    assert [m["seq"] for m in oldest["items"]] == [1] and oldest["next"] is None

    gap = api.get(url(conversation, "/messages?after_seq=2&limit=2"), headers=patient_h).json()
    assert [m["seq"] for m in gap["items"]] == [3, 4]
    rest = api.get(
        url(conversation, f"/messages?limit=10&cursor={gap['next']}"), headers=patient_h
    ).json()
    assert [m["seq"] for m in rest["items"]] == [5, 6, 7] and rest["next"] is None
    before = api.get(url(conversation, "/messages?before_seq=3"), headers=patient_h).json()
    assert [m["seq"] for m in before["items"]] == [1, 2]


def test_a_forged_cursor_is_400(api, conversation, patient_h):
    r = api.get(url(conversation, "/messages?cursor=abc"), headers=patient_h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "request.invalid_cursor"


def test_sender_edits_within_the_window_only(api, conversation, patient_h, doc_h, settings):
    send(api, patient_h, conversation, "typo")
    r = api.patch(
        url(conversation, "/messages/1"), {"text": "fixed"}, "application/json", headers=patient_h
    )
    assert r.status_code == 200 and r.json()["text"] == "fixed" and r.json()["edited_at"]
    other = api.patch(
        url(conversation, "/messages/1"), {"text": "x"}, "application/json", headers=doc_h
    )
    assert other.status_code == 403 and other.json()["error"]["code"] == "chat.not_sender"
    Message.objects.update(created_at=timezone.now() - timedelta(hours=1))
    settings.CHAT_EDIT_WINDOW_SECONDS = 600
    late = api.patch(
        url(conversation, "/messages/1"), {"text": "late"}, "application/json", headers=patient_h
    )
    assert late.status_code == 409 and late.json()["error"]["code"] == "chat.edit_window_passed"
    assert Message.objects.get().text == "fixed"


def test_delete_leaves_a_tombstone_in_the_sequence(api, conversation, patient_h, doc_h):
    send(api, patient_h, conversation, "oops")
    send(api, patient_h, conversation, "kept")
    assert api.delete(url(conversation, "/messages/1"), headers=doc_h).status_code == 403
    r = api.delete(url(conversation, "/messages/1"), headers=patient_h)
    assert r.status_code == 200
    assert r.json()["text"] == "" and r.json()["deleted_at"] is not None
    history = api.get(url(conversation, "/messages"), headers=doc_h).json()["items"]
    assert [(m["seq"], m["text"]) for m in history] == [(1, ""), (2, "kept")]
    edit = api.patch(
        url(conversation, "/messages/1"), {"text": "back"}, "application/json", headers=patient_h
    )
    assert edit.json()["error"]["code"] == "chat.message_deleted"
    assert api.delete(url(conversation, "/messages/9"), headers=patient_h).status_code == 404


def test_a_burst_is_one_notification_until_it_is_read(
    api, conversation, patient, doc_h, patient_h, settings
):
    settings.CHAT_NOTIFY_INTERVAL_SECONDS = 300
    for text in ("a", "b", "c"):
        send(api, doc_h, conversation, text)
    notices = Notification.objects.filter(user=patient, kind="chat.unread")
    assert notices.count() == 1
    notice = notices.get()
    assert notice.data == {"conversation_id": str(conversation.pk), "seq": 1}
    assert "a" != notice.body and "Open the conversation" in notice.body
    assert notice.title == "New message from Omar Haddad"

    post(api, url(conversation, "/read"), {"seq": 3}, **patient_h)
    send(api, doc_h, conversation, "d")
    assert notices.count() == 2  # read in between: the next message is news again
    send(api, doc_h, conversation, "e")
    assert notices.count() == 2


def test_a_recipient_with_an_open_socket_gets_no_notification(api, conversation, patient, doc_h):
    from realtime import presence

    presence.heartbeat(user_id=patient.pk, device="phone")  # what an open socket does
    try:
        send(api, doc_h, conversation, "seen live")
        assert not Notification.objects.filter(user=patient, kind="chat.unread").exists()
    finally:
        presence.leave(user_id=patient.pk, device="phone")
    send(api, doc_h, conversation, "now away")
    notice = Notification.objects.get(user=patient, kind="chat.unread")
    assert notice.data["seq"] == 2


def test_notification_is_in_the_recipients_language(api, conversation, patient, doc_h):
    patient.language = "ar"
    patient.save(update_fields=["language"])
    send(api, doc_h, conversation, "hello")
    notice = Notification.objects.get(user=patient, kind="chat.unread")
    assert notice.title.startswith("رسالة جديدة") and "Open" not in notice.body


def test_sending_is_rate_limited_per_user(api, conversation, patient, patient_h, doc_h, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "chat_send": "3/m/user"}
    for i in range(3):
        assert send(api, patient_h, conversation, f"m{i}").status_code == 201
    r = send(api, patient_h, conversation, "one too many")
    assert r.status_code == 429 and r.json()["error"]["code"] == "chat.rate_limited"
    assert 1 <= int(r["Retry-After"]) <= 120  # until the sliding count falls under the rate
    assert send(api, doc_h, conversation, "the doctor still can").status_code == 201
    assert Message.objects.filter(sender=patient).count() == 3


def test_a_retry_of_a_sent_message_is_not_rate_limited(api, conversation, patient_h, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "chat_send": "1/m/user"}
    first = send(api, patient_h, conversation, "x", client_id="k").json()
    assert send(api, patient_h, conversation, "x", client_id="k").json() == first


def test_a_refused_send_stores_nothing_and_takes_no_seq(api, conversation, patient_h, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "chat_send": "1/m/user"}
    assert send(api, patient_h, conversation, "x", client_id="k1").status_code == 201
    refused = send(api, patient_h, conversation, "y", client_id="k2")
    assert refused.status_code == 429, refused.json()
    assert refused.json()["error"]["code"] == "chat.rate_limited"
    assert list(Message.objects.values_list("client_id", "seq")) == [("k1", 1)]
    conversation.refresh_from_db()
    assert conversation.last_seq == 1


def test_a_retry_is_answered_after_the_conversation_closed(conversation, doc, patient):
    first = services.message_send(
        user=patient, conversation_id=str(conversation.pk), text="x", client_id="k"
    )
    services.conversation_close(user=doc, conversation_id=str(conversation.pk))
    again = services.message_send(
        user=patient, conversation_id=str(conversation.pk), text="x", client_id="k"
    )
    assert again == first and Message.objects.count() == 1
    with pytest.raises(ConversationClosed):
        services.message_send(
            user=patient, conversation_id=str(conversation.pk), text="x", client_id="new"
        )


def test_the_service_answers_a_socket_style_call_with_the_ack(conversation, doc):
    ack = services.message_send(
        user=doc, conversation_id=str(conversation.pk), text="hi", client_id="sock-1"
    )
    assert ack["seq"] == 1 and ack["sender_id"] == str(doc.pk)
    read = services.read_up_to(user=conversation.patient, conversation_id=conversation.pk, seq=1)
    assert read["seq"] == 1 and read["unread"] == 0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": ""}, 422, "chat.empty_text"),
        ({"text": " \n\t "}, 422, "chat.empty_text"),
        ({"text": "x" * 4001}, 422, "chat.text_too_long"),
        (
            {"text": "hi", "sender_id": "00000000-0000-0000-0000-000000000000"},
            422,
            "request.invalid",
        ),
        ({"text": "hi", "seq": 99}, 422, "request.invalid"),
        ({"text": "hi", "client_id": ""}, 422, "request.invalid"),
        ({"text": "hi", "client_id": "x" * 65}, 422, "request.invalid"),
    ],
)
def test_bad_messages_are_refused_and_nothing_is_stored(
    api, conversation, patient_h, body, status, code
):
    r = send(api, patient_h, conversation, **body)
    assert r.status_code == status, r.json()
    assert r.json()["error"]["code"] == code
    assert not Message.objects.exists()


def test_4000_characters_is_the_limit_not_over_it(api, conversation, patient_h):
    r = send(api, patient_h, conversation, "é" * 4000)
    assert r.status_code == 201 and len(r.json()["text"]) == 4000


def test_a_conversation_i_am_not_in_is_404(api, conversation):
    stranger_h = headers_for(api, make_user())
    for r in (
        send(api, stranger_h, conversation),
        api.get(url(conversation, "/messages"), headers=stranger_h),
        post(api, url(conversation, "/read"), {"seq": 0}, **stranger_h),
        api.get("/api/v1/conversations/not-a-uuid/messages", headers=stranger_h),
    ):
        assert r.status_code in (404, 422)
    assert send(api, stranger_h, conversation).json()["error"]["code"] == "chat.not_found"
    assert not Message.objects.exists()


def test_messages_end_when_care_ends(api, conversation, patient_h, settings):
    settings.CARE_RELATIONSHIP_DAYS = 0
    from bookings.models import Appointment

    Appointment.objects.update(
        start=timezone.now() - timedelta(days=3), end=timezone.now() - timedelta(days=3)
    )
    r = send(api, patient_h, conversation)
    assert r.status_code == 403 and r.json()["error"]["code"] == "chat.not_in_care"
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "call",
    [
        {"text": None, "client_id": "a"},
        {"text": "hi", "client_id": 5},
        {"text": "hi", "client_id": "a", "attachments": None},
        {"text": "hi", "client_id": "a", "attachments": "not a list"},
    ],
)
def test_the_service_refuses_bad_plain_values_as_a_socket_would_send_them(
    conversation, patient, call
):
    with pytest.raises(ApplicationError) as refused:
        services.message_send(user=patient, conversation_id=str(conversation.pk), **call)
    assert refused.value.code == "request.invalid" and refused.value.status == 422
    assert not Message.objects.exists()


@pytest.mark.parametrize("seq", ["3", True, -1, None])
def test_read_refuses_a_seq_that_is_not_a_whole_number(conversation, patient, seq):
    with pytest.raises(ApplicationError) as refused:
        services.read_up_to(user=patient, conversation_id=conversation.pk, seq=seq)
    assert refused.value.code == "request.invalid"


def test_a_long_sender_name_still_fits_the_notification_title(api, conversation, patient, doc):
    doc.first_name, doc.last_name = "A" * 150, "B" * 150
    doc.save(update_fields=["first_name", "last_name"])
    services.message_send(user=doc, conversation_id=conversation.pk, text="hi", client_id="n")
    assert len(Notification.objects.get(user=patient, kind="chat.unread").title) == 200


def test_an_edit_to_nothing_is_refused(api, conversation, patient_h):
    send(api, patient_h, conversation, "text")
    r = api.patch(
        url(conversation, "/messages/1"), {"text": "  "}, "application/json", headers=patient_h
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "chat.empty_text"
    assert Message.objects.get().text == "text"


def test_a_send_reads_the_conversation_once_under_its_lock(conversation, patient):
    """The conversation is read once, under the row lock (not again before it): lock, care
    check, insert, conversation update. The client id is not looked up first: the insert
    ignores a taken one, and only then is the first send read back, for the retry's ack."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    services.message_send(user=patient, conversation_id=conversation.pk, text="a", client_id="x")
    with CaptureQueriesContext(connection) as first:
        services.message_send(
            user=patient, conversation_id=conversation.pk, text="b", client_id="y"
        )
    sql = [q["sql"] for q in first.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert [s.split()[0] for s in sql] == ["SELECT", "SELECT", "INSERT", "UPDATE"]
    assert "FOR UPDATE" in sql[0] and "ON CONFLICT DO NOTHING" in sql[2]
    with CaptureQueriesContext(connection) as retry:
        again_ack = services.message_send(
            user=patient, conversation_id=conversation.pk, text="b", client_id="y"
        )
    again = [q["sql"] for q in retry.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert [s.split()[0] for s in again] == ["SELECT", "SELECT", "INSERT", "SELECT"]
    assert "chat_message" in again[3] and again_ack["seq"] == 2
