"""Every read of accounts that someone sees, with the viewer's access enforced."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db.models import Q, QuerySet
from django.utils import timezone
from django_otp import device_classes

from accounts.models import Invitation, PatientProfile, User
from accounts.permissions import require_permission
from core.errors import NotFound
from core.export import AuditTargets, Rows, iso

if TYPE_CHECKING:
    from allauth.socialaccount.models import SocialAccount


def invitation_usable(*, code: str, email: str = "") -> Invitation | None:
    from accounts.services import hash_code

    invitation = Invitation.objects.filter(
        code_hash=hash_code(code), used_by__isnull=True, expires_at__gt=timezone.now()
    ).first()
    if invitation is None or (invitation.email and invitation.email != email.strip().lower()):
        return None
    return invitation


def user_list(
    *, viewer: User, q: str = "", role: str = "", is_active: bool | None = None
) -> QuerySet[User]:
    require_permission(viewer, "accounts.view_user")
    qs = User.objects.all()
    if q:
        qs = qs.filter(
            Q(email__icontains=q)
            | Q(phone__icontains=q)
            | Q(first_name__icontains=q)
            | Q(last_name__icontains=q)
        )
    if role:
        qs = qs.filter(role=role)
    if is_active is not None:
        qs = qs.filter(is_active=is_active)
    return qs


def user_get(*, viewer: User, user_id: Any) -> User:
    require_permission(viewer, "accounts.view_user")
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise NotFound()
    return user


def patient_profile(*, user: User) -> PatientProfile | None:
    return PatientProfile.objects.filter(user=user).first()


# --- the personal-data export (GDPR art. 15/20) -------------------------------------------
# The export is the one read of accounts that gathers every app's rows about a person. The
# apps above accounts (which accounts may not import) supply theirs, wired at the
# composition root: a section of the document each, and their part of the access log. Each
# list is one query whatever its length (no query per row) and bounded at EXPORT_MAX_ROWS
# rows; a list cut there is named in the document's "truncated", never cut silently.
EXPORT_MAX_ROWS = 50_000
# Key of the document -> its section for the user (in this order, after the account's).
EXPORT_SECTIONS: dict[str, Callable[[User, Rows], Any]] = {}
# What each app adds to the access log (see :func:`_access_log`).
ACCESS_LOG_TARGETS: list[Callable[[User, Rows], AuditTargets]] = []


def user_export(*, user: User) -> dict[str, Any]:
    """The user's personal data (GDPR art. 15/20): their account and profile, what they did
    in every app (appointments, reviews, chats, medical files' details, grants,
    notifications, a doctor's profile and hours, a calendar feed), their linked Google
    account and the profile kept of it, their second-factor devices and invitation, their
    own audit trail and who else did something to their data.
    Of other people, only what the user already sees in the app (a name on an appointment
    or a chat): nobody else's contact details, files or activity.
    A fixed number of queries, whatever the number of rows."""
    from allauth.account.models import EmailAddress
    from allauth.socialaccount.models import SocialAccount

    from audit.selectors import event_search

    rows = Rows(EXPORT_MAX_ROWS)
    profile = patient_profile(user=user)
    return {
        "account": {
            "id": str(user.id),
            "email": user.email,
            "phone": user.phone,
            "phone_verified": user.phone_verified,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "role": user.role,
            "language": user.language,
            "time_zone": user.time_zone,
            "date_joined": user.date_joined.isoformat(),
            "last_login": user.last_login.isoformat() if user.last_login else None,
        },
        "patient_profile": None
        if profile is None
        else {
            "date_of_birth": profile.date_of_birth,
            "sex": profile.sex,
            "city": profile.city,
            "latitude": profile.latitude,
            "longitude": profile.longitude,
        },
        "email_addresses": [
            {"email": a.email, "verified": a.verified, "primary": a.primary}
            for a in EmailAddress.objects.filter(user=user)
        ],
        "linked_providers": [_linked_provider(s) for s in SocialAccount.objects.filter(user=user)],
        "second_factor_devices": _devices(user),
        "invitation": _invitation(user),
        **{key: section(user, rows) for key, section in EXPORT_SECTIONS.items()},
        "activity": [
            {"time": e.created_at.isoformat(), "action": e.action, "ip": e.ip}
            for e in rows.take("activity", event_search(actor_id=user.id))
        ],
        "access_log": _access_log(user, rows),
        "truncated": rows.truncated,
        "row_limit": rows.limit,
        "exported_at": timezone.now().isoformat(),
    }


def _linked_provider(account: SocialAccount) -> dict[str, Any]:
    """A linked Google account, with the profile allauth keeps of it (``extra_data``: the
    claims of its last sign-in, such as name, e-mail address, picture and locale)."""
    return {
        "provider": account.provider,
        "uid": account.uid,
        "profile": account.extra_data,
        "date_joined": iso(account.date_joined),
        "last_login": iso(account.last_login),
    }


def _devices(user: User) -> list[dict[str, Any]]:
    """The user's second-factor devices (staff TOTP apps; any django-otp plugin installed),
    never their secrets. One query per kind of device."""
    return [
        {
            "kind": model._meta.label_lower,
            "name": device.name,
            "confirmed": device.confirmed,
            "created_at": iso(getattr(device, "created_at", None)),
            "last_used_at": iso(getattr(device, "last_used_at", None)),
        }
        for model in device_classes()
        for device in model.objects.filter(user=user).order_by("pk")
    ]


def _invitation(user: User) -> dict[str, Any] | None:
    """The invitation the user signed up with (a doctor): the address it was for, when."""
    invitation = Invitation.objects.filter(used_by=user).first()
    if invitation is None:
        return None
    return {
        "email": invitation.email,
        "created_at": iso(invitation.created_at),
        "used_at": iso(invitation.used_at),
    }


def _access_log(user: User, rows: Rows) -> list[dict[str, Any]]:
    """Who else did something to the user's data (the audit events of others, or of the
    platform, whose target is the user, or what is theirs in an app: their doctor's profile,
    files, chats, appointments, reviews: :data:`ACCESS_LOG_TARGETS`), newest first: who (id
    and role), when, what. Not the others' addresses or devices. One query: a UNION ALL of
    one indexed read per kind of target."""
    from audit.models import AuditEvent

    uid = str(user.pk)
    others = AuditEvent.objects.exclude(actor_id=user.pk)
    parts = [targets(user, rows) for targets in ACCESS_LOG_TARGETS]
    branches = [
        others.filter(target_type="user", target_id=uid),
        others.filter(target_type="patient", target_id=uid),
        *(others.filter(q) for part in parts for q in part.events),
    ]
    events = branches[0].union(*branches[1:], all=True).order_by("-created_at", "-id")
    found = []
    for e in rows.take("access_log", events):
        data: dict[str, Any] | None = dict(e.data)
        for part in parts:
            data = part.shown(e, data) if data is not None else None
        if data is None:
            continue
        found.append(
            {
                "time": e.created_at.isoformat(),
                "action": e.action,
                "actor_id": str(e.actor_id) if e.actor_id else None,
                "actor_role": e.actor_role,
                "target_type": e.target_type,
                "target_id": e.target_id,
                "data": data,
            }
        )
    return found
