"""Reviews and ratings: writes and reads.

The doctor's average is kept exact under concurrent reviews: the sum and the count are
updated with ``F()`` expressions in the same transaction as the review, so no review is lost
to a read-modify-write race; the average is derived (``DoctorProfile.rating``).
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import Role, User
from accounts.permissions import require_permission, require_role
from accounts.services import user_hold, user_hold_active
from audit.services import record
from bookings.models import Appointment, Review, Status
from bookings.services import doctor_still_verified
from core.errors import ApplicationError
from doctors.errors import DoctorNotFound
from doctors.index import listed_doctors
from doctors.models import DoctorProfile
from doctors.services import directory_changed
from realtime.services import notify


class NotReviewable(ApplicationError):
    code = "booking.not_reviewable"
    status = 409
    message = gettext_lazy("Only a completed appointment can be reviewed, once.")


class ReviewNotFound(ApplicationError):
    code = "booking.review_not_found"
    status = 404
    message = gettext_lazy("This review was not found.")


class ReviewClosed(ApplicationError):
    code = "booking.review_closed"
    status = 409
    message = gettext_lazy(
        "The author of this review deleted their account: it can no longer be replied to."
    )


class AlreadyReplied(ApplicationError):
    code = "booking.review_already_replied"
    status = 409
    message = gettext_lazy("You have already replied to this review: a review gets one reply.")


@transaction.atomic
def review_create(*, patient: User, appointment_id: Any, rating: int, text: str = "") -> Review:
    require_role(patient, Role.PATIENT)
    user_hold_active(patient)  # its text is not stored after an erasure of the account
    appointment = (
        Appointment.objects.select_related("doctor__user")
        .filter(id=appointment_id, patient=patient, status=Status.COMPLETED)
        .first()
    )
    if appointment is None:
        raise NotReviewable()
    # The doctor's account before their profile (the rating) and the notification, in the
    # order an erasure of it takes them: no deadlock with one.
    user_hold(appointment.doctor.user)
    try:
        with transaction.atomic():
            review = Review.objects.create(
                appointment=appointment,
                doctor=appointment.doctor,
                patient=patient,
                rating=rating,
                text=text,
            )
    except IntegrityError as exc:
        raise NotReviewable() from exc
    DoctorProfile.objects.filter(pk=appointment.doctor_id).update(
        rating_sum=F("rating_sum") + rating, rating_count=F("rating_count") + 1
    )
    directory_changed()
    notify(
        users=[appointment.doctor.user],
        kind="review.created",
        data={"review_id": str(review.id), "rating": rating},
        render=lambda user: (
            _("New review"),
            _("A patient rated you %(rating)s of 5.") % {"rating": rating},
        ),
    )
    return review


@transaction.atomic
def review_reply(*, doctor_user: User, review_id: Any, text: str) -> Review:
    require_role(doctor_user, Role.DOCTOR)
    user_hold_active(doctor_user)
    doctor_still_verified(doctor_user)  # a doctor whose verification was withdrawn: no reply
    reviews = Review.objects.filter(id=review_id, doctor__user=doctor_user)
    patient_id = reviews.values_list("patient_id", flat=True).first()
    if patient_id is None:
        raise ReviewNotFound()
    # A reply may name the patient: none after their account's erasure (which blanks them).
    # The patient's row is held before the review is locked, in the order erasure takes them.
    if user_hold(User(pk=patient_id))[1]:
        raise ReviewClosed()
    review = reviews.select_for_update(of=("self",)).first()  # not the doctor's rows it joins
    if review is None:
        raise ReviewNotFound()
    if review.replied_at is not None:
        raise AlreadyReplied()
    review.reply, review.replied_at = text, timezone.now()
    review.save(update_fields=["reply", "replied_at"])
    directory_changed()
    return review


@transaction.atomic
def review_hidden_set(*, actor: User, review_id: Any, hidden: bool, reason: str) -> Review:
    """Hide a review, or show one hidden by mistake again: its rating leaves or rejoins the
    doctor's average in the same transaction, once (a review already so is left as it is),
    audited (``review.hidden``, ``review.shown``) with the reason."""
    require_permission(actor, "bookings.change_review")
    reviews = Review.objects.filter(id=review_id)
    doctor_user_id = reviews.values_list("doctor__user_id", flat=True).first()
    if doctor_user_id is None:
        raise ReviewNotFound()
    # The doctor's account, then the review, then their profile: the order an erasure of
    # the doctor takes them (no deadlock with one).
    user_hold(User(pk=doctor_user_id))
    review = reviews.select_for_update(of=("self",)).first()
    if review is None:
        raise ReviewNotFound()
    if review.hidden != hidden:
        review.hidden = hidden
        review.save(update_fields=["hidden"])
        sign = -1 if hidden else 1
        DoctorProfile.objects.filter(pk=review.doctor_id).update(
            rating_sum=F("rating_sum") + sign * review.rating,
            rating_count=F("rating_count") + sign,
        )
        record(
            action="review.hidden" if hidden else "review.shown",
            actor_id=actor.pk,
            actor_role=actor.role,
            target_type="review",
            target_id=str(review.pk),
            data={"reason": reason},
        )
        directory_changed()
    return review


def reviews_public(*, doctor_id: Any) -> QuerySet[Review]:
    """A listed doctor's visible reviews (a doctor who is not listed: not found)."""
    if not listed_doctors().filter(pk=doctor_id).exists():
        raise DoctorNotFound()
    return Review.objects.filter(doctor_id=doctor_id, hidden=False).order_by("-created_at", "-id")
