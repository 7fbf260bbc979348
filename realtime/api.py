"""Socket tickets, the notification inbox and preferences, presence, provider callbacks."""

from __future__ import annotations

from typing import Any

from allauth.core.internal.httpkit import get_authorization_credential
from django.conf import settings
from django.http import HttpRequest
from ninja import Query, Router, Status

from accounts.auth import AuthedRequest, jwt_auth
from core import ratelimit
from core.errors import Unauthenticated
from core.pagination import paginate
from realtime import deliveries, presence, selectors, services
from realtime.auth import token_session_key
from realtime.errors import BadSignature, UnknownKind
from realtime.schemas import (
    NotificationOut,
    NotificationPage,
    NotificationQuery,
    PreferenceIn,
    PreferenceList,
    PreferenceOut,
    PresenceList,
    ReadAllOut,
    TicketOut,
    UnreadOut,
)
from realtime.tickets import ticket_issue, ticket_seconds
from realtime.unread import unread_counts

router = Router(tags=["realtime"])


@router.post(
    "/realtime/ticket",
    response={201: TicketOut},
    auth=jwt_auth,
    summary="A one-time socket ticket (30 s, single use): open /ws/v1/?ticket=...",
    description="Rate limited per user (`REALTIME_TICKET_RATE_LIMIT`): over it 429 "
    "`request.rate_limited` with `Retry-After`.",
)
def ticket(request: AuthedRequest) -> Status:
    user_id = request.auth_snapshot.id
    ratelimit.check("realtime_ticket", user_id, settings.ACCOUNT_RATE_LIMITS.get("realtime_ticket"))
    # The ticket dies with the session of the token it was asked with (see realtime.auth).
    session_key = token_session_key(get_authorization_credential(request, "Bearer") or "")
    if session_key is None:
        raise Unauthenticated()
    ticket = ticket_issue(user_id=user_id, session_key=session_key)
    return Status(201, {"ticket": ticket, "expires_in": ticket_seconds()})


@router.get(
    "/notifications",
    response=NotificationPage,
    auth=jwt_auth,
    tags=["notifications"],
    summary="The inbox, newest first",
)
def notification_list(request: AuthedRequest, q: Query[NotificationQuery]) -> dict[str, Any]:
    qs = selectors.notifications_of(viewer=request.auth)
    if q.unread:
        qs = qs.filter(read_at__isnull=True)
    items, next_cursor = paginate(qs, field="seq", cursor=q.cursor, limit=q.limit)
    return {"items": items, "next": next_cursor}


@router.get(
    "/notifications/unread",
    response=UnreadOut,
    auth=jwt_auth,
    tags=["notifications"],
    summary="Unread counters (notifications; chat conversations when chat is on)",
)
def notification_unread(request: AuthedRequest) -> dict[str, Any]:
    return {"counts": unread_counts(user_id=request.auth.pk)}


@router.post(
    "/notifications/read-all",
    response=ReadAllOut,
    auth=jwt_auth,
    tags=["notifications"],
    summary="Mark every notification read",
)
def notification_read_all(request: AuthedRequest) -> dict[str, Any]:
    return {"updated": services.notifications_mark_all_read(user=request.auth)}


@router.post(
    "/notifications/{event_id}/read",
    response=NotificationOut,
    auth=jwt_auth,
    tags=["notifications"],
    summary="Mark one notification read",
)
def notification_read(request: AuthedRequest, event_id: int) -> Any:
    return services.notification_mark_read(user=request.auth, event_id=event_id)


@router.get(
    "/notifications/preferences",
    response=PreferenceList,
    auth=jwt_auth,
    tags=["notifications"],
    summary="Channels beyond the app (e-mail, SMS, WhatsApp) for each kind of notification",
)
def preference_list(request: AuthedRequest) -> dict[str, Any]:
    return {"items": deliveries.preferences_for(user=request.auth), "next": None}


@router.put(
    "/notifications/preferences/{kind}",
    response=PreferenceOut,
    auth=jwt_auth,
    tags=["notifications"],
    summary="Choose the channels for one kind of notification",
)
def preference_put(request: AuthedRequest, kind: str, payload: PreferenceIn) -> dict[str, Any]:
    if kind not in deliveries.KINDS:
        raise UnknownKind()
    channels = deliveries.preference_set(
        user=request.auth, kind=kind, channels=list(payload.channels)
    )
    return {"kind": kind, "channels": channels}


@router.get(
    "/presence",
    response=PresenceList,
    auth=jwt_auth,
    tags=["presence"],
    summary="Presence of the users in care with the caller",
)
def presence_list(request: AuthedRequest) -> dict[str, Any]:
    ids = presence.audience(request.auth.pk)
    return {
        "items": [{"user_id": u, "online": on} for u, on in presence.online(ids).items()],
        "next": None,
    }


@router.post(
    "/realtime/twilio/status",
    response={204: None},
    auth=None,
    tags=["webhooks"],
    summary="Twilio's message status callback (authenticated by its X-Twilio-Signature)",
)
def twilio_status(request: HttpRequest) -> Status:
    from twilio.request_validator import RequestValidator

    params = {key: request.POST.get(key, "") for key in request.POST}
    url = getattr(settings, "TWILIO_STATUS_CALLBACK_URL", "") or request.build_absolute_uri()
    signature = request.headers.get("X-Twilio-Signature", "")
    token = settings.TWILIO_AUTH_TOKEN
    if not token or not signature or not RequestValidator(token).validate(url, params, signature):
        raise BadSignature()
    deliveries.delivery_status_update(
        provider_id=params.get("MessageSid", ""),
        status=params.get("MessageStatus", ""),
        error_code=params.get("ErrorCode", ""),
    )
    return Status(204, None)
