"""What bookings erases of a person whose account is erased (``accounts.services.account_delete``
runs :func:`account_erased` through ``ERASURE_HOOKS``, wired at the composition root)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from accounts.models import User
from accounts.services import ErasedPerson
from bookings.models import Appointment, Review, TimeOff
from realtime.services import notifications_unname

# The msgid of the booking.created notification that names the patient (appointment_book).
_BOOKED = gettext_noop("%(patient)s booked %(when)s.")


def _unnamed_booked(found: dict[str, str]) -> str:
    return _(_BOOKED) % {"patient": _("A patient"), "when": found["when"]}


def account_erased(user: User, person: ErasedPerson) -> None:
    """A doctor's time off reasons are cleared, and the replies they wrote to reviews; the
    texts of the patient's reviews go (they are public; the ratings stay, so the doctors'
    averages do not change), and the doctors' replies to them, which may name the patient
    (their date stays: no new reply is written to an erased person's review); and the
    doctors of their bookings, told "<patient> booked ...", are told it of "A patient". (The
    secret of their calendar feed went when the account was saved inactive: see
    ``bookings.receivers``.)"""
    TimeOff.objects.filter(doctor__user=user).exclude(reason="").update(reason="")
    Review.objects.filter(patient=user).exclude(text="", reply="").update(text="", reply="")
    Review.objects.filter(doctor__user=user).exclude(reply="").update(reply="")
    doctors, appointments = set(), set()
    for appointment_id, doctor_user_id in Appointment.objects.filter(patient=user).values_list(
        "id", "doctor__user_id"
    ):
        doctors.add(doctor_user_id)
        appointments.add(str(appointment_id))
    notifications_unname(
        kind="booking.created",
        key="appointment_id",
        recipient_ids=doctors,
        ids=appointments,
        name=person.full_name,
        template=_BOOKED,
        unnamed=_unnamed_booked,
    )
