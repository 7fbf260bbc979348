from __future__ import annotations

from django.db import connection

from chat.models import Conversation, Message
from tests.chat.conftest import in_care_with, send, url
from tests.doctors.factories import doctor
from tests.factories import make_user, post
from tests.records.conftest import headers_for


def test_patient_opens_a_conversation_with_a_doctor_in_care_once(api, patient, doc, patient_h):
    in_care_with(doc, patient)
    r = post(api, "/api/v1/conversations", {"with_id": str(doc.pk)}, **patient_h)
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["patient"]["id"] == str(patient.pk) and body["doctor"]["id"] == str(doc.pk)
    assert body["closed"] is False and body["unread"] == 0 and body["last_message"] is None
    again = post(api, "/api/v1/conversations", {"with_id": str(doc.pk)}, **patient_h)
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert Conversation.objects.count() == 1


def test_doctor_opens_the_same_conversation_from_their_side(api, conversation, doc, doc_h):
    r = post(api, "/api/v1/conversations", {"with_id": str(conversation.patient_id)}, **doc_h)
    assert r.status_code == 200 and r.json()["id"] == str(conversation.pk)


def test_no_conversation_without_care(api, patient, doc, patient_h):
    r = post(api, "/api/v1/conversations", {"with_id": str(doc.pk)}, **patient_h)
    assert r.status_code == 403 and r.json()["error"]["code"] == "chat.not_in_care"
    patient2 = make_user()
    r = post(api, "/api/v1/conversations", {"with_id": str(patient2.pk)}, **patient_h)
    assert r.status_code == 403 and r.json()["error"]["code"] == "chat.not_in_care"
    assert not Conversation.objects.exists()


def test_list_has_last_message_unread_counts_and_total_in_few_queries(
    api, patient, doc, conversation, patient_h, doc_h, django_assert_num_queries
):
    other = doctor().user
    in_care_with(other, patient)
    second = post(api, "/api/v1/conversations", {"with_id": str(other.pk)}, **patient_h).json()
    other_h = headers_for(api, other)
    for text in ("one", "two", "three"):
        assert send(api, doc_h, conversation, text).status_code == 201
    assert send(api, other_h, Conversation.objects.get(pk=second["id"]), "hi").status_code == 201
    assert send(api, patient_h, conversation, "mine").status_code == 201

    api.get("/api/v1/conversations", headers=patient_h)  # warm the token's session cache
    from realtime import presence

    presence.heartbeat(user_id=doc.pk, device="laptop")  # the first doctor has a socket open
    # 4 + 2: who is in care with the caller (presence is shown only to them)
    with django_assert_num_queries(6):
        r = api.get("/api/v1/conversations", headers=patient_h)
    presence.leave(user_id=doc.pk, device="laptop")
    assert r.status_code == 200
    page = r.json()
    by_id = {c["id"]: c for c in page["items"]}
    assert [c["id"] for c in page["items"]] == [str(conversation.pk), second["id"]]
    assert by_id[str(conversation.pk)]["unread"] == 3  # my own message is not unread
    assert by_id[str(conversation.pk)]["last_message"]["text"] == "mine"
    assert by_id[second["id"]]["unread"] == 1
    assert page["unread_total"] == 4 and page["next"] is None
    assert by_id[str(conversation.pk)]["other_online"] is True
    assert by_id[second["id"]]["other_online"] is False

    doctor_view = api.get("/api/v1/conversations", headers=doc_h).json()
    assert [c["unread"] for c in doctor_view["items"]] == [1]


def test_conversation_list_pages_with_a_cursor(api, patient, patient_h):
    for _ in range(3):
        d = doctor().user
        in_care_with(d, patient)
        post(api, "/api/v1/conversations", {"with_id": str(d.pk)}, **patient_h)
    first = api.get("/api/v1/conversations?limit=2", headers=patient_h).json()
    assert len(first["items"]) == 2 and first["next"]
    rest = api.get(f"/api/v1/conversations?limit=2&cursor={first['next']}", headers=patient_h)
    ids = [c["id"] for c in first["items"] + rest.json()["items"]]
    assert len(set(ids)) == 3 and rest.json()["next"] is None


def test_doctor_closes_and_reopens_and_patient_cannot(api, conversation, patient_h, doc_h, events):
    r = post(api, url(conversation, "/close"), **patient_h)
    assert r.status_code == 403 and r.json()["error"]["code"] == "chat.doctor_only"
    with_capture = post(api, url(conversation, "/close"), **doc_h)
    assert with_capture.status_code == 200 and with_capture.json()["closed"] is True
    r = send(api, patient_h, conversation)
    assert r.status_code == 409 and r.json()["error"]["code"] == "chat.closed"
    assert send(api, doc_h, conversation).json()["error"]["code"] == "chat.closed"
    assert not Message.objects.exists()
    assert post(api, url(conversation, "/reopen"), **doc_h).json()["closed"] is False
    assert send(api, patient_h, conversation).status_code == 201


def test_chat_text_is_encrypted_in_the_database(api, conversation, patient_h):
    assert send(api, patient_h, conversation, "my chest hurts").status_code == 201
    with connection.cursor() as cursor:
        cursor.execute("SELECT text FROM chat_message")
        (stored,) = cursor.fetchone()
    assert "chest" not in stored and stored != "my chest hurts"
    assert Message.objects.get().text == "my chest hurts"
