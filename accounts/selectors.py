"""Every read of accounts that someone sees, with the viewer's access enforced."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import Invitation, PatientProfile, User
from accounts.permissions import require_permission
from core.errors import NotFound


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


def user_export(*, user: User) -> dict[str, Any]:
    """The user's personal data (GDPR art. 15/20): their account, profile, addresses,
    linked sign-in providers and their own audit trail. Nothing about anyone else."""
    from allauth.account.models import EmailAddress
    from allauth.socialaccount.models import SocialAccount

    from audit.selectors import event_search

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
        "linked_providers": [
            {"provider": s.provider, "uid": s.uid} for s in SocialAccount.objects.filter(user=user)
        ],
        "activity": [
            {"time": e.created_at.isoformat(), "action": e.action, "ip": e.ip}
            for e in event_search(actor_id=user.id)[:1000]
        ],
        "exported_at": timezone.now().isoformat(),
    }
