"""iCalendar (.ics) for calendar apps: a per-user secret feed URL and one file per appointment."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from icalendar import Calendar, Event

from accounts.models import User
from accounts.services import user_hold_active
from audit.services import record
from bookings.models import Appointment, CalendarFeed, Status

TOKEN_BYTES = 32
# What secrets.token_urlsafe(TOKEN_BYTES) gives: anything else is no token of ours.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")

# Every appointment stays in the feed: one that will not take place says CANCELLED (a
# calendar that imported it must learn so, not lose it); a no-show keeps its booked time.
_EVENT_STATUS = {
    Status.HELD: "TENTATIVE",
    Status.PENDING: "TENTATIVE",
    Status.CONFIRMED: "CONFIRMED",
    Status.COMPLETED: "CONFIRMED",
    Status.NO_SHOW: "CONFIRMED",
    Status.CANCELLED: "CANCELLED",
    Status.REJECTED: "CANCELLED",
}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def feed_token_rotate(*, user: User, ip: str | None = None, user_agent: str = "") -> str:
    """A new secret for the user's feed; the previous URL stops working at once. Only its
    digest is stored: the token returned here is the only time anyone sees it. Under the
    user's row (refused if the account is closed): a closing of the account waits for the
    new feed and deletes it, instead of missing it (the URL alive again once reopened).
    Audited (``calendar.feed_rotated``: a new credential to the user's appointments, from
    where; never the token)."""
    user_hold_active(user)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    _feed, created = CalendarFeed.objects.update_or_create(
        user=user, defaults={"token_digest": _digest(token)}
    )
    record(
        action="calendar.feed_rotated",
        actor_id=user.pk,
        actor_role=user.role,
        target_type="user",
        target_id=str(user.pk),
        ip=ip,
        user_agent=user_agent,
        data={"first": created},
    )
    return token


def feed_owner(token: str) -> User | None:
    """The active owner of the feed of ``token``. A token not of our shape (a NUL byte, a
    character PostgreSQL refuses, another length) is nobody's, without asking the database."""
    if not _TOKEN_SHAPE.fullmatch(token):
        return None
    feed = CalendarFeed.objects.select_related("user").filter(token_digest=_digest(token)).first()
    return feed.user if feed and feed.user.is_active else None


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def render(
    appointments: Iterable[Appointment], *, viewer: User, language: str | None = None
) -> bytes:
    """Events carry no health information: no reason, no notes (a calendar is not a chart).
    Their text is in ``language``, by default the active one (the request's, or the user's
    saved language when the request names none: see ``accounts.auth``)."""
    cal = Calendar()
    cal.add("prodid", "-//Telemed//Appointments//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", "Telemed")
    with translation.override(language or translation.get_language()):
        for a in appointments:
            cal.add_component(_event(a, viewer=viewer))
    return cal.to_ical()


def _event(a: Appointment, *, viewer: User) -> Event:
    event = Event()
    event.add("uid", f"{a.id}@telemed")
    other = a.patient if viewer.pk == a.doctor.user_id else a.doctor.user
    event.add("summary", f"Telemed: {other.full_name or _('appointment')} ({a.get_mode_display()})")
    event.add("dtstart", a.start)
    event.add("dtend", a.end)
    # Every save of an appointment moves updated_at: its whole seconds since creation give a
    # SEQUENCE that rises with each change (a cancellation included), with no query.
    event.add("sequence", max(0, int((a.updated_at - a.created_at).total_seconds())))
    # RFC 5545 3.8.7.2: in an object without METHOD, DTSTAMP is when the event was last
    # revised in the store, in UTC.
    event.add("dtstamp", _utc(a.updated_at))
    event.add("last-modified", _utc(a.updated_at))
    event.add("created", _utc(a.created_at))
    event.add("status", _EVENT_STATUS[Status(a.status)])
    if a.clinic is not None:
        event.add("location", f"{a.clinic.name}, {a.clinic.address}, {a.clinic.city}")
    return event


def feed_appointments(user: User, *, now: datetime | None = None) -> list[Appointment]:
    """The user's appointments nearest to ``now``, at most ``CALENDAR_FEED_LIMIT``: those not
    yet ended, soonest first, then the most recently started of the past. Two queries."""
    limit = getattr(settings, "CALENDAR_FEED_LIMIT", 500)
    now = now or timezone.now()
    qs = Appointment.objects.select_related("doctor__user", "patient", "clinic")
    qs = qs.filter(doctor__user=user) if user.role == "doctor" else qs.filter(patient=user)
    upcoming = list(qs.filter(end__gt=now).order_by("start", "id")[:limit])
    if len(upcoming) >= limit:
        return upcoming
    return upcoming + list(
        qs.filter(end__lte=now).order_by("-start", "-id")[: limit - len(upcoming)]
    )
