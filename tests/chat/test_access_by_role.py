"""Chat is read by its two people only while their accounts still hold their sides' roles:
the patient's while a patient's, the doctor's while a verified doctor's. A doctor made staff,
or whose verification was withdrawn, gets 404 for their old conversations (as for an unknown
id) over REST and the socket; staff still read through the audited break-glass service."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client

from accounts.models import Role, User
from chat import consumers
from chat.errors import ConversationNotFound
from doctors.models import Verification
from tests.chat.conftest import send, url
from tests.factories import make_user, post
from tests.records.conftest import headers_for

REASON = "Patient reported harassment in this chat; ticket 4471"


@pytest.fixture
def admin_h(api: Client) -> dict[str, str]:
    return headers_for(api, make_user(role=Role.ADMIN))


def _set_role(api: Client, admin_h: dict[str, str], user: Any, role: str) -> None:
    r = api.patch(
        f"/api/v1/admin/users/{user.pk}",
        {"role": role},
        content_type="application/json",
        headers=admin_h,
    )
    assert r.status_code == 200, r.content
    assert User.objects.get(pk=user.pk).role == role


def _decide(api: Client, admin_h: dict[str, str], doc: Any, decision: str) -> None:
    body = {"decision": decision, "reason": "Licence lapsed" if decision == "rejected" else ""}
    r = post(api, f"/api/v1/admin/verifications/{doc.doctor_profile.pk}", body, **admin_h)
    assert r.status_code == 200, r.content


def _refused_as_unknown(api: Client, headers: dict[str, str], conversation: Any) -> None:
    """History is 404 with the answer an unknown id gets; the list shows nothing."""
    r = api.get(url(conversation, "/messages"), headers=headers)
    unknown = api.get(f"/api/v1/conversations/{uuid.uuid4()}/messages", headers=headers)
    assert r.status_code == unknown.status_code == 404, r.content
    assert r.json()["error"]["code"] == unknown.json()["error"]["code"]
    listed = api.get("/api/v1/conversations", headers=headers).json()
    assert (listed["items"], listed["unread_total"]) == ([], 0)


def _socket_reveals_nothing(user: Any, conversation: Any) -> None:
    """``user`` as the socket holds it since it connected (its role then, in memory): resume's
    chat part tells nothing of the conversation, named or not, and chat.send, chat.read and
    chat.typing answer as for an unknown id."""
    cid = str(conversation.pk)
    for chat in ({cid: [0, 0]}, {}):
        events = consumers.resume(user=user, content={"chat": chat, "chat_cursor": None})
        assert events == [
            {
                "type": "chat.resume.done",
                "data": {"more": False, "marks": {}, "reads": {}, "cursor": None},
            }
        ]
    for handler, extra in (
        (consumers.send, {"text": "still here?", "client_id": "late"}),
        (consumers.read, {"seq": 1}),
        (consumers.typing, {}),
    ):
        with pytest.raises(ConversationNotFound):
            handler(user=user, content={"conversation_id": cid, **extra})


@pytest.mark.parametrize("role", [Role.ADMIN, Role.HELPER])
def test_a_doctor_made_staff_reads_none_of_their_old_chats(
    api, conversation, patient_h, doc, doc_h, admin_h, role
):
    send(api, patient_h, conversation, "My results are worrying")
    assert api.get(url(conversation, "/messages"), headers=doc_h).status_code == 200
    _set_role(api, admin_h, doc, role)

    _refused_as_unknown(api, headers_for(api, doc), conversation)
    _socket_reveals_nothing(doc, conversation)  # still "doctor" in memory


def test_a_doctor_made_admin_reads_a_chat_only_by_break_glass(
    api, conversation, patient_h, doc, admin_h
):
    send(api, patient_h, conversation, "private")
    _set_role(api, admin_h, doc, Role.ADMIN)
    path = f"/api/v1/admin/conversations/{conversation.pk}/break-glass"
    r = post(api, path, {"reason": REASON}, **headers_for(api, doc))
    assert r.status_code == 200, r.content
    assert [m["text"] for m in r.json()["items"]] == ["private"]


def test_a_patient_made_staff_reads_none_of_their_old_chats(
    api, conversation, patient, patient_h, doc_h, admin_h
):
    send(api, doc_h, conversation, "Take it twice a day")
    _set_role(api, admin_h, patient, Role.HELPER)
    _refused_as_unknown(api, headers_for(api, patient), conversation)
    _socket_reveals_nothing(patient, conversation)


@pytest.mark.parametrize("withdrawn", [Verification.REJECTED, Verification.PENDING])
def test_a_doctor_whose_verification_is_withdrawn_reads_no_chat_until_verified_again(
    api, conversation, patient_h, doc, doc_h, admin_h, withdrawn
):
    send(api, patient_h, conversation, "My results are worrying")
    if withdrawn == Verification.REJECTED:
        _decide(api, admin_h, doc, "rejected")
    else:  # back under review (no admin decision sets it: the model does)
        doc.doctor_profile.verification = Verification.PENDING
        doc.doctor_profile.save(update_fields=["verification"])

    _refused_as_unknown(api, doc_h, conversation)
    _socket_reveals_nothing(doc, conversation)

    _decide(api, admin_h, doc, "verified")
    r = api.get(url(conversation, "/messages"), headers=doc_h)
    assert r.status_code == 200, r.content
    assert [m["text"] for m in r.json()["items"]] == ["My results are worrying"]
    listed = api.get("/api/v1/conversations", headers=doc_h).json()
    assert [c["id"] for c in listed["items"]] == [str(conversation.pk)]
    assert listed["unread_total"] == 1
    events = consumers.resume(
        user=doc, content={"chat": {str(conversation.pk): [0, 0]}, "chat_cursor": None}
    )
    assert [e["type"] for e in events] == ["chat.message", "chat.resume.done"]


def test_the_data_export_takes_out_only_the_chats_the_account_may_read(
    api, conversation, patient_h, doc, admin_h
):
    from chat.export import chat_section
    from core.export import Rows

    send(api, patient_h, conversation, "My results are worrying")
    texts = [
        m["text"] for c in chat_section(doc, Rows(100))["conversations"] for m in c["messages"]
    ]
    assert texts == ["My results are worrying"]
    _set_role(api, admin_h, doc, Role.ADMIN)
    assert chat_section(doc, Rows(100)) == {"conversations": []}
