"""Who sees a record: owner, doctors with a grant or in care, admins only by break-glass.
Everyone else gets 404. Every view, list and download is audited."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from audit.selectors import unsealed
from bookings.models import Status
from records.models import MedicalRecord
from records.services import records_purge
from records.tasks import scan_record
from tests.doctors.factories import doctor
from tests.factories import make_user
from tests.records.conftest import PDF, headers_for, in_care_with, keys, scanned, upload

pytestmark = pytest.mark.django_db


def _record(api, headers, **fields):
    r = upload(api, headers, PDF, **fields)
    assert r.status_code == 201, r.json()
    return r.json()["id"]


def test_doctor_without_a_grant_gets_404_everywhere(api, patient, patient_headers):
    record_id = _record(api, patient_headers)
    stranger = headers_for(api, doctor().user)
    for path in (f"/api/v1/records/{record_id}", f"/api/v1/records/{record_id}/download"):
        r = api.get(path, headers=stranger)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "records.not_found"
    r = api.get(f"/api/v1/records?patient={patient.id}", headers=stranger)
    assert r.json() == {"items": [], "next": None}
    assert api.delete(f"/api/v1/records/{record_id}", headers=stranger).status_code == 404
    r = api.post(
        f"/api/v1/records/{record_id}/grants",
        {"doctor_id": str(uuid.uuid4())},
        content_type="application/json",
        headers=stranger,
    )
    assert r.status_code == 404
    assert not AuditEvent.objects.filter(action="records.viewed").exists()


def test_forged_and_unknown_ids_are_404(api, patient_headers):
    assert api.get(f"/api/v1/records/{uuid.uuid4()}", headers=patient_headers).status_code == 404
    r = api.get("/api/v1/records/not-a-uuid", headers=patient_headers)
    assert r.status_code in (404, 422)


def test_patient_shares_with_a_doctor_and_revokes(api, clamd_on, patient, patient_headers):
    record_id = _record(api, patient_headers)
    other_id = _record(api, patient_headers, title="Not shared")
    scan_record.call(record_id)
    profile = doctor()
    doc = headers_for(api, profile.user)
    r = api.post(
        f"/api/v1/records/{record_id}/grants",
        {"doctor_id": str(profile.user.id)},
        content_type="application/json",
        headers=patient_headers,
    )
    assert r.status_code == 201
    grant_id = r.json()["id"]
    assert api.get(f"/api/v1/records/{record_id}", headers=doc).json()["title"] == "Blood count"
    assert api.get(f"/api/v1/records/{record_id}/download", headers=doc).status_code == 200
    assert api.get(f"/api/v1/records/{other_id}", headers=doc).status_code == 404
    listed = api.get("/api/v1/records", headers=doc).json()["items"]
    assert [i["id"] for i in listed] == [record_id]
    grants = api.get(f"/api/v1/records/{record_id}/grants", headers=patient_headers).json()
    assert grants["next"] is None
    assert [g["doctor_id"] for g in grants["items"]] == [str(profile.user.id)]
    r = api.delete(f"/api/v1/records/{record_id}/grants/{grant_id}", headers=patient_headers)
    assert r.status_code == 204
    assert api.get(f"/api/v1/records/{record_id}", headers=doc).status_code == 404
    actions = set(AuditEvent.objects.filter(target_id=record_id).values_list("action", flat=True))
    assert {
        "records.granted",
        "records.revoked",
        "records.viewed",
        "records.download_link",
        "records.grants_viewed",
    } <= (actions)


def test_grant_to_a_non_doctor_is_refused(api, patient_headers):
    record_id = _record(api, patient_headers)
    r = api.post(
        f"/api/v1/records/{record_id}/grants",
        {"doctor_id": str(make_user().id)},
        content_type="application/json",
        headers=patient_headers,
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "records.doctor_not_found"


def test_care_relationship_implies_access_while_it_lasts(api, patient, patient_headers):
    record_id = _record(api, patient_headers)
    profile = doctor()
    doc = headers_for(api, profile.user)
    appointment = in_care_with(profile, patient)
    r = api.get(f"/api/v1/records?patient={patient.id}", headers=doc)
    assert [i["id"] for i in r.json()["items"]] == [record_id]
    assert api.get(f"/api/v1/records/{record_id}", headers=doc).status_code == 200
    appointment.status = Status.CANCELLED
    appointment.save()
    assert api.get(f"/api/v1/records/{record_id}", headers=doc).status_code == 404
    assert api.get(f"/api/v1/records?patient={patient.id}", headers=doc).json()["items"] == []


def _break_glass(api, headers, patient, reason):
    body = {"patient_id": str(patient.id), "reason": reason}
    return api.post(
        "/api/v1/records/break-glass", body, content_type="application/json", headers=headers
    )


def test_admin_has_no_access_without_break_glass_and_break_glass_is_audited(
    api, patient, patient_headers
):
    record_id = _record(api, patient_headers)
    admin = make_user(role="admin")
    headers = headers_for(api, admin)
    assert api.get(f"/api/v1/records/{record_id}", headers=headers).status_code == 404
    r = _break_glass(api, headers, patient, "short")
    assert r.status_code == 422 and r.json()["error"]["code"] == "records.reason_required"
    reason = "Patient unconscious in the emergency room"
    r = _break_glass(api, headers, patient, reason)
    assert r.status_code == 201
    event = AuditEvent.objects.get(action="records.break_glass")
    assert event.actor_id == admin.id and reason not in str(event.data)  # sealed
    assert unsealed(event.data, reveal=True)["reason"] == reason
    assert api.get(f"/api/v1/records/{record_id}", headers=headers).status_code == 200
    listed = api.get(f"/api/v1/records?patient={patient.id}", headers=headers).json()["items"]
    assert [i["id"] for i in listed] == [record_id]
    helper = headers_for(api, make_user(role="helper"))
    r = _break_glass(api, helper, patient, reason)
    assert r.status_code == 403


def test_every_metadata_view_and_list_is_audited(api, patient, patient_headers):
    record_id = _record(api, patient_headers)
    api.get(f"/api/v1/records/{record_id}", headers=patient_headers)
    api.get("/api/v1/records", headers=patient_headers)
    viewed = AuditEvent.objects.get(action="records.viewed")
    assert (viewed.actor_id, viewed.target_id) == (patient.id, record_id)
    listed = AuditEvent.objects.get(action="records.listed")
    assert listed.data["record_ids"] == [record_id]
    assert "Blood" not in str(viewed.data) + str(listed.data)  # ids only, no health data


def test_list_pages_with_a_cursor_and_a_fixed_number_of_queries(
    api, patient_headers, django_assert_max_num_queries
):
    ids = [_record(api, patient_headers, title=f"t{i}") for i in range(5)]
    r = api.get("/api/v1/records?limit=3", headers=patient_headers)
    first = r.json()
    assert [i["id"] for i in first["items"]] == ids[::-1][:3]
    with django_assert_max_num_queries(12):
        second = api.get(
            f"/api/v1/records?limit=3&cursor={first['next']}", headers=patient_headers
        ).json()
    assert [i["id"] for i in second["items"]] == ids[::-1][3:]
    assert second["next"] is None
    r = api.get("/api/v1/records?cursor=forged", headers=patient_headers)
    assert r.status_code == 400


def test_deleted_record_disappears_and_its_object_is_purged_after_retention(
    api, clamd_on, s3, patient_headers, settings
):
    record_id = _record(api, patient_headers)
    scanned(record_id)
    assert len(keys(s3)) == 1
    assert api.delete(f"/api/v1/records/{record_id}", headers=patient_headers).status_code == 204
    assert api.get(f"/api/v1/records/{record_id}", headers=patient_headers).status_code == 404
    assert api.get("/api/v1/records", headers=patient_headers).json()["items"] == []
    assert records_purge() == 0  # kept for the retention time
    assert len(keys(s3)) == 1
    later = timezone.now() + timedelta(days=settings.RECORDS_RETENTION_DAYS, minutes=1)
    assert records_purge(now=later) == 1
    assert keys(s3) == []
    record = MedicalRecord.objects.get(id=record_id)
    assert record.purged_at is not None and record.storage_key == ""
    assert AuditEvent.objects.filter(action="records.purged", target_id=record_id).exists()


def test_purge_loop_is_scheduled_once_and_reschedules_itself():
    from django_tasks_db.models import DBTaskResult

    from core.tasks import ensure_housekeeping
    from records.tasks import records_housekeeping

    path = "records.tasks.records_housekeeping"
    assert ensure_housekeeping()[path] is True
    assert ensure_housekeeping()[path] is False
    assert records_housekeeping.call() == {"purged": 0, "orphans_deleted": 0, "scans_requeued": 0}
    waiting = DBTaskResult.objects.filter(
        task_path="records.tasks.records_housekeeping", status="READY"
    )
    assert waiting.count() == 1  # a run waits already: the run does not start a second chain


def test_a_record_deleted_before_its_scan_is_not_scanned(api, clamd_on, patient_headers):
    record_id = _record(api, patient_headers)
    api.delete(f"/api/v1/records/{record_id}", headers=patient_headers)
    assert scan_record.call(record_id) == "skipped"
    assert MedicalRecord.objects.get(id=record_id).status == "pending"


def test_a_doctor_whose_verification_is_withdrawn_loses_care_and_grants(
    api, patient, patient_headers
):
    """Withdrawing a verification cancels only upcoming appointments: a completed one kept
    the doctor in care (files, chat, presence), and a patient's grant kept working."""
    from bookings.models import Status as AppointmentStatus
    from doctors.services import doctor_verify
    from tests.doctors.factories import doctor
    from tests.records.conftest import headers_for, in_care_with, upload

    record_id = upload(api, patient_headers).json()["id"]
    treating, granted = doctor(), doctor()
    visit = in_care_with(treating, patient)
    visit.status = AppointmentStatus.COMPLETED
    visit.save()
    r = api.post(
        f"/api/v1/records/{record_id}/grants", {"doctor_id": str(granted.user_id)},
        content_type="application/json", headers=patient_headers,
    )  # fmt: skip
    assert r.status_code == 201
    for profile in (treating, granted):
        headers = headers_for(api, profile.user)
        assert api.get(f"/api/v1/records/{record_id}", headers=headers).status_code == 200
        doctor_verify(
            actor=make_user(role="admin"), doctor_id=profile.id, decision="rejected",
            reason="licence revoked",
        )  # fmt: skip
        assert api.get(f"/api/v1/records/{record_id}", headers=headers).status_code == 404
        listed = api.get(f"/api/v1/records?patient={patient.id}", headers=headers).json()
        assert listed["items"] == []
    # and nobody can share a file with a doctor who is not verified
    r = api.post(
        f"/api/v1/records/{record_id}/grants", {"doctor_id": str(doctor(verified=False).user_id)},
        content_type="application/json", headers=patient_headers,
    )  # fmt: skip
    assert (r.status_code, r.json()["error"]["code"]) == (422, "records.doctor_not_found")


def test_a_download_link_is_redacted_from_the_logs(
    api, patient_headers, clamd_on, caplog, monkeypatch
):
    """A 500 under a signed download link logged the link, a working credential."""
    import logging

    from django.test import Client

    from records import storage
    from tests.records.conftest import upload

    record_id = upload(api, patient_headers).json()["id"]
    assert scan_record.call(record_id) == "clean"
    url = api.get(f"/api/v1/records/{record_id}/download", headers=patient_headers).json()["url"]
    path = url.split("testserver", 1)[1]
    token = path.rsplit("/", 1)[1]

    def broken(key):
        raise OSError("disk gone")

    monkeypatch.setattr(storage, "open_stream", broken)
    with caplog.at_level(logging.ERROR):
        assert Client(raise_request_exception=False).get(path).status_code == 500
    assert caplog.records and not [r for r in caplog.records if token in r.getMessage()]


def test_uploads_and_download_links_are_rate_limited(api, patient_headers, clamd_on, settings):
    from tests.records.conftest import upload

    settings.ACCOUNT_RATE_LIMITS = {
        **settings.ACCOUNT_RATE_LIMITS, "records_upload": "2/m/user", "records_link": "3/m/user",
    }  # fmt: skip
    first = upload(api, patient_headers).json()["id"]
    assert upload(api, patient_headers).status_code == 201
    refused = upload(api, {**patient_headers, "Accept-Language": "ar"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert refused.json()["error"]["code"] == "request.rate_limited"
    assert MedicalRecord.objects.count() == 2
    assert scan_record.call(first) == "clean"
    codes = [
        api.get(f"/api/v1/records/{first}/download", headers=patient_headers).status_code
        for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]


@pytest.mark.parametrize(
    "name, content, saved_as",
    [
        ("report.html", b"<html><script>alert(1)</script></html>\n", "report.html.txt"),
        ("notes.txt", b"fever since Monday\n", "notes.txt"),
        ("sheet.csv", b'=HYPERLINK("http://x.example")\n', "sheet.csv.txt"),
        ("scan.PDF", None, "scan.PDF"),
    ],
)
def test_a_file_downloads_under_a_name_that_says_what_it_is(
    api, patient_headers, clamd_on, name, content, saved_as
):
    """HTML passes as text (every UTF-8 text does): opened from the downloads folder as
    report.html it would run as a page."""
    from tests.records.conftest import PDF, upload

    r = upload(api, patient_headers, content or PDF, name)
    assert r.status_code == 201, r.json()
    assert scan_record.call(r.json()["id"]) == "clean"
    url = api.get(f"/api/v1/records/{r.json()['id']}/download", headers=patient_headers).json()[
        "url"
    ]
    got = api.get(url.split("testserver", 1)[1])
    assert got["Content-Disposition"].endswith(f'filename="{saved_as}"'), got["Content-Disposition"]


def test_object_storage_away_is_503_in_the_request_language_not_a_500(
    api, s3, patient_headers, settings
):
    from botocore.config import Config

    from tests.records.conftest import upload

    default = settings.STORAGES["default"]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            **default,
            "OPTIONS": {
                **default["OPTIONS"],
                "endpoint_url": "http://127.0.0.1:9",  # nothing listens there
                "client_config": Config(connect_timeout=1, retries={"max_attempts": 0}),
            },
        },
    }
    r = upload(api, {**patient_headers, "Accept-Language": "ar"})
    assert r.status_code == 503, r.content
    assert r.json()["error"]["code"] == "server.unavailable" and r["Retry-After"] == "30"
    assert not MedicalRecord.objects.exists()


def test_the_grants_list_leaves_out_a_doctor_whose_verification_was_withdrawn(
    api, patient, patient_headers
):
    from doctors.services import doctor_verify

    record_id = upload(api, patient_headers).json()["id"]
    kept, withdrawn = doctor(), doctor()
    for profile in (kept, withdrawn):
        r = api.post(
            f"/api/v1/records/{record_id}/grants", {"doctor_id": str(profile.user_id)},
            content_type="application/json", headers=patient_headers,
        )  # fmt: skip
        assert r.status_code == 201

    def listed() -> list[str]:
        r = api.get(f"/api/v1/records/{record_id}/grants", headers=patient_headers)
        return [g["doctor_id"] for g in r.json()["items"]]

    admin = make_user(role="admin")
    doctor_verify(actor=admin, doctor_id=withdrawn.id, decision="rejected", reason="licence")
    assert listed() == [str(kept.user_id)]  # as it has no access any more
    doctor_verify(actor=admin, doctor_id=withdrawn.id, decision="verified")
    assert listed() == [str(kept.user_id), str(withdrawn.user_id)]  # its grant works again


def _share(api, patient_headers, record_id, profile):
    r = api.post(
        f"/api/v1/records/{record_id}/grants", {"doctor_id": str(profile.user_id)},
        content_type="application/json", headers=patient_headers,
    )  # fmt: skip
    assert r.status_code == 201, r.json()


def test_a_closed_account_shares_no_file_and_its_erasure_revokes_every_grant(
    api, patient, patient_headers
):
    """Care ends when an account closes (``in_care``); so do a patient's grants, and an erased
    patient can no longer revoke them: the erasure does, audited."""
    from accounts.services import account_delete, user_set_active

    record_id = _record(api, patient_headers)
    profile = doctor()
    _share(api, patient_headers, record_id, profile)
    doc = headers_for(api, profile.user)
    assert api.get(f"/api/v1/records/{record_id}", headers=doc).status_code == 200
    admin = make_user(role="admin")

    user_set_active(actor=admin, user=patient, active=False)
    assert api.get(f"/api/v1/records/{record_id}", headers=doc).status_code == 404
    assert api.get(f"/api/v1/records/{record_id}/download", headers=doc).status_code == 404
    assert api.get("/api/v1/records", headers=doc).json()["items"] == []
    user_set_active(actor=admin, user=patient, active=True)  # reopened: the grant stands
    assert api.get(f"/api/v1/records/{record_id}", headers=doc).status_code == 200

    account_delete(user=patient)
    grant = patient.medical_records.get().grants.get()
    assert grant.revoked_at is not None
    event = AuditEvent.objects.get(action="records.revoked", target_id=record_id)
    assert event.data == {
        "doctor_id": str(profile.user_id),
        "erasure": True,
        "patient_id": str(patient.pk),
    }
    assert api.get(f"/api/v1/records/{record_id}", headers=doc).status_code == 404


def test_an_erased_doctors_grants_are_revoked(api, patient, patient_headers):
    from accounts.services import account_delete

    record_id = _record(api, patient_headers)
    erased, kept = doctor(), doctor()
    _share(api, patient_headers, record_id, erased)
    _share(api, patient_headers, record_id, kept)

    account_delete(user=erased.user)

    grants = api.get(f"/api/v1/records/{record_id}/grants", headers=patient_headers).json()
    assert [g["doctor_id"] for g in grants["items"]] == [str(kept.user_id)]
    assert (
        api.get(f"/api/v1/records/{record_id}", headers=headers_for(api, kept.user)).status_code
        == 200
    )
