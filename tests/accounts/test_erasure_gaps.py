"""What erasure reaches beyond the account's row and profile: stored request answers, second
factors, pending invitations, the calendar feed's secret, replies to reviews, an erased
doctor's clinic pins, delivery preferences and the admin site's change log; each time the
other people's rows stay as they were. And the export shows each of these while it exists."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import selectors
from accounts.models import Invitation, Role, User
from accounts.services import account_delete, invitation_create
from audit.models import AuditEvent
from bookings import calendar
from bookings.models import Appointment, CalendarFeed, Review
from bookings.reviews import review_create, review_reply
from core.models import IdempotencyRecord
from doctors import geo
from doctors.models import Clinic, DirectoryEntry
from realtime.models import DeliveryPreference
from tests.bookings.conftest import completed
from tests.doctors.factories import doctor, specialty
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def _visit(profile, patient) -> Appointment:
    return completed(profile, patient, days_ago=2)


def test_the_users_stored_request_answers_go_and_others_stay():
    patient, other = make_user(), make_user()
    for who in (patient, other):
        answer: Any = {"reason": f"chest pain of {who.pk}"}  # stored as encrypted JSON
        IdempotencyRecord.objects.create(
            user=who, key="k1", request_hash="0" * 64, status=201, body=answer
        )

    account_delete(user=patient)

    assert not IdempotencyRecord.objects.filter(user=patient).exists()
    kept = IdempotencyRecord.objects.get(user=other)
    assert kept.body == {"reason": f"chest pain of {other.pk}"}


def test_second_factor_devices_go_audited_and_others_stay():
    staff, other = make_user(role=Role.HELPER), make_user(role=Role.ADMIN)
    mine = [
        TOTPDevice.objects.create(user=staff, name="phone", confirmed=True),
        TOTPDevice.objects.create(user=staff, name="tablet", confirmed=False),
    ]
    theirs = TOTPDevice.objects.create(user=other, name="phone", confirmed=True)

    account_delete(user=staff, actor=other)

    assert not TOTPDevice.objects.filter(user=staff).exists()
    assert list(TOTPDevice.objects.filter(user=other)) == [theirs]
    removals = AuditEvent.objects.filter(action="auth.totp_removed").order_by("id")
    assert [(e.actor_id, e.target_id, e.data) for e in removals] == [
        (other.pk, str(staff.pk), {"device_id": d.pk, "confirmed": d.confirmed, "erasure": True})
        for d in mine
    ]


def test_a_pending_invitation_for_the_users_address_goes_and_others_stay():
    admin = make_user(role=Role.ADMIN)
    patient = make_user(email="mona@example.com")
    other = make_user(email="xmona@example.com")
    mine, _ = invitation_create(created_by=admin, email="Mona@example.com")
    theirs, _ = invitation_create(created_by=admin, email="xmona@example.com")
    open_one, _ = invitation_create(created_by=admin)

    account_delete(user=patient)

    assert not Invitation.objects.filter(pk=mine.pk).exists()
    assert Invitation.objects.get(pk=theirs.pk).email == other.email
    assert Invitation.objects.filter(pk=open_one.pk).exists()


def test_the_calendar_feed_secret_goes_and_the_old_url_stays_dead(api):
    patient, other = make_user(), make_user()
    mine = f"/calendar/{calendar.feed_token_rotate(user=patient)}.ics"
    theirs = f"/calendar/{calendar.feed_token_rotate(user=other)}.ics"
    assert api.get(mine).status_code == 200

    account_delete(user=patient)

    assert not CalendarFeed.objects.filter(user=patient).exists()
    assert api.get(mine).status_code == 404
    # Even were the account reactivated by hand, the old secret is nobody's any more.
    User.objects.filter(pk=patient.pk).update(is_active=True)
    assert api.get(mine).status_code == 404
    assert api.get(theirs).status_code == 200


def test_replies_to_the_erased_patients_reviews_go_and_others_stay(api):
    profile = doctor()
    patient, other = make_user(), make_user()
    reviews = {}
    for who, text in ((patient, "Dr. knew my family"), (other, "Very kind")):
        visit = _visit(profile, who)
        reviews[who.pk] = review_create(patient=who, appointment_id=visit.id, rating=5, text=text)
    review_reply(
        doctor_user=profile.user, review_id=reviews[patient.pk].id, text="Thank you, Mrs Said"
    )
    review_reply(doctor_user=profile.user, review_id=reviews[other.pk].id, text="Thank you!")

    account_delete(user=patient)

    erased = Review.objects.get(pk=reviews[patient.pk].pk)
    assert (erased.text, erased.reply, erased.rating) == ("", "", 5)
    assert erased.replied_at is not None  # no second reply to an erased person's review
    kept = Review.objects.get(pk=reviews[other.pk].pk)
    assert (kept.text, kept.reply) == ("Very kind", "Thank you!")
    page = api.get(f"/api/v1/doctors/{profile.id}/reviews").json()["items"]
    assert sorted((i["text"], i["reply"]) for i in page) == [("", ""), ("Very kind", "Thank you!")]


def test_an_erased_doctors_replies_go_and_other_doctors_stay():
    erased, other = doctor(), doctor()
    patient = make_user()
    replies = {}
    for profile in (erased, other):
        visit = _visit(profile, patient)
        review = review_create(patient=patient, appointment_id=visit.id, rating=4, text="Fine")
        replies[profile.pk] = review_reply(
            doctor_user=profile.user, review_id=review.id, text="Dr. Omar here, thanks"
        ).pk

    account_delete(user=erased.user)

    assert Review.objects.get(pk=replies[erased.pk]).reply == ""
    assert Review.objects.get(pk=replies[other.pk]).reply == "Dr. Omar here, thanks"
    # The patient's own review text is theirs, not the doctor's: it stays.
    assert Review.objects.get(pk=replies[erased.pk]).text == "Fine"


def test_an_erased_doctors_clinic_pins_are_rounded_to_the_city_and_others_stay():
    cardiology = specialty()
    erased = doctor(lat=30.04447, lng=31.23573, specialties=(cardiology,))
    other = doctor(lat=30.04447, lng=31.23573, specialties=(cardiology,))
    _visit(erased, make_user())  # a past appointment: the clinic itself stays

    account_delete(user=erased.user)

    clinic = Clinic.objects.get(doctor=erased)
    assert (clinic.name, clinic.address, clinic.city) == ("", "", "Cairo")
    assert (clinic.latitude, clinic.longitude) == (30.0, 31.2)
    cells = geo.cells_for(30.0, 31.2)
    assert {r: getattr(clinic, geo.column_for(r)) for r in geo.RESOLUTIONS} == cells
    [entry] = DirectoryEntry.objects.filter(doctor=erased)
    assert (entry.latitude, entry.longitude, entry.h3_r7, entry.listed) == (
        30.0,
        31.2,
        cells[7],
        False,
    )
    kept = Clinic.objects.get(doctor=other)
    assert (kept.latitude, kept.longitude) == (30.04447, 31.23573)
    assert kept.h3_r7 == geo.cells_for(30.04447, 31.23573)[7]
    [entry] = DirectoryEntry.objects.filter(doctor=other)
    assert (entry.latitude, entry.listed) == (30.04447, True)


def test_delivery_preferences_go_and_others_stay():
    patient, other = make_user(), make_user()
    for who in (patient, other):
        DeliveryPreference.objects.create(user=who, kind="booking.confirmed", channels=["sms"])

    account_delete(user=patient)

    assert not DeliveryPreference.objects.filter(user=patient).exists()
    assert DeliveryPreference.objects.get(user=other).channels == ["sms"]


def test_the_admin_log_no_longer_names_the_account_by_address_or_phone():
    from allauth.account.models import EmailAddress

    admin = make_user(role=Role.ADMIN)
    patient = make_user(email="mona@example.com", phone="+201001112223", phone_verified=True)
    EmailAddress.objects.create(user=patient, email="mona.said@work.example", verified=True)
    other = make_user(email="xmona@example.com")
    users = ContentType.objects.get_for_model(User)

    def log(user: User, repr_: str, message: list) -> LogEntry:
        return LogEntry.objects.create(
            user=admin,
            content_type=users,
            object_id=str(user.pk),
            object_repr=repr_,
            action_flag=CHANGE,
            change_message=json.dumps(message),
        )

    about_her = log(
        patient,
        "MONA@example.com",
        [{"added": {"name": "email address", "object": "mona.said@work.example"}}],
    )
    by_phone = log(patient, "+201001112223", [{"changed": {"fields": ["Phone"]}}])
    lookalike = log(
        other,
        "xmona@example.com",
        [{"added": {"name": "email address", "object": "mona@example.com.eg"}}],
    )
    before = (lookalike.object_repr, lookalike.change_message)

    account_delete(user=patient)

    about_her.refresh_from_db()
    assert about_her.object_repr == str(patient.pk)
    assert json.loads(about_her.change_message) == [
        {"added": {"name": "email address", "object": str(patient.pk)}}
    ]
    by_phone.refresh_from_db()
    assert (by_phone.object_repr, by_phone.change_message) == (
        str(patient.pk),
        json.dumps([{"changed": {"fields": ["Phone"]}}]),
    )
    assert about_her.action_flag == CHANGE and about_her.user_id == admin.pk
    lookalike.refresh_from_db()
    assert (lookalike.object_repr, lookalike.change_message) == before


def test_the_export_shows_second_factors_the_invitation_and_the_calendar_feed():
    admin = make_user(role=Role.ADMIN)
    staff = make_user(role=Role.HELPER)
    TOTPDevice.objects.create(user=staff, name="work phone", confirmed=True)
    invitation, _ = invitation_create(created_by=admin, email="dr@example.com")
    dr = make_user(role=Role.DOCTOR, email="dr@example.com")
    Invitation.objects.filter(pk=invitation.pk).update(used_by=dr, used_at=timezone.now())
    calendar.feed_token_rotate(user=dr)

    data = selectors.user_export(user=staff)
    [device] = data["second_factor_devices"]
    assert (device["kind"], device["name"], device["confirmed"]) == (
        "otp_totp.totpdevice",
        "work phone",
        True,
    )
    assert device["created_at"] is not None and "key" not in device
    assert data["invitation"] is None
    assert data["bookings"]["calendar_feed"] is None

    data = selectors.user_export(user=dr)
    assert data["second_factor_devices"] == []
    assert data["invitation"]["email"] == "dr@example.com"
    feed = CalendarFeed.objects.get(user=dr)
    assert data["bookings"]["calendar_feed"] == {"created_at": feed.created_at.isoformat()}
    assert feed.token_digest not in json.dumps(data)


def test_the_admin_log_no_longer_names_the_account_by_an_address_it_had_before():
    """Entries written while the account had another address (since changed) are about it
    all the same: the account's own, its addresses' (by the ids its audited address changes
    name) and its removed second factors' all print as its id afterwards."""
    from allauth.account.models import EmailAddress
    from django.contrib.admin.models import DELETION

    from accounts import adapter
    from accounts.services import totp_devices_delete

    admin = make_user(role=Role.ADMIN)
    patient = make_user(email="mona.old@example.com", phone="+201001112223", phone_verified=True)
    other = make_user(email="someone@example.com")
    old = EmailAddress.objects.get(user=patient)
    adapter.email_added(sender=EmailAddress, request=None, email_address=old)  # as allauth's flow

    def log(model: Any, pk: Any, repr_: str, flag: int = CHANGE, message: Any = ()) -> LogEntry:
        return LogEntry.objects.create(
            user=admin,
            content_type=ContentType.objects.get_for_model(model),
            object_id=str(pk),
            object_repr=repr_,
            action_flag=flag,
            change_message=json.dumps(list(message)),
        )

    as_user = log(
        User,
        patient.pk,
        "mona.old@example.com",
        message=[{"added": {"name": "note", "object": "for mona.old@example.com"}}],
    )
    as_address = log(EmailAddress, old.pk, "mona.old@example.com")
    device = TOTPDevice.objects.create(user=patient, name="phone", confirmed=False)
    as_device = log(TOTPDevice, device.pk, str(device), DELETION)
    totp_devices_delete(actor=admin, devices=[device])
    others = [
        log(User, other.pk, "someone@example.com"),
        log(EmailAddress, EmailAddress.objects.get(user=other).pk, "someone@example.com"),
    ]
    before = [(e.object_repr, e.change_message) for e in others]
    # Later she moves to another address and number.
    old.delete()
    EmailAddress.objects.create(user=patient, email="mona.new@example.com", primary=True)
    User.objects.filter(pk=patient.pk).update(email="mona.new@example.com", phone="+201009998887")

    account_delete(user=User.objects.get(pk=patient.pk))

    for entry in (as_user, as_address, as_device):
        entry.refresh_from_db()
        assert entry.object_repr == str(patient.pk)
        assert "mona" not in entry.change_message
    assert json.loads(as_user.change_message) == [
        {"added": {"name": "note", "object": str(patient.pk)}}
    ]
    for entry in others:
        entry.refresh_from_db()
    assert [(e.object_repr, e.change_message) for e in others] == before
