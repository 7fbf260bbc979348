from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from django.core.files.storage import storages
from django.utils import timezone

from accounts.models import Role
from bookings.models import Appointment, Status
from tests.factories import bearer, login, make_user

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200


@pytest.fixture
def clamd_on(settings: Any, clamd_socket: str) -> str:
    settings.CLAMD_SOCKET = clamd_socket
    settings.CLAMD_HOST = ""
    return clamd_socket


@pytest.fixture
def s3(settings: Any, s3_endpoint: str) -> Iterator[Any]:
    """Django's default storage on the suite's S3 endpoint, in a bucket of this test."""
    bucket = f"records-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106
    )
    client.create_bucket(Bucket=bucket)
    settings.STORAGE_BACKEND = "s3"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "access_key": "test",
                "secret_key": "test",
                "location": "telemed",
                "default_acl": None,
                "querystring_auth": True,
                "file_overwrite": False,
                "object_parameters": {"ServerSideEncryption": "AES256"},
            },
        },
    }
    assert getattr(storages["default"], "bucket_name", None) == bucket
    client.bucket = bucket  # type: ignore[attr-defined]
    yield client


def keys(client: Any) -> list[str]:
    found = client.list_objects_v2(Bucket=client.bucket).get("Contents", [])
    return sorted(o["Key"] for o in found)


@pytest.fixture
def patient() -> Any:
    return make_user()


@pytest.fixture
def patient_headers(api: Any, patient: Any) -> dict[str, str]:
    return bearer(login(api, patient.email)["access"])


def headers_for(api: Any, user: Any) -> dict[str, str]:
    return bearer(login(api, user.email)["access"])


def in_care_with(doctor_profile: Any, patient: Any) -> Appointment:
    """A confirmed appointment yesterday: the doctor and the patient are in care together."""
    start = timezone.now() - timedelta(days=1)
    return Appointment.objects.create(
        doctor=doctor_profile,
        patient=patient,
        start=start,
        end=start + timedelta(minutes=30),
        mode="video",
        status=Status.CONFIRMED,
    )


def upload(
    api: Any,
    headers: dict[str, str],
    content: bytes = PDF,
    name: str = "result.pdf",
    **fields: str,
) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    data: dict[str, Any] = {"category": "lab_result", "title": "Blood count", **fields}
    if content is not None:
        data["file"] = SimpleUploadedFile(name, content, content_type="application/pdf")
    return api.post("/api/v1/records", data, headers=headers)


def doctor_user() -> Any:
    return make_user(role=Role.DOCTOR)


def scanned(record_id: str) -> str:
    """The scan task as a worker runs it, its transaction committed: the objects it deletes
    are deleted on commit, which the test's own transaction never reaches."""
    from django.test import TestCase

    from records.tasks import scan_record

    with TestCase.captureOnCommitCallbacks(execute=True):
        return str(scan_record.call(record_id))
