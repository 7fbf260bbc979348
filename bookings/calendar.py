"""iCalendar (.ics) for calendar apps: a per-user secret feed URL and one file per appointment."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext as _
from icalendar import Calendar, Event

from accounts.models import User
from bookings.models import ACTIVE, Appointment, CalendarFeed, Status


@transaction.atomic
def feed_token_rotate(*, user: User) -> str:
    """A new secret for the user's feed; the previous URL stops working at once."""
    token = secrets.token_urlsafe(32)
    CalendarFeed.objects.update_or_create(user=user, defaults={"token": token})
    return token


def feed_owner(token: str) -> User | None:
    feed = CalendarFeed.objects.select_related("user").filter(token=token).first()
    return feed.user if feed and feed.user.is_active else None


def render(appointments: Iterable[Appointment], *, viewer: User) -> bytes:
    """Events carry no health information: no reason, no notes (a calendar is not a chart)."""
    cal = Calendar()
    cal.add("prodid", "-//Telemed//Appointments//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", "Telemed")
    for a in appointments:
        event = Event()
        event.add("uid", f"{a.id}@telemed")
        other = a.patient if viewer.pk == a.doctor.user_id else a.doctor.user
        with translation.override(viewer.language):  # a calendar app sends no language
            summary = f"Telemed: {other.full_name or _('appointment')} ({a.get_mode_display()})"
        event.add("summary", summary)
        event.add("dtstart", a.start)
        event.add("dtend", a.end)
        event.add("dtstamp", a.updated_at)
        event.add(
            "status",
            "CANCELLED"
            if a.status in (Status.CANCELLED, Status.REJECTED)
            else "TENTATIVE"
            if a.status in (Status.HELD, Status.PENDING)
            else "CONFIRMED",
        )
        if a.clinic is not None:
            event.add("location", f"{a.clinic.name}, {a.clinic.address}, {a.clinic.city}")
        cal.add_component(event)
    return cal.to_ical()


def feed_appointments(user: User) -> Iterable[Appointment]:
    qs = Appointment.objects.select_related("doctor__user", "patient", "clinic").filter(
        status__in=[*ACTIVE, Status.COMPLETED, Status.CANCELLED]
    )
    qs = qs.filter(doctor__user=user) if user.role == "doctor" else qs.filter(patient=user)
    return qs.order_by("-start")[: getattr(settings, "CALENDAR_FEED_LIMIT", 500)]
