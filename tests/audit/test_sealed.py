"""Sealed audit data: a break-glass reason (free text that may tell of a patient's health) is
kept encrypted in the append-only trail and its mirror, and read back for admins only."""

from __future__ import annotations

import pytest

from accounts.models import Role
from audit.models import AuditEvent
from audit.selectors import unsealed
from audit.services import record, seal
from core.crypto import encrypt
from tests.accounts.admin_site import helper_with, staff_client, superuser
from tests.factories import bearer, login, make_user

pytestmark = pytest.mark.django_db
REASON = "Patient unconscious in the emergency room, suspected insulin overdose"


def test_a_sealed_value_is_stored_encrypted_and_read_back_for_admins_only():
    event = record(
        action="records.break_glass", data={"patient_id": "p1", "reason_sealed": seal(REASON)}
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert "insulin" not in str(stored.data) and stored.data["reason_sealed"].startswith("enc")
    assert unsealed(stored.data, reveal=True) == {"patient_id": "p1", "reason": REASON}
    assert unsealed(stored.data, reveal=False) == {"patient_id": "p1", "reason": "[sealed]"}
    # Sealed for another purpose (a field's context): not read back as a reason.
    other = {"reason_sealed": encrypt(REASON, context="records.title")}
    assert unsealed(other, reveal=True) == {"reason": "[unreadable]"}
    assert stored.compute_hash() == stored.hash  # the chain covers what is stored


def test_the_admin_site_shows_the_reason_to_admins_and_not_to_helpers():
    event = record(action="records.break_glass", data={"reason_sealed": seal(REASON)})
    url = f"/admin/audit/auditevent/{event.pk}/change/"
    admin_page = staff_client(superuser()).get(url)
    assert admin_page.status_code == 200
    assert "insulin" in admin_page.content.decode()
    helper = helper_with("audit.view_auditevent")
    assert helper.role == Role.HELPER
    helper_page = staff_client(helper).get(url)
    assert helper_page.status_code == 200
    body = helper_page.content.decode()
    assert "insulin" not in body and "[sealed]" in body
    assert event.data["reason_sealed"] not in body  # not even the ciphertext


def test_the_audit_search_shows_the_reason_to_admins_and_not_to_helpers(api):
    record(action="records.break_glass", data={"patient_id": "p1", "reason_sealed": seal(REASON)})
    url = "/api/v1/admin/audit?action=records.break_glass"
    admin = make_user(role=Role.ADMIN)
    shown = api.get(url, headers=bearer(login(api, admin.email)["access"])).json()["items"]
    assert [e["data"] for e in shown] == [{"patient_id": "p1", "reason": REASON}]
    helper = helper_with("audit.view_auditevent")
    r = api.get(url, headers=bearer(login(api, helper.email)["access"]))
    assert r.status_code == 200, r.json()
    assert [e["data"] for e in r.json()["items"]] == [{"patient_id": "p1", "reason": "[sealed]"}]
    assert "enc" not in str(r.json()["items"][0]["data"])
    assert AuditEvent.objects.get(action="records.break_glass").data["reason_sealed"] != REASON
