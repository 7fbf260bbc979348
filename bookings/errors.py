from django.utils.translation import gettext_lazy as _

from core.errors import ApplicationError


class SlotUnavailable(ApplicationError):
    code = "booking.slot_unavailable"
    status = 422
    message = _("This time is not bookable. Choose one of the doctor's free slots.")


class SlotTaken(ApplicationError):
    code = "booking.slot_taken"
    status = 409
    message = _("This time has just been booked. Please choose another.")


class DoctorNotBookable(ApplicationError):
    code = "booking.doctor_not_bookable"
    status = 422
    message = _("This doctor cannot be booked at the moment.")


class AppointmentNotFound(ApplicationError):
    code = "booking.not_found"
    status = 404
    message = _("This appointment was not found.")


class TransitionNotAllowed(ApplicationError):
    code = "booking.transition_not_allowed"
    status = 409
    message = _("This appointment cannot be changed this way now.")


class CancellationTooLate(ApplicationError):
    code = "booking.cancellation_too_late"
    status = 409
    message = _("It is too late to cancel this appointment online. Please contact the clinic.")


class InvalidRange(ApplicationError):
    code = "booking.invalid_range"
    status = 422
    message = _("The date range is not valid (at most 62 days, start before end).")


class NotVerified(ApplicationError):
    code = "booking.doctor_not_verified"
    status = 403
    message = _("Your profile must be verified before you can publish availability.")
    # Accepting, completing, marking a no-show, replying to a review (a doctor whose
    # verification was withdrawn may still reject a request or cancel: that frees the patient).
    to_see_patients = _(
        "Your profile must be verified before you can accept or conclude appointments or reply "
        "to reviews."
    )


class PatientBusy(ApplicationError):
    code = "booking.patient_busy"
    status = 409
    message = _("You already have an appointment at this time.")
    to_the_doctor = _("The patient already has an appointment at this time.")  # moving it


class PatientNotBookable(ApplicationError):
    code = "booking.patient_not_bookable"
    status = 422
    message = _("This patient's account is closed: their appointments cannot be moved.")


class HoldNotMovable(ApplicationError):
    code = "booking.hold_not_movable"
    status = 409
    message = _("A slot held for payment cannot be moved. Cancel it and book another time.")


class HoldExpired(ApplicationError):
    code = "booking.hold_expired"
    status = 409
    message = _("The time held for this payment has run out: the slot was released.")


class HoursNotFound(ApplicationError):
    code = "booking.hours_not_found"
    status = 404
    message = _("These hours or this time off were not found.")


class TimeOffConflict(ApplicationError):
    code = "booking.time_off_conflict"
    status = 409
    message = _(
        "Appointments fall in this time off: cancel or move them first (their patients are told)."
    )


class TooManyUpcoming(ApplicationError):
    code = "booking.too_many_upcoming"
    status = 409
    message = _(
        "You have as many upcoming appointments as can be booked. Cancel one, or wait until one "
        "has taken place."
    )
    to_the_doctor = _(  # a doctor moving an appointment that ended unmarked
        "The patient has as many upcoming appointments as can be booked: this one cannot be "
        "moved ahead."
    )


class AppointmentOver(ApplicationError):
    code = "booking.already_over"
    status = 409
    message = _("This appointment has already ended: it can no longer be cancelled.")
    to_the_doctor = _(  # an appointment the doctor has yet to mark
        "This appointment has already ended: mark it completed or a no-show instead of "
        "cancelling it."
    )
