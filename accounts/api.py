"""The caller's profile (``/me``), GDPR export and deletion, and user administration.

Sign-up, login, codes, tokens and Google sign-in are allauth's headless API under
``/_allauth/app/v1/`` (its own OpenAPI spec: ``/_allauth/openapi.html``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.http import HttpResponse
from django.utils.translation import gettext_lazy as _
from ninja import Field, Query, Router, Schema, Status

from accounts import selectors, services
from accounts.auth import AuthedRequest, JWTAuth, jwt_auth, require_recent_sign_in, token_session
from accounts.models import Role, User
from accounts.permissions import may_read_sealed, require_permission
from accounts.schemas import (
    AuditPage,
    DeleteAccountIn,
    DoctorCreatedOut,
    DoctorCreateIn,
    InvitationIn,
    InvitationOut,
    MeIn,
    MeOut,
    SecondFactorIn,
    UserAdminIn,
    UserOut,
    UserPage,
)
from audit.services import record_from_request
from core import ratelimit
from core.errors import ApplicationError
from core.idempotency import IDEMPOTENCY_KEY, created_once
from core.pagination import paginate
from core.schemas import IsoDatetime

router = Router(tags=["accounts"])
admin_router = Router(tags=["admin"], auth=jwt_auth)


class WrongPassword(ApplicationError):
    code = "auth.confirmation_failed"
    status = 403
    message = _("The password or confirmation you entered is not correct.")


def me_payload(user: User) -> dict:
    return {
        **{f: getattr(user, f) for f in MeOut.model_fields if f != "patient_profile"},
        "patient_profile": selectors.patient_profile(user=user)
        if user.role == Role.PATIENT
        else None,
    }


# What a token still reaches before its pending steps: a password to change (accounts made
# by an admin), a second factor to pass (staff).
_FIRST_STEPS = JWTAuth(allow_pending_password_change=True, allow_without_second_factor=True)


@router.get("/me", response=MeOut, auth=_FIRST_STEPS, summary="The caller's profile")
def me(request: AuthedRequest) -> dict:
    return me_payload(request.auth)


class WhoAmIOut(Schema):
    id: UUID
    role: Role


@router.get(
    "/whoami",
    response=WhoAmIOut,
    auth=_FIRST_STEPS,
    summary="The caller's id and role (a cheap token check)",
)
def whoami(request: AuthedRequest) -> dict:
    snap = request.auth_snapshot  # set by JWTAuth: answering needs no database query
    return {"id": snap.id, "role": snap.role}


@router.post(
    "/auth/second-factor",
    response={204: None},
    auth=JWTAuth(allow_without_second_factor=True),
    summary="Staff: pass the second factor for this token's session (a TOTP code)",
)
def second_factor(request: AuthedRequest, payload: SecondFactorIn) -> Status:
    """Staff tokens are refused (403 ``auth.second_factor_required``) until their session
    passes this with a current code of the authenticator app enrolled on the admin site;
    tokens refreshed from the session keep it."""
    from accounts.otp import second_factor_verify

    session = token_session(request)
    second_factor_verify(request, user=request.auth, session=session, code=payload.code)
    return Status(204, None)


@router.patch("/me", response=MeOut, auth=jwt_auth, summary="Update the caller's profile")
def me_update(request: AuthedRequest, payload: MeIn) -> dict:
    user = services.profile_update(
        user=request.auth, changes=payload.model_dump(exclude_unset=True)
    )
    return me_payload(user)


@router.get("/me/export", auth=jwt_auth, summary="Export the caller's personal data (GDPR)")
def me_export(request: AuthedRequest) -> dict:
    limit = settings.ACCOUNT_RATE_LIMITS.get("account_export")
    ratelimit.check("account_export", request.auth.pk, limit)
    data = selectors.user_export(user=request.auth)
    # Who took a copy of the personal data, and when: a stolen token's export is visible.
    record_from_request(
        request, action="user.exported", target_type="user", target_id=str(request.auth.pk)
    )
    return data


@router.post(
    "/me/delete",
    response={204: None},
    auth=jwt_auth,
    summary="Delete the caller's account (GDPR)",
    description="An account with a password sends it (`password`). An account without one "
    '(Google sign-in only) sends `confirm: "delete my account"` with an access token of a '
    "sign-in made within `RECENT_SIGN_IN_MINUTES` (5 by default); an older one gets 403 "
    "`auth.recent_sign_in_required`: sign in again, then retry with the new token.",
)
def me_delete(request: AuthedRequest, payload: DeleteAccountIn) -> Status:
    user: User = request.auth
    # The password is checked here: without a limit, a stolen access token guesses it.
    ratelimit.check("account_delete", user.pk, settings.ACCOUNT_RATE_LIMITS.get("account_delete"))
    if user.has_usable_password():
        confirmed = user.check_password(payload.password)
    else:
        # No password to ask for: a stolen access token (or refresh token) alone must not
        # erase the account, so the sign-in it comes from must be recent.
        require_recent_sign_in(request)
        confirmed = payload.confirm.strip().lower() == "delete my account"
    if not confirmed:
        raise WrongPassword()
    services.account_delete(user=user)
    return Status(204, None)


# --- administration ---------------------------------------------------------------------
class UserFilters(Schema):
    q: str = ""
    role: Role | None = None
    is_active: bool | None = None
    cursor: str | None = None
    limit: int = Field(50, ge=1, le=100)


@admin_router.get("/users", response=UserPage, summary="List and search users")
def admin_users(request: AuthedRequest, filters: Query[UserFilters]) -> dict:
    qs = selectors.user_list(
        viewer=request.auth, q=filters.q[:100], role=filters.role or "", is_active=filters.is_active
    )
    items, next_cursor = paginate(
        qs, field="date_joined", cursor=filters.cursor, limit=max(1, min(filters.limit, 100))
    )
    return {"items": items, "next": next_cursor}


@admin_router.get("/users/{user_id}", response=UserOut)
def admin_user(request: AuthedRequest, user_id: UUID) -> User:
    return selectors.user_get(viewer=request.auth, user_id=user_id)


@admin_router.patch("/users/{user_id}", response=UserOut)
def admin_user_update(request: AuthedRequest, user_id: UUID, payload: UserAdminIn) -> User:
    require_permission(request.auth, "accounts.change_user")
    user = selectors.user_get(viewer=request.auth, user_id=user_id)
    return services.user_update_by_admin(
        actor=request.auth, user=user, changes=payload.model_dump(exclude_unset=True)
    )


@admin_router.post("/users/{user_id}/deactivate", response=UserOut)
def admin_user_deactivate(request: AuthedRequest, user_id: UUID) -> User:
    require_permission(request.auth, "accounts.change_user")
    user = selectors.user_get(viewer=request.auth, user_id=user_id)
    return services.user_set_active(actor=request.auth, user=user, active=False)


@admin_router.post("/users/{user_id}/reactivate", response=UserOut)
def admin_user_reactivate(request: AuthedRequest, user_id: UUID) -> User:
    require_permission(request.auth, "accounts.change_user")
    user = selectors.user_get(viewer=request.auth, user_id=user_id)
    return services.user_set_active(actor=request.auth, user=user, active=True)


@admin_router.post(
    "/users/{user_id}/erase",
    response=UserOut,
    summary="Erase a user's account (GDPR)",
    description="As `POST /me/delete` does for its owner: personal data wiped, records kept "
    "linked to the anonymised id, audited (`user.deleted`, the admin as actor). Admins only; "
    "an admin's account only by a superuser; never one's own. Erasing an erased account "
    "changes nothing.",
)
def admin_user_erase(request: AuthedRequest, user_id: UUID) -> User:
    require_permission(request.auth, "accounts.delete_user")
    user = selectors.user_get(viewer=request.auth, user_id=user_id)
    return services.account_erase_by_admin(actor=request.auth, user=user)


_SECRET_KEPT = (
    "With an `Idempotency-Key`, this answer (its secret included) is kept encrypted for 24 h "
    "and given again to the same caller's retry with the same key and body."
)


@admin_router.post(
    "/doctors",
    response={201: DoctorCreatedOut},
    summary="Create a doctor account",
    description=f"The temporary password is shown once. {_SECRET_KEPT}",
)
def admin_doctor_create(
    request: AuthedRequest,
    payload: DoctorCreateIn,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Status | HttpResponse:
    require_permission(request.auth, "accounts.add_user")

    def make() -> dict[str, Any]:
        user, password = services.doctor_create_by_admin(admin=request.auth, **payload.model_dump())
        return {"user": user, "temporary_password": password}

    return created_once(request, idempotency_key, payload, make, DoctorCreatedOut)


@admin_router.post(
    "/invitations",
    response={201: InvitationOut},
    summary="Issue a doctor invitation code",
    description=f"The code is shown once (only its hash is stored). {_SECRET_KEPT}",
)
def admin_invitation_create(
    request: AuthedRequest,
    payload: InvitationIn,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Status | HttpResponse:
    require_permission(request.auth, "accounts.add_invitation")

    def make() -> dict[str, Any]:
        invitation, code = services.invitation_create(
            created_by=request.auth, email=payload.email, ttl=timedelta(days=payload.ttl_days)
        )
        return {
            "id": invitation.id,
            "code": code,
            "email": invitation.email,
            "expires_at": invitation.expires_at,
        }

    return created_once(request, idempotency_key, payload, make, InvitationOut)


class AuditFilters(Schema):
    actor_id: UUID | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: IsoDatetime | None = None
    until: IsoDatetime | None = None
    cursor: str | None = None
    limit: int = Field(50, ge=1, le=200)


@admin_router.get("/audit", response=AuditPage, summary="Search the audit trail")
def admin_audit(request: AuthedRequest, filters: Query[AuditFilters]) -> dict:
    from audit.selectors import event_search, unsealed

    require_permission(request.auth, "audit.view_auditevent")
    qs = event_search(
        actor_id=filters.actor_id,
        action=filters.action,
        target_type=filters.target_type,
        target_id=filters.target_id,
        since=filters.since,
        until=filters.until,
    )
    items, next_cursor = paginate(
        qs, field="id", cursor=filters.cursor, limit=max(1, min(filters.limit, 200))
    )
    reveal = may_read_sealed(request.auth)
    for event in items:  # as shown to this viewer; the rows themselves are never saved here
        event.data = unsealed(event.data, reveal=reveal)
    return {"items": items, "next": next_cursor}


router.add_router("/admin", admin_router)
