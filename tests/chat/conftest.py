from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from bookings.models import Appointment, Status
from chat import services
from chat.models import Conversation
from tests.doctors.factories import doctor
from tests.factories import make_user, post
from tests.records.conftest import headers_for

_hours = itertools.count(24)


def in_care_with(doctor_user: Any, patient: Any) -> Appointment:
    """A confirmed appointment some hours ago (each one at another time, so that a patient
    can be in care with several doctors): the two are in care together."""
    from datetime import timedelta

    from django.utils import timezone

    start = timezone.now() - timedelta(hours=next(_hours))
    return Appointment.objects.create(
        doctor=doctor_user.doctor_profile,
        patient=patient,
        start=start,
        end=start + timedelta(minutes=30),
        mode="video",
        status=Status.CONFIRMED,
    )


@pytest.fixture
def patient(db: Any) -> Any:
    return make_user(first_name="Mona", last_name="Patient")


@pytest.fixture
def doc(db: Any) -> Any:
    """A doctor's user account."""
    return doctor(first_name="Omar", last_name="Haddad").user


@pytest.fixture
def conversation(patient: Any, doc: Any) -> Conversation:
    in_care_with(doc, patient)
    return services.conversation_open(user=patient, other_id=doc.pk)[0]


@pytest.fixture
def patient_h(api: Any, patient: Any) -> dict[str, str]:
    return headers_for(api, patient)


@pytest.fixture
def doc_h(api: Any, doc: Any) -> dict[str, str]:
    return headers_for(api, doc)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[list[str], dict[str, Any]]]]:
    """What chat publishes, recorded after commit as ``(sorted user ids, event)``."""
    sent: list[tuple[list[str], dict[str, Any]]] = []

    def record(*, user_ids: Any, event: dict[str, Any]) -> None:
        ids = sorted(str(u) for u in user_ids)
        transaction.on_commit(lambda: sent.append((ids, event)))

    monkeypatch.setattr(services, "publish_on_commit", record)
    yield sent


def url(conversation: Any, tail: str = "") -> str:
    return f"/api/v1/conversations/{conversation.pk}{tail}"


def send(api: Any, headers: dict[str, str], conversation: Any, text: str = "hello", **extra: Any):
    body = {"client_id": extra.pop("client_id", uuid.uuid4().hex), "text": text, **extra}
    return post(api, url(conversation, "/messages"), body, **headers)
