from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.utils import timezone

from chat.models import Message
from records.models import AccessGrant, MedicalRecord, ScanStatus
from tests.chat.conftest import send
from tests.factories import make_user


def _record(patient: Any, status: str = ScanStatus.CLEAN, **extra: Any) -> MedicalRecord:
    return MedicalRecord.objects.create(
        patient=patient,
        uploaded_by=patient,
        category="lab_result",
        title="Blood count",
        file_name="result.pdf",
        storage_key=f"records/{uuid.uuid4()}",
        status=status,
        **extra,
    )


def test_a_clean_record_of_the_patient_is_attached(api, conversation, patient, patient_h, doc_h):
    record = _record(patient)
    r = send(api, patient_h, conversation, "my results", attachments=[str(record.pk)])
    assert r.status_code == 201, r.json()
    assert r.json()["attachments"] == [str(record.pk)]
    only_file = send(api, patient_h, conversation, "", attachments=[str(record.pk)])
    assert only_file.status_code == 201  # a file alone needs no text
    seen = api.get(f"/api/v1/conversations/{conversation.pk}/messages", headers=doc_h).json()
    assert seen["items"][0]["attachments"] == [str(record.pk)]


def _not_clean(patient: Any) -> MedicalRecord:
    return _record(patient, status=ScanStatus.PENDING)


def _deleted(patient: Any) -> MedicalRecord:
    return _record(patient, deleted_at=timezone.now())


def _someone_elses_even_if_shared(patient: Any) -> MedicalRecord:
    return _record(make_user())


@pytest.mark.parametrize("make", [_not_clean, _deleted, _someone_elses_even_if_shared])
def test_an_attachment_the_doctor_may_not_see_is_refused(
    api, conversation, patient, doc, patient_h, doc_h, make
):
    record = make(patient)
    AccessGrant.objects.create(record=record, doctor=doc, granted_by=record.patient)
    for headers in (patient_h, doc_h):
        r = send(api, headers, conversation, "see this", attachments=[str(record.pk)])
        assert r.status_code == 422, r.json()
        assert r.json()["error"]["code"] == "chat.attachment_not_allowed"
    unknown = send(api, patient_h, conversation, "x", attachments=[str(uuid.uuid4())])
    assert unknown.json()["error"]["code"] == "chat.attachment_not_allowed"
    assert not Message.objects.exists()


def test_at_most_five_attachments(api, conversation, patient, patient_h):
    ids = [str(_record(patient).pk) for _ in range(6)]
    r = send(api, patient_h, conversation, "many", attachments=ids)
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid"
    assert not Message.objects.exists()
