from __future__ import annotations

from chat import selectors
from tests.chat.conftest import send, url
from tests.factories import post


def test_read_marker_moves_forward_only_and_both_sides_see_it(
    api, conversation, patient, doc, patient_h, doc_h, events, django_capture_on_commit_callbacks
):
    for text in ("a", "b", "c", "d"):
        send(api, doc_h, conversation, text)
    with django_capture_on_commit_callbacks(execute=True):
        r = post(api, url(conversation, "/read"), {"seq": 3}, **patient_h)
    assert r.status_code == 200
    assert r.json() == {
        "conversation_id": str(conversation.pk),
        "user_id": str(patient.pk),
        "seq": 3,
        "unread": 1,
    }
    read_event = {
        "type": "chat.read",
        "data": {"conversation_id": str(conversation.pk), "user_id": str(patient.pk), "seq": 3},
    }
    assert events == [(sorted([str(patient.pk), str(doc.pk)]), read_event)]

    with django_capture_on_commit_callbacks(execute=True):
        back = post(api, url(conversation, "/read"), {"seq": 1}, **patient_h)
    assert back.status_code == 200 and back.json()["seq"] == 3 and back.json()["unread"] == 1
    assert len(events) == 1  # nothing moved, nothing told
    conversation.refresh_from_db()
    assert conversation.patient_read_seq == 3 and conversation.doctor_read_seq == 0

    listed = api.get("/api/v1/conversations", headers=doc_h).json()["items"][0]
    assert listed["other_read_seq"] == 3 and listed["read_seq"] == 0


def test_a_seq_beyond_the_last_is_refused(api, conversation, patient_h, doc_h):
    send(api, doc_h, conversation, "only one")
    r = post(api, url(conversation, "/read"), {"seq": 2}, **patient_h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "chat.seq_out_of_range"
    conversation.refresh_from_db()
    assert conversation.patient_read_seq == 0
    bad = post(api, url(conversation, "/read"), {"seq": -1}, **patient_h)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "request.invalid"


def test_unread_counts_skip_deleted_messages_and_match_a_recount(
    api, conversation, patient, patient_h, doc_h
):
    for text in ("a", "b", "c"):
        send(api, doc_h, conversation, text)
    api.delete(url(conversation, "/messages/2"), headers=doc_h)
    assert selectors.unread_total(patient.pk) == 2
    listed = api.get("/api/v1/conversations", headers=patient_h).json()
    assert listed["unread_total"] == 2 and listed["items"][0]["unread"] == 2
    post(api, url(conversation, "/read"), {"seq": 3}, **patient_h)
    assert selectors.unread_total(patient.pk) == 0
