"""Reviews: only after a completed appointment, once; exact ratings under concurrency."""

import threading
import uuid

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection, connections

from audit.models import AuditEvent
from bookings.models import Appointment
from bookings.reviews import review_create
from doctors.models import DoctorProfile
from realtime.models import Notification
from tests.bookings.conftest import completed
from tests.factories import bearer, login, make_user, post

pytestmark = pytest.mark.django_db


def test_patient_reviews_a_completed_appointment_once(api, doctor_with_hours):
    patient = make_user()
    appt = completed(doctor_with_hours, patient)
    headers = bearer(login(api, patient.email)["access"])
    r = post(
        api, f"/api/v1/appointments/{appt.id}/review", {"rating": 4, "text": "Very kind"}, **headers
    )
    assert r.status_code == 201, r.json()
    again = post(api, f"/api/v1/appointments/{appt.id}/review", {"rating": 5}, **headers)
    assert again.status_code == 409
    profile = DoctorProfile.objects.get(pk=doctor_with_hours.pk)
    assert (profile.rating, profile.rating_count) == (4.0, 1)
    assert Notification.objects.filter(user=doctor_with_hours.user, kind="review.created").exists()
    page = api.get(f"/api/v1/doctors/{doctor_with_hours.id}/reviews").json()
    assert [(i["rating"], i["text"]) for i in page["items"]] == [(4, "Very kind")]
    assert api.get(f"/api/v1/doctors/{doctor_with_hours.id}").json()["rating"] == 4.0


@pytest.mark.parametrize("status", ["confirmed", "cancelled", "no_show"])
def test_only_completed_appointments_can_be_reviewed(api, doctor_with_hours, status):
    patient = make_user()
    appt = completed(doctor_with_hours, patient)
    Appointment.objects.filter(pk=appt.pk).update(status=status)
    headers = bearer(login(api, patient.email)["access"])
    r = post(api, f"/api/v1/appointments/{appt.id}/review", {"rating": 5}, **headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "booking.not_reviewable"


def test_someone_elses_appointment_and_bad_ratings(api, doctor_with_hours):
    appt = completed(doctor_with_hours, make_user())
    stranger = make_user()
    headers = bearer(login(api, stranger.email)["access"])
    assert (
        post(api, f"/api/v1/appointments/{appt.id}/review", {"rating": 5}, **headers).status_code
        == 409
    )
    for bad in (0, 6, "5", True):
        assert (
            post(
                api, f"/api/v1/appointments/{appt.id}/review", {"rating": bad}, **headers
            ).status_code
            == 422
        )


def test_doctor_replies_once_and_admin_hides_audited(api, doctor_with_hours):
    patient = make_user()
    review = review_create(
        patient=patient, appointment_id=completed(doctor_with_hours, patient).id, rating=2
    )
    doc = bearer(login(api, doctor_with_hours.user.email)["access"])
    assert (
        post(
            api, f"/api/v1/reviews/{review.id}/reply", {"text": "Sorry to hear"}, **doc
        ).status_code
        == 200
    )
    r = post(api, f"/api/v1/reviews/{review.id}/reply", {"text": "Again"}, **doc)
    assert r.status_code == 409 and r.json()["error"]["code"] == "booking.review_already_replied"
    helper = make_user(role="helper")
    helper_headers = bearer(login(api, helper.email)["access"])
    assert (
        post(
            api, f"/api/v1/admin/reviews/{review.id}/hide", {"reason": "abuse"}, **helper_headers
        ).status_code
        == 403
    )
    group = Group.objects.create(name="moderators")
    group.permissions.add(Permission.objects.get(codename="change_review"))
    helper.groups.add(group)
    blank = post(api, f"/api/v1/admin/reviews/{review.id}/hide", {"reason": "  "}, **helper_headers)
    assert blank.status_code == 422 and "reason" in blank.json()["error"]["fields"]
    assert (
        post(
            api, f"/api/v1/admin/reviews/{review.id}/hide", {"reason": "abuse"}, **helper_headers
        ).status_code
        == 200
    )
    assert api.get(f"/api/v1/doctors/{doctor_with_hours.id}/reviews").json()["items"] == []
    assert DoctorProfile.objects.get(pk=doctor_with_hours.pk).rating_count == 0
    assert AuditEvent.objects.filter(action="review.hidden", target_id=str(review.id)).exists()
    # Hidden twice: counted out once.
    again = post(api, f"/api/v1/admin/reviews/{review.id}/hide", {"reason": "x"}, **helper_headers)
    assert again.status_code == 200
    assert DoctorProfile.objects.get(pk=doctor_with_hours.pk).rating_count == 0


def test_a_review_hidden_by_mistake_is_shown_again_and_counted_once(api, doctor_with_hours):
    patient = make_user()
    review = review_create(
        patient=patient, appointment_id=completed(doctor_with_hours, patient).id, rating=4
    )
    admin = bearer(login(api, make_user(role="admin").email)["access"])
    url = f"/api/v1/admin/reviews/{review.id}"
    assert post(api, f"{url}/hide", {"reason": "reported"}, **admin).status_code == 200
    shown = post(api, f"{url}/show", {"reason": "the report was wrong"}, **admin)
    assert shown.status_code == 200, shown.json()
    review.refresh_from_db()
    assert review.hidden is False
    assert post(api, f"{url}/show", {"reason": "twice"}, **admin).status_code == 200
    profile = DoctorProfile.objects.get(pk=doctor_with_hours.pk)
    assert (profile.rating_count, profile.rating_sum) == (1, 4)
    listed = api.get(f"/api/v1/doctors/{doctor_with_hours.id}/reviews").json()["items"]
    assert [r["id"] for r in listed] == [str(review.id)]
    event = AuditEvent.objects.get(action="review.shown", target_id=str(review.id))
    assert event.data == {"reason": "the report was wrong"}
    # Someone without the permission: 403, nothing changes.
    patient_headers = bearer(login(api, patient.email)["access"])
    r = post(api, f"{url}/hide", {"reason": "mine"}, **patient_headers)
    assert r.status_code == 403
    r = post(api, "/api/v1/admin/reviews/00000000-0000-0000-0000-000000000000/show",
             {"reason": "nobody's"}, **admin)  # fmt: skip
    assert r.status_code == 404


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers on PostgreSQL")
def test_average_stays_exact_under_concurrent_reviews(doctor_with_hours):
    pairs = []
    for i in range(20):
        patient = make_user()
        pairs.append((patient, completed(doctor_with_hours, patient, days_ago=i + 1), 1 + i % 5))
    barrier = threading.Barrier(len(pairs))

    def write(patient, appointment, rating):
        try:
            barrier.wait(timeout=30)
            review_create(patient=patient, appointment_id=appointment.id, rating=rating)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=p) for p in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    profile = DoctorProfile.objects.get(pk=doctor_with_hours.pk)
    assert profile.rating_count == 20
    assert profile.rating_sum == sum(r for _, _, r in pairs)


def test_a_blank_reply_is_refused_and_reviews_of_an_unlisted_doctor_are_not_found(
    api, doctor_with_hours
):
    patient = make_user()
    review = review_create(
        patient=patient, appointment_id=completed(doctor_with_hours, patient).id, rating=4
    )
    doc = bearer(login(api, doctor_with_hours.user.email)["access"])
    r = post(api, f"/api/v1/reviews/{review.id}/reply", {"text": "   "}, **doc)
    assert r.status_code == 422  # a blank reply would use up the one reply
    r = post(api, f"/api/v1/reviews/{review.id}/reply", {"text": "  Thank you  "}, **doc)
    assert r.status_code == 200 and r.json()["reply"] == "Thank you"
    url = f"/api/v1/doctors/{doctor_with_hours.id}/reviews"
    assert len(api.get(url).json()["items"]) == 1
    user = doctor_with_hours.user
    user.is_active = False
    user.save()
    assert api.get(url).status_code == 404
    assert api.get(f"/api/v1/doctors/{uuid.uuid4()}/reviews").status_code == 404


def test_a_review_or_its_hiding_changes_the_cached_profile_and_its_etag(
    api, doctor_with_hours, django_capture_on_commit_callbacks
):
    url = f"/api/v1/doctors/{doctor_with_hours.id}"
    before = api.get(url)
    assert before.json()["rating_count"] == 0
    assert api.get(url, headers={"If-None-Match": before["ETag"]}).status_code == 304  # cached
    patient = make_user()
    with django_capture_on_commit_callbacks(execute=True):
        review = review_create(
            patient=patient, appointment_id=completed(doctor_with_hours, patient).id, rating=4
        )
    after = api.get(url)
    assert (after.json()["rating_count"], after["ETag"] != before["ETag"]) == (1, True)
    from bookings.reviews import review_hidden_set

    with django_capture_on_commit_callbacks(execute=True):
        review_hidden_set(
            actor=make_user(role="admin"), review_id=review.id, hidden=True, reason="abuse"
        )
    assert api.get(url).json()["rating_count"] == 0
