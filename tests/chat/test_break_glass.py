from __future__ import annotations

from accounts.models import Role
from audit.models import AuditEvent
from audit.selectors import unsealed
from tests.chat.conftest import send, url
from tests.factories import make_user, post
from tests.records.conftest import headers_for

REASON = "Patient reported harassment in this chat; ticket 4471"


def test_admins_cannot_read_chats_without_break_glass(api, conversation, patient_h):
    send(api, patient_h, conversation, "private")
    admin_h = headers_for(api, make_user(role=Role.ADMIN))
    assert api.get(url(conversation, "/messages"), headers=admin_h).status_code == 404
    assert api.get("/api/v1/conversations", headers=admin_h).json()["items"] == []


def test_break_glass_read_needs_a_reason_and_is_audited(api, conversation, patient_h):
    send(api, patient_h, conversation, "private")
    admin = make_user(role=Role.ADMIN)
    admin_h = headers_for(api, admin)
    path = f"/api/v1/admin/conversations/{conversation.pk}/break-glass"
    short = post(api, path, {"reason": "because"}, **admin_h)
    assert short.status_code == 422 and short.json()["error"]["code"] == "chat.reason_required"
    assert not AuditEvent.objects.filter(action="chat.break_glass_read").exists()

    r = post(api, path, {"reason": REASON}, **admin_h)
    assert r.status_code == 200
    assert [m["text"] for m in r.json()["items"]] == ["private"]
    event = AuditEvent.objects.get(action="chat.break_glass_read")
    assert event.actor_id == admin.pk and event.target_id == str(conversation.pk)
    assert REASON not in str(event.data) and event.data["seqs"] == [1]  # sealed
    assert unsealed(event.data, reveal=True)["reason"] == REASON
    assert "private" not in str(event.data)


def test_only_admins_may_break_glass(api, conversation, patient_h, doc_h):
    path = f"/api/v1/admin/conversations/{conversation.pk}/break-glass"
    for headers in (patient_h, doc_h, headers_for(api, make_user(role=Role.HELPER))):
        r = post(api, path, {"reason": REASON}, **headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "auth.role_required"
    assert not AuditEvent.objects.filter(action="chat.break_glass_read").exists()
