"""Erasure reaches the notifications: the erased user's own go, and those of the people they
dealt with no longer name them (nor do the e-mails still queued for them)."""

from __future__ import annotations

import uuid

import pytest
from django.core import mail

from accounts.services import account_delete
from bookings.services import appointment_book
from chat import services as chat
from realtime.deliveries import send_deliveries
from realtime.models import Delivery, Notification
from tests.bookings.conftest import doctor_with_hours, next_slot  # noqa: F401 (a fixture)
from tests.chat.conftest import in_care_with
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def _send(user, conversation, text="hello"):
    chat.message_send(
        user=user, conversation_id=conversation.pk, text=text, client_id=uuid.uuid4().hex
    )


def test_a_patients_erasure_unnames_them_in_the_doctors_notifications(doctor_with_hours):  # noqa: F811
    doctor = doctor_with_hours.user
    patient = make_user(first_name="Mona", last_name="Said")
    appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(), mode="in_person"
    )
    conversation, _ = chat.conversation_open(user=patient, other_id=doctor.pk)
    _send(patient, conversation)  # the doctor is told "New message from Mona Said"
    _send(doctor, conversation)  # the patient is told of the doctor's
    booked = Notification.objects.get(user=doctor, kind="booking.created")
    assert booked.body.startswith("Mona Said booked ")
    assert Notification.objects.get(user=doctor, kind="chat.unread").title == (
        "New message from Mona Said"
    )
    queued = Delivery.objects.get(notification=booked, channel="email", status="queued")
    assert Notification.objects.filter(user=patient).exists()

    account_delete(user=patient)

    assert not Notification.objects.filter(user=patient).exists()
    assert not Delivery.objects.filter(notification__user=patient).exists()
    booked.refresh_from_db()
    assert booked.title == "New appointment"
    assert booked.body.startswith("A patient booked ") and "Mona" not in booked.body
    assert booked.body.endswith(".") and len(booked.body) > len("A patient booked .")
    unread = Notification.objects.get(user=doctor, kind="chat.unread")
    assert (unread.title, unread.body) == (
        "New message",
        "Open the conversation to read your new messages.",
    )
    # The e-mail still queued for the doctor sends the rewritten text.
    send_deliveries.call([str(queued.id)])
    [message] = mail.outbox
    assert message.subject == "New appointment" and message.body == booked.body


def test_in_arabic_the_text_is_rewritten_in_arabic(doctor_with_hours):  # noqa: F811
    doctor = doctor_with_hours.user
    doctor.language = "ar"
    doctor.save(update_fields=["language"])
    patient = make_user(first_name="Mona", last_name="Said")
    appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(), mode="in_person"
    )
    conversation, _ = chat.conversation_open(user=patient, other_id=doctor.pk)
    _send(patient, conversation)
    booked = Notification.objects.get(user=doctor, kind="booking.created")
    assert booked.body.startswith("حجز Mona Said موعدًا")
    # Read in English since: rewritten in the language it was written in all the same.
    doctor.language = "en"
    doctor.save(update_fields=["language"])

    account_delete(user=patient)

    booked.refresh_from_db()
    assert booked.body.startswith("حجز مريض موعدًا") and "Mona" not in booked.body
    assert Notification.objects.get(user=doctor, kind="chat.unread").title == "رسالة جديدة"


def test_a_doctors_erasure_unnames_them_for_their_patients():
    from tests.doctors.factories import doctor as make_doctor

    doctor = make_doctor(first_name="Omar", last_name="Haddad").user
    patient = make_user(first_name="Mona")
    in_care_with(doctor, patient)
    conversation, _ = chat.conversation_open(user=patient, other_id=doctor.pk)
    _send(doctor, conversation)
    assert Notification.objects.get(user=patient, kind="chat.unread").title == (
        "New message from Omar Haddad"
    )
    # Another wording (stored before a change of text): the name is replaced where it is.
    Notification.objects.create(
        user=patient,
        seq=99,
        kind="chat.unread",
        title="Omar Haddad wrote to you",
        data={"conversation_id": str(conversation.pk), "seq": 1},
    )
    # Not about this conversation: left alone.
    Notification.objects.create(
        user=patient,
        seq=100,
        kind="chat.unread",
        title="Omar Haddad wrote to you",
        data={"conversation_id": str(uuid.uuid4()), "seq": 1},
    )

    account_delete(user=doctor)

    titles = sorted(Notification.objects.filter(user=patient).values_list("seq", "title"))
    assert titles == [
        (1, "New message"),
        (99, "a deleted account wrote to you"),
        (100, "Omar Haddad wrote to you"),
    ]
