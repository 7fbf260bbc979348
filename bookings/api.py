"""Free slots, booking and its transitions, and the doctor's availability."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Body, Field, Query, Router, Schema, Status
from pydantic import StrictBool, StringConstraints

from accounts.auth import AuthedRequest, jwt_auth
from audit.services import client_ip
from bookings import calendar, reviews, selectors, services
from bookings.errors import DoctorNotBookable, InvalidRange
from bookings.models import Appointment
from bookings.schemas import (
    AppointmentDetail,
    AppointmentOut,
    AppointmentPage,
    BookIn,
    ExtraHoursIn,
    ExtraHoursOut,
    ExtraHoursPage,
    ExtraHoursPatch,
    ReasonIn,
    RuleIn,
    RuleOut,
    RulePage,
    RulePatch,
    SlotsOut,
    TimeOffIn,
    TimeOffOut,
    TimeOffPage,
    TimeOffPatch,
)
from core.idempotency import IDEMPOTENCY_KEY, created_once, rendered, respond_once
from core.pagination import paginate
from core.responses import json_response
from core.schemas import InputSchema, IsoDate, IsoDatetime, TimeZoneName

router = Router(tags=["appointments"])
MAX_RANGE_DAYS = 62


class SlotsQuery(Schema):
    from_: IsoDate = Field(..., alias="from")
    to: IsoDate
    tz: TimeZoneName | None = None


@router.get(
    "/doctors/{doctor_id}/slots",
    response=SlotsOut,
    summary="Free slots between two dates, in a time zone",
)
def slots(request: HttpRequest, doctor_id: UUID, q: Query[SlotsQuery]) -> HttpResponse:
    doctor = selectors.bookable_doctor(doctor_id)
    if doctor is None:
        raise DoctorNotBookable()
    if q.to < q.from_ or (q.to - q.from_).days >= MAX_RANGE_DAYS:  # both days count
        raise InvalidRange(fields={"to": str(InvalidRange.message)})
    zone = ZoneInfo(q.tz) if q.tz else selectors.home_zone(doctor)
    start = datetime.combine(q.from_, time(0), tzinfo=zone)
    end = datetime.combine(q.to + timedelta(days=1), time(0), tzinfo=zone)
    found = selectors.doctor_slots(doctor=doctor, start=start, end=end)
    # Up to thousands of slots: built as plain JSON (core/responses.py), SlotsOut exactly.
    return json_response(
        {
            "time_zone": zone.key,
            "next": None,
            "items": [
                {
                    "start": s.start.astimezone(zone),
                    "end": s.end.astimezone(zone),
                    "start_utc": s.start,
                    "mode": s.mode,
                    "clinic_id": s.clinic_id,
                }
                for s in found
            ],
        }
    )


def _out(a: Appointment, *, reason: bool) -> dict[str, Any]:
    """The appointment's fields; its reason (protected health information) only with
    ``reason``: its parties' answers, and staff reading one appointment (audited by
    :func:`selectors.appointment_detail`), never staff lists (:func:`selectors.reasons_shown`)."""
    return {
        "id": a.id,
        "doctor_id": a.doctor_id,
        "doctor_name": a.doctor.user.full_name,
        "patient_id": a.patient_id,
        "patient_name": a.patient.full_name,
        "clinic_id": a.clinic_id,
        "mode": a.mode,
        "start": a.start,
        "end": a.end,
        "status": a.status,
        "reason": a.reason if reason else None,
        "hold_expires_at": a.hold_expires_at,
        "rescheduled_from": a.rescheduled_from_id,
    }


@router.post(
    "/appointments", response={201: AppointmentOut}, auth=jwt_auth, summary="Book a free slot"
)
def book(
    request: AuthedRequest,
    payload: BookIn,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Status | HttpResponse:
    def action() -> tuple[int, Any]:
        appointment = services.appointment_book(patient=request.auth, **payload.model_dump())
        return 201, _json(appointment)

    return respond_once(request, idempotency_key, payload.model_dump(mode="json"), action)


def _json(a: Appointment) -> Any:
    """The appointment's answer as JSON data (what an Idempotency-Key replays)."""
    return rendered(AppointmentOut, _out(a, reason=True))


class ListQuery(Schema):
    scope: str = Field("upcoming", pattern="^(upcoming|past)$")
    status: str = Field(
        "", pattern="^(|held|pending|confirmed|completed|no_show|cancelled|rejected)$"
    )
    cursor: str | None = Field(None, max_length=500)
    limit: int = Field(20, ge=1, le=100)


@router.get(
    "/appointments",
    response=AppointmentPage,
    auth=jwt_auth,
    summary="Upcoming or past appointments",
)
def appointments(request: AuthedRequest, q: Query[ListQuery]) -> dict[str, Any]:
    qs = selectors.appointment_list(viewer=request.auth, scope=q.scope, status=q.status)
    items, next_cursor = paginate(
        qs, field="start", cursor=q.cursor, limit=q.limit, descending=q.scope == "past"
    )
    return {
        "items": [_out(a, reason=selectors.reasons_shown(request.auth)) for a in items],
        "next": next_cursor,
    }


@router.get("/appointments/{appointment_id}", response=AppointmentDetail, auth=jwt_auth)
def appointment(request: AuthedRequest, appointment_id: UUID) -> dict[str, Any]:
    a = selectors.appointment_detail(
        viewer=request.auth,
        appointment_id=appointment_id,
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
    )
    return {**_out(a, reason=True), "history": list(a.history.all())}


# A body whose fields are all optional (a cancellation's reason): no body at all is fine.
NO_BODY_NEEDED = Body(None)


@router.post("/appointments/{appointment_id}/cancel", response=AppointmentOut, auth=jwt_auth)
def cancel(
    request: AuthedRequest,
    appointment_id: UUID,
    payload: ReasonIn | None = NO_BODY_NEEDED,
) -> dict[str, Any]:
    reason = payload.reason if payload is not None else ""
    return _out(
        services.appointment_cancel(
            user=request.auth, appointment_id=appointment_id, reason=reason
        ),
        reason=selectors.reasons_shown(request.auth),
    )


@router.post("/appointments/{appointment_id}/accept", response=AppointmentOut, auth=jwt_auth)
def accept(request: AuthedRequest, appointment_id: UUID) -> dict[str, Any]:
    return _out(
        services.appointment_decide(
            doctor_user=request.auth, appointment_id=appointment_id, accept=True
        ),
        reason=True,  # the doctor of the appointment
    )


@router.post("/appointments/{appointment_id}/reject", response=AppointmentOut, auth=jwt_auth)
def reject(request: AuthedRequest, appointment_id: UUID, payload: ReasonIn) -> dict[str, Any]:
    return _out(
        services.appointment_decide(
            doctor_user=request.auth,
            appointment_id=appointment_id,
            accept=False,
            reason=payload.reason,
        ),
        reason=True,  # the doctor of the appointment
    )


@router.post("/appointments/{appointment_id}/complete", response=AppointmentOut, auth=jwt_auth)
def complete(request: AuthedRequest, appointment_id: UUID) -> dict[str, Any]:
    return _out(
        services.appointment_mark(
            doctor_user=request.auth, appointment_id=appointment_id, outcome="completed"
        ),
        reason=True,  # the doctor of the appointment
    )


@router.post("/appointments/{appointment_id}/no-show", response=AppointmentOut, auth=jwt_auth)
def no_show(request: AuthedRequest, appointment_id: UUID) -> dict[str, Any]:
    return _out(
        services.appointment_mark(
            doctor_user=request.auth, appointment_id=appointment_id, outcome="no_show"
        ),
        reason=True,  # the doctor of the appointment
    )


class RescheduleIn(ReasonIn):
    start: IsoDatetime


@router.post(
    "/appointments/{appointment_id}/reschedule",
    response=AppointmentOut,
    auth=jwt_auth,
    summary="Move to another free slot (atomically)",
)
def reschedule(
    request: AuthedRequest,
    appointment_id: UUID,
    payload: RescheduleIn,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Status | HttpResponse:
    def action() -> tuple[int, Any]:
        new = services.appointment_reschedule(
            user=request.auth,
            appointment_id=appointment_id,
            start=payload.start,
            reason=payload.reason,
        )
        return 200, _json(new)

    body = {"reschedule": str(appointment_id), **payload.model_dump(mode="json")}
    return respond_once(request, idempotency_key, body, action)


@router.get(
    "/appointments/{appointment_id}/ics",
    auth=jwt_auth,
    summary="The appointment as an .ics file",
    response={200: None},
    openapi_extra={
        "responses": {"200": {"description": "text/calendar", "content": {"text/calendar": {}}}}
    },
)
def appointment_ics(request: AuthedRequest, appointment_id: UUID) -> HttpResponse:
    a = selectors.appointment_get(viewer=request.auth, appointment_id=appointment_id)
    response = HttpResponse(
        calendar.render([a], viewer=request.auth), content_type="text/calendar; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="appointment-{a.id}.ics"'
    return response


class WeekFigures(Schema):
    confirmed: int
    completed: int
    no_show: int
    cancelled: int


class DashboardOut(Schema):
    role: str
    next: list[AppointmentOut]
    today: list[AppointmentOut] | None = None
    pending_requests: int | None = None
    week: WeekFigures | None = None


@router.get(
    "/dashboard",
    response=DashboardOut,
    auth=jwt_auth,
    tags=["dashboard"],
    summary="The caller's summary: next appointments; for doctors the day and the week",
)
def dashboard(request: AuthedRequest) -> dict[str, Any]:
    data = selectors.dashboard(viewer=request.auth)
    data["next"] = [_out(a, reason=selectors.reasons_shown(request.auth)) for a in data["next"]]
    if "today" in data:
        data["today"] = [
            _out(a, reason=selectors.reasons_shown(request.auth)) for a in data["today"]
        ]
    return data


class FeedOut(Schema):
    url: str


@router.post(
    "/calendar/feed",
    response=FeedOut,
    auth=jwt_auth,
    tags=["calendar"],
    summary="Create or rotate the caller's secret calendar feed URL",
    description=(
        "The URL is in this answer only: the server keeps a digest of its secret, never the "
        "secret, so it cannot show the URL again. Each call makes a new URL and revokes the "
        "previous one (a lost URL is replaced this way)."
    ),
)
def calendar_feed(request: AuthedRequest) -> dict[str, str]:
    token = calendar.feed_token_rotate(
        user=request.auth,
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
    )
    return {"url": request.build_absolute_uri(f"/calendar/{token}.ics")}


@router.post(
    "/appointments/{appointment_id}/rebook",
    response={201: AppointmentOut},
    auth=jwt_auth,
    summary="Book again with the same doctor, mode and clinic",
)
def rebook(
    request: AuthedRequest,
    appointment_id: UUID,
    payload: RescheduleIn,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Status | HttpResponse:
    def action() -> tuple[int, Any]:
        new = services.appointment_rebook(
            patient=request.auth,
            appointment_id=appointment_id,
            start=payload.start,
            reason=payload.reason,
        )
        return 201, _json(new)

    body = {"rebook": str(appointment_id), **payload.model_dump(mode="json")}
    return respond_once(request, idempotency_key, body, action)


# --- reviews ------------------------------------------------------------------------------
class ReviewIn(InputSchema):
    rating: int = Field(..., ge=1, le=5, strict=True)
    text: str = Field("", max_length=2000)


class ReplyIn(InputSchema):
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class HideIn(InputSchema):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class ReviewOut(Schema):
    id: UUID
    rating: int
    text: str
    reply: str
    replied_at: datetime | None
    created_at: datetime


class ReviewPage(Schema):
    items: list[ReviewOut]
    next: str | None


@router.post(
    "/appointments/{appointment_id}/review",
    response={201: ReviewOut},
    auth=jwt_auth,
    tags=["reviews"],
    summary="Rate a completed appointment (once)",
)
def review_create(
    request: AuthedRequest,
    appointment_id: UUID,
    payload: ReviewIn,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Status | HttpResponse:
    return created_once(
        request,
        idempotency_key,
        payload,
        lambda: reviews.review_create(
            patient=request.auth, appointment_id=appointment_id, **payload.model_dump()
        ),
        ReviewOut,
    )


class ReviewQuery(Schema):
    cursor: str | None = Field(None, max_length=500)
    limit: int = Field(20, ge=1, le=50)


@router.get(
    "/doctors/{doctor_id}/reviews",
    response=ReviewPage,
    tags=["reviews"],
    summary="A doctor's reviews",
)
def review_list(request: HttpRequest, doctor_id: UUID, q: Query[ReviewQuery]) -> dict[str, Any]:
    items, next_cursor = paginate(
        reviews.reviews_public(doctor_id=doctor_id),
        field="created_at",
        cursor=q.cursor,
        limit=q.limit,
    )
    return {"items": items, "next": next_cursor}


@router.post(
    "/reviews/{review_id}/reply",
    response=ReviewOut,
    auth=jwt_auth,
    tags=["reviews"],
    summary="The doctor's one reply",
)
def review_reply(request: AuthedRequest, review_id: UUID, payload: ReplyIn) -> Any:
    return reviews.review_reply(doctor_user=request.auth, review_id=review_id, text=payload.text)


@router.post(
    "/admin/reviews/{review_id}/hide",
    response=ReviewOut,
    auth=jwt_auth,
    tags=["admin"],
    summary="Hide a review (audited)",
)
def review_hide(request: AuthedRequest, review_id: UUID, payload: HideIn) -> Any:
    return reviews.review_hidden_set(
        actor=request.auth, review_id=review_id, hidden=True, reason=payload.reason
    )


@router.post(
    "/admin/reviews/{review_id}/show",
    response=ReviewOut,
    auth=jwt_auth,
    tags=["admin"],
    summary="Show a hidden review again (audited)",
)
def review_show(request: AuthedRequest, review_id: UUID, payload: HideIn) -> Any:
    return reviews.review_hidden_set(
        actor=request.auth, review_id=review_id, hidden=False, reason=payload.reason
    )


# --- the doctor's availability ----------------------------------------------------------
class PageQuery(Schema):
    cursor: str | None = Field(None, max_length=500)
    limit: int = Field(50, ge=1, le=200)


@router.get("/availability/rules", response=RulePage, auth=jwt_auth, tags=["availability"])
def rules(request: AuthedRequest) -> Any:
    return {"items": list(selectors.own_rules(request.auth)), "next": None}


@router.post("/availability/rules", response={201: RuleOut}, auth=jwt_auth, tags=["availability"])
def rule_create(
    request: AuthedRequest, payload: RuleIn, idempotency_key: str | None = IDEMPOTENCY_KEY
) -> Status | HttpResponse:
    return created_once(
        request,
        idempotency_key,
        payload,
        lambda: services.rule_create(user=request.auth, **payload.model_dump()),
        RuleOut,
    )


@router.patch(
    "/availability/rules/{rule_id}", response=RuleOut, auth=jwt_auth, tags=["availability"]
)
def rule_update(request: AuthedRequest, rule_id: UUID, payload: RulePatch) -> Any:
    return services.rule_update(user=request.auth, rule_id=rule_id, changes=_changes(payload))


def _changes(payload: Schema) -> dict[str, Any]:
    """The fields a PATCH sets: a null leaves a field as it is, but for ``clinic_id`` (hours
    taken out of their clinic)."""
    return {
        k: v
        for k, v in payload.model_dump(exclude_unset=True).items()
        if v is not None or k == "clinic_id"
    }


@router.delete(
    "/availability/rules/{rule_id}", response={204: None}, auth=jwt_auth, tags=["availability"]
)
def rule_delete(request: AuthedRequest, rule_id: UUID) -> Status:
    services.rule_delete(user=request.auth, rule_id=rule_id)
    return Status(204, None)


@router.get("/availability/time-off", response=TimeOffPage, auth=jwt_auth, tags=["availability"])
def time_off_list(request: AuthedRequest, q: Query[PageQuery]) -> Any:
    """Time off not yet over, by start."""
    qs = selectors.own_time_off(request.auth, timezone.now())
    items, next_cursor = paginate(
        qs, field="start", cursor=q.cursor, limit=q.limit, descending=False
    )
    return {"items": items, "next": next_cursor}


@router.post(
    "/availability/time-off", response={201: TimeOffOut}, auth=jwt_auth, tags=["availability"]
)
def time_off(
    request: AuthedRequest, payload: TimeOffIn, idempotency_key: str | None = IDEMPOTENCY_KEY
) -> Status | HttpResponse:
    return created_once(
        request,
        idempotency_key,
        payload,
        lambda: services.time_off_create(user=request.auth, **payload.model_dump()),
        TimeOffOut,
    )


@router.patch(
    "/availability/time-off/{time_off_id}",
    response=TimeOffOut,
    auth=jwt_auth,
    tags=["availability"],
    summary="Change time off (checked as new time off is)",
)
def time_off_update(request: AuthedRequest, time_off_id: UUID, payload: TimeOffPatch) -> Any:
    return services.time_off_update(
        user=request.auth, time_off_id=time_off_id, changes=_changes(payload)
    )


@router.delete(
    "/availability/time-off/{time_off_id}",
    response={204: None},
    auth=jwt_auth,
    tags=["availability"],
)
def time_off_delete(request: AuthedRequest, time_off_id: UUID) -> Status:
    services.time_off_delete(user=request.auth, time_off_id=time_off_id)
    return Status(204, None)


class PolicyIn(InputSchema):
    min_notice_minutes: int | None = Field(None, ge=0, le=10080, strict=True)
    window_days: int | None = Field(None, ge=1, le=365, strict=True)
    cancel_cutoff_hours: int | None = Field(None, ge=0, le=168, strict=True)
    requires_approval: StrictBool | None = None
    payment_required: StrictBool | None = None
    hold_minutes: int | None = Field(None, ge=5, le=120, strict=True)


class PolicyOut(Schema):
    min_notice_minutes: int
    window_days: int
    cancel_cutoff_hours: int
    requires_approval: bool
    payment_required: bool
    hold_minutes: int


@router.get(
    "/availability/extra-hours", response=ExtraHoursPage, auth=jwt_auth, tags=["availability"]
)
def extra_hours_list(request: AuthedRequest, q: Query[PageQuery]) -> Any:
    """One-off hours from yesterday on, by date."""
    qs = selectors.own_extra_hours(request.auth, timezone.now().date())
    items, next_cursor = paginate(
        qs, field="date", cursor=q.cursor, limit=q.limit, descending=False
    )
    return {"items": items, "next": next_cursor}


@router.post(
    "/availability/extra-hours", response={201: ExtraHoursOut}, auth=jwt_auth, tags=["availability"]
)
def extra_hours(
    request: AuthedRequest, payload: ExtraHoursIn, idempotency_key: str | None = IDEMPOTENCY_KEY
) -> Status | HttpResponse:
    return created_once(
        request,
        idempotency_key,
        payload,
        lambda: services.extra_hours_create(user=request.auth, **payload.model_dump()),
        ExtraHoursOut,
    )


@router.patch(
    "/availability/extra-hours/{extra_id}",
    response=ExtraHoursOut,
    auth=jwt_auth,
    tags=["availability"],
    summary="Change one-off hours (checked as new ones are)",
)
def extra_hours_update(request: AuthedRequest, extra_id: UUID, payload: ExtraHoursPatch) -> Any:
    return services.extra_hours_update(
        user=request.auth, extra_id=extra_id, changes=_changes(payload)
    )


@router.delete(
    "/availability/extra-hours/{extra_id}",
    response={204: None},
    auth=jwt_auth,
    tags=["availability"],
)
def extra_hours_delete(request: AuthedRequest, extra_id: UUID) -> Status:
    services.extra_hours_delete(user=request.auth, extra_id=extra_id)
    return Status(204, None)


@router.get("/availability/policy", response=PolicyOut, auth=jwt_auth, tags=["availability"])
def policy(request: AuthedRequest) -> Any:
    return selectors.policy_for(services.verified_doctor(request.auth))


@router.patch("/availability/policy", response=PolicyOut, auth=jwt_auth, tags=["availability"])
def policy_update(request: AuthedRequest, payload: PolicyIn) -> Any:
    return services.policy_update(user=request.auth, changes=payload.model_dump(exclude_none=True))
