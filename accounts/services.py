"""Every write to accounts: sign-up completion, invitations, admin changes, GDPR deletion."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Model, Q
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django_otp import device_classes

from accounts.errors import (
    AccountErased,
    AccountInactive,
    CannotChangeOwnAccess,
    EmailTaken,
    LoginCodeStale,
    PhoneTaken,
)
from accounts.models import Invitation, PatientProfile, Role, User
from accounts.permissions import (
    UNPRIVILEGED_ROLES,
    is_staff_account,
    require_access_change,
    require_erasure_allowed,
    require_superuser_guard,
)
from audit.services import record
from core.models import IdempotencyRecord

INVITATION_TTL = timedelta(days=7)
logger = logging.getLogger(__name__)

# Called with the user's id when an account is deactivated or deleted, or sessions of it end
# (logout, password change or reset, a replayed refresh token): tokens of those sessions stop
# working at once. Also when its role changes (its tokens go on, with the new role). The composition root registers the socket gateway here, which closes every
# socket of the user (accounts cannot import realtime, which depends on it).
ACCESS_REVOKED_HOOKS: list[Callable[[Any], None]] = []


def access_revoked(*, user_id: Any) -> None:
    for hook in ACCESS_REVOKED_HOOKS:
        hook(user_id)


@dataclass(frozen=True)
class ErasedPerson:
    """Who an erased account was: what the erasure hooks need that is wiped from the user's
    row before they run."""

    id: Any
    full_name: str


# Called in order by :func:`account_delete`, in its transaction and under the user's row lock,
# after the row is wiped: each app above accounts erases what it holds of the person (texts
# that name them, profiles, notifications). Registered at the composition root (accounts
# cannot import those apps).
ERASURE_HOOKS: list[Callable[[User, ErasedPerson], None]] = []
# What the apps above accounts hold that was the person's own, as (model, ids), for the admin
# site's change log: entries about those objects are unnamed as the account's own are (a
# doctor's profile page names its clinics, which may bear the doctor's name). Registered at
# the composition root.
ADMIN_LOG_OWNED: list[Callable[[User], list[tuple[type[Model], list[Any]]]]] = []


def _locked(user: User) -> User:
    """The user's row as it is now, locked until the transaction ends. Erasure
    (:func:`account_delete`) takes the same lock: a change that passed its token check before
    an erasure either commits first (and is wiped by it) or sees it and is refused."""
    return User.objects.select_for_update().get(pk=user.pk)


def user_hold(user: User) -> tuple[bool, bool]:
    """Hold ``user``'s row against an erasure until the transaction ends: whether the
    account is (active, erased) now. Every service that writes free text about a person (a
    profile, a clinic, a review, a reply, a reason) holds that person first in its
    transaction: such a write either commits before an erasure (which then wipes it) or
    waits for it and sees it, never stores the text after it. ``FOR SHARE`` on PostgreSQL
    (erasure locks the row ``FOR UPDATE``; bookings hold it for share too, so they do not
    wait on each other); on SQLite the write transaction is serialised already."""
    query = User.objects.filter(pk=user.pk).values_list("is_active", "deleted_at").query
    sql, params = query.sql_with_params()
    if connection.vendor == "postgresql":
        sql += " FOR SHARE"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False, True
    return bool(row[0]), row[1] is not None


def user_hold_active(user: User) -> None:
    """:func:`user_hold` for the caller's own account: refused if it was erased or
    deactivated since the request's token was checked."""
    active, erased = user_hold(user)
    if erased:
        raise AccountErased()
    if not active:
        raise AccountInactive()


def _save_fields(user: User, fields: Iterable[str]) -> None:
    """Write only ``fields`` of a user loaded earlier: a whole-row save would undo what
    changed since it was read (a password reset, a deactivation, a role change)."""
    update = set(fields)
    if "role" in update:
        update |= {"is_staff", "is_superuser"}  # follow the role (User.save)
    if update:
        user.save(update_fields=sorted(update))


_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


def hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


def _audit(actor: User | None, action: str, target: User | Invitation, **data: Any) -> None:
    record(
        action=action,
        actor_id=actor.pk if actor else None,
        actor_role=actor.role if actor else "",
        target_type=target._meta.model_name or "",
        target_id=str(target.pk),
        data=data,
    )


@transaction.atomic
def user_complete_signup(
    *,
    user: User,
    first_name: str = "",
    last_name: str = "",
    language: str = "",
    invitation_code: str = "",
) -> User:
    """Called by allauth's sign-up right after it saved the user: names, language, and the
    role the invitation code gives (doctor), or a patient profile."""
    user.first_name, user.last_name = first_name, last_name
    if language:
        user.language = language
    if invitation_code and invitation_redeem(code=invitation_code, user=user):
        user.role = Role.DOCTOR
    user.save()
    if user.role == Role.PATIENT:
        PatientProfile.objects.get_or_create(user=user)
    _audit(user, "user.signed_up", user, role=user.role)
    return user


@transaction.atomic
def user_phone_set(*, user: User, phone: str, verified: bool, current_only: bool = False) -> None:
    """Store the user's phone number as allauth's flows decide (sign-up, a change, a code
    sent to it). A number is unique among verified ones only: one verified on another
    account meanwhile is :class:`PhoneTaken`. Under the user's row lock (see :func:`_locked`):
    a flow started before an erasure or a deactivation (a code sent then, confirmed now)
    never writes a number back (:class:`AccountErased`, :class:`AccountInactive`).
    ``current_only``: a login by SMS code, which only confirms the number it was sent to,
    refused (:class:`LoginCodeStale`) once that is no longer the account's verified number
    (changed or erased since the code was sent)."""
    locked = _locked(user)
    now = (locked.phone, locked.phone_verified)
    if current_only and now != (phone, True):
        raise LoginCodeStale()
    if now == (phone, verified):
        user.phone, user.phone_verified = now
        return  # a login by SMS code re-verifies the number it was sent to
    if locked.deleted_at is not None:
        raise AccountErased()
    if not locked.is_active:
        raise AccountInactive()
    locked.phone, locked.phone_verified = phone, verified
    try:
        with transaction.atomic():
            locked.save(update_fields=["phone", "phone_verified"])
    except IntegrityError as exc:
        raise PhoneTaken() from exc
    user.phone, user.phone_verified = phone, verified  # the caller's copy, as allauth reads it
    if verified:
        _audit(user, "user.phone_verified", user)  # the number is contact data: not recorded


@transaction.atomic
def unproven_phone_drop(*, user: User, reason: str, address_id: Any = None) -> None:
    """The account is taken over by whoever proves an address of it otherwise than by the
    code sent to confirm it (``address_id``, verified by a password reset or a login by
    e-mail code), or by a Google sign-in that found it by an unverified address. If it had no
    other verified address until then, its phone number goes (:func:`user_phone_drop`):
    whoever signed up with someone else's address may have verified their own number on it,
    and would sign in by SMS code once the owner took the account back (allauth wipes the
    password for the same reason)."""
    verified = EmailAddress.objects.filter(user_id=user.pk, verified=True)
    if not verified.exclude(pk=address_id).exists():
        user_phone_drop(user=user, reason=reason)


@transaction.atomic
def user_phone_drop(*, user: User, reason: str) -> None:
    """Remove the account's phone number and its verified flag, audited with ``reason``
    (``user.phone_removed``; never the number); nothing if it has none. ``user`` is updated
    too: allauth saves its copy of the user whole afterwards on some paths (a Google
    account connected), which would write the number back."""
    locked = _locked(user)
    if locked.phone:
        was_verified = locked.phone_verified
        locked.phone, locked.phone_verified = None, False
        locked.save(update_fields=["phone", "phone_verified"])
        _audit(None, "user.phone_removed", locked, reason=reason, was_verified=was_verified)
    user.phone, user.phone_verified = None, False


def invitation_create(
    *, created_by: User, email: str = "", ttl: timedelta = INVITATION_TTL
) -> tuple[Invitation, str]:
    """A new single-use code; only its hash is stored, so the code is shown once."""
    code = "-".join("".join(secrets.choice(_CODE_ALPHABET) for _ in range(4)) for _ in range(3))
    invitation = Invitation.objects.create(
        code_hash=hash_code(code),
        email=email.lower(),
        created_by=created_by,
        expires_at=timezone.now() + ttl,
    )
    _audit(created_by, "invitation.created", invitation, for_email=bool(invitation.email))
    return invitation, code


def invitation_redeem(*, code: str, user: User) -> bool:
    """Mark the code used by ``user``; False if it is no longer usable (lost a race)."""
    now = timezone.now()
    updated = Invitation.objects.filter(
        code_hash=hash_code(code), used_by__isnull=True, expires_at__gt=now
    ).update(used_by=user, used_at=now)
    return updated == 1


@transaction.atomic
def user_create_by_admin(
    *,
    admin: User,
    email: str,
    role: str,
    first_name: str = "",
    last_name: str = "",
    password: str = "",
) -> tuple[User, str]:
    """An account opened by staff, with the password given or a new one-time password: its
    owner must change it before anything else (someone else knows it). The e-mail counts as
    verified (the admin vouches). Only admins open staff accounts."""
    if role not in UNPRIVILEGED_ROLES:
        require_access_change(admin)
    password = password or secrets.token_urlsafe(12)
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                email,
                password,
                role=role,
                first_name=first_name,
                last_name=last_name,
                must_change_password=True,
            )
            # Another account's verified address (a second one, not its login) is taken too:
            # allauth's unique constraint says so for the same spelling, this for any case.
            if EmailAddress.objects.filter(email__iexact=user.email, verified=True).exists():
                raise EmailTaken()
            EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    except ValidationError as exc:
        if any(e.code == "unique" for e in exc.error_dict.get("email", [])):
            raise EmailTaken() from exc
        raise
    except IntegrityError as exc:
        raise EmailTaken() from exc
    if user.role == Role.PATIENT:
        PatientProfile.objects.get_or_create(user=user)
    _audit(admin, "user.created_by_admin", user, role=user.role)
    return user, password


def doctor_create_by_admin(
    *, admin: User, email: str, first_name: str, last_name: str
) -> tuple[User, str]:
    """A doctor account with a one-time password the admin hands over (ID-2)."""
    return user_create_by_admin(
        admin=admin, email=email, role=Role.DOCTOR, first_name=first_name, last_name=last_name
    )


def _check_access_change(*, actor: User, user: User, role_change: bool) -> None:
    """Nobody changes their own role or status; only admins change a role or a staff
    member's account (a helper allowed to change users may neither promote nor lock out);
    only a superuser changes a superuser's (``user`` is the row as it is now, locked)."""
    if role_change and user.pk == actor.pk:
        raise CannotChangeOwnAccess()
    if role_change or (is_staff_account(user) and user.pk != actor.pk):
        require_access_change(actor)
    require_superuser_guard(actor, user)


ADMIN_EDITABLE = frozenset({"first_name", "last_name", "role", "language", "time_zone"})


@transaction.atomic
def user_update_by_admin(*, actor: User, user: User, changes: dict[str, Any]) -> User:
    """An erased account is never renamed (its name would come back): :class:`AccountErased`."""
    changes = {k: ("" if v is None and k in _CLEARABLE_TEXT else v) for k, v in changes.items()}
    changes = {k: v for k, v in changes.items() if k in ADMIN_EDITABLE and v is not None}
    user = _locked(user)
    if user.deleted_at is not None:
        raise AccountErased()
    role_change = "role" in changes and changes["role"] != user.role
    _check_access_change(actor=actor, user=user, role_change=role_change)
    before = {k: getattr(user, k) for k in changes}
    for key, value in changes.items():
        setattr(user, key, value)
    user.full_clean(exclude=["password"])
    _save_fields(user, changes.keys())
    if "role" in changes and before["role"] != user.role:
        _audit(actor, "user.role_changed", user, before=before["role"], after=user.role)
        # Sockets were opened with the old role: they close, and reconnect with the new one.
        access_revoked(user_id=user.pk)
    changed = {k: v for k, v in changes.items() if before[k] != v and k != "role"}
    if changed:
        _audit(actor, "user.updated", user, fields=sorted(changed))
    return user


@transaction.atomic
def user_set_active(*, actor: User, user: User, active: bool) -> User:
    """Deactivation takes effect at once and for good: tokens are validated against the user
    on every request, so an inactive user's access and refresh tokens stop working
    immediately, and stay dead after a reactivation (the user signs in again). An account
    erased is never reactivated: checked under the row lock erasure takes, so an erasure
    that committed after ``user`` was loaded is seen."""
    if user.pk == actor.pk:
        raise CannotChangeOwnAccess()
    user = _locked(user)
    _check_access_change(actor=actor, user=user, role_change=False)
    if active and user.deleted_at is not None:
        raise AccountErased()
    if user.is_active != active:
        user.is_active = active
        if active:
            user.save(update_fields=["is_active"])
        else:
            # Its sessions end for good: a reactivation does not bring their tokens back
            # (raised in the database: the instance may be older than the row). Through
            # save(), which drops the cached snapshot requests are checked against.
            user.session_epoch = F("session_epoch") + 1  # type: ignore[assignment]
            user.save(update_fields=["is_active", "session_epoch"])
            user.refresh_from_db(fields=["session_epoch"])
        _audit(actor, "user.reactivated" if active else "user.deactivated", user)
        if not active:
            access_revoked(user_id=user.pk)
    return user


GRANTS = frozenset({"is_superuser", "groups", "user_permissions"})


@transaction.atomic
def user_grants_set(*, actor: User, user: User, changes: dict[str, Any]) -> User:
    """Superuser status, groups and permissions (the admin site is where they change):
    admins only, never their own, and audited with what the account holds afterwards.
    Superuser status is for admins only (see :meth:`User.save`), and is given, like a
    superuser's grants are changed, by a superuser only."""
    changes = {k: v for k, v in changes.items() if k in GRANTS}
    if not changes:
        return user
    if user.pk == actor.pk:
        raise CannotChangeOwnAccess()
    require_access_change(actor)
    user = _locked(user)  # its superuser status as it is now
    require_superuser_guard(actor, user, grants_superuser=bool(changes.get("is_superuser")))
    if "is_superuser" in changes:
        user.is_superuser = bool(changes["is_superuser"])
        user.save(update_fields=["is_superuser"])
    if "groups" in changes:
        user.groups.set(changes["groups"])
    if "user_permissions" in changes:
        user.user_permissions.set(changes["user_permissions"])
    _audit(
        actor,
        "user.permissions_changed",
        user,
        fields=sorted(changes),
        is_superuser=user.is_superuser,
        groups=sorted(user.groups.values_list("name", flat=True)),
    )
    return user


_PROFILE_FIELDS = {"first_name", "last_name", "language", "time_zone"}
_PATIENT_FIELDS = {"date_of_birth", "sex", "city", "latitude", "longitude"}
_CLEARABLE_TEXT = {"first_name", "last_name", "sex", "city"}
_NULLABLE = {"date_of_birth", "latitude", "longitude"}


@transaction.atomic
def profile_update(*, user: User, changes: dict[str, Any]) -> User:
    """The caller's own profile. E-mail and phone change through allauth's verified flows.
    An account erased or deactivated after the caller's token was checked is refused."""
    # PATCH semantics: an omitted field is unchanged; null clears a text field and leaves a
    # choice (language, time zone) as it is.
    changes = {k: ("" if v is None and k in _CLEARABLE_TEXT else v) for k, v in changes.items()}
    changes = {k: v for k, v in changes.items() if v is not None or k in _NULLABLE}
    user = _locked(user)
    if user.deleted_at is not None:
        raise AccountErased()
    if not user.is_active:
        raise AccountInactive()
    profile_changes = _PROFILE_FIELDS & changes.keys()
    for key in profile_changes:
        setattr(user, key, changes[key])
    user.full_clean(exclude=["password"])
    _save_fields(user, profile_changes)
    patient_changes = _PATIENT_FIELDS & changes.keys()
    if patient_changes and user.role == Role.PATIENT:
        profile, _ = PatientProfile.objects.get_or_create(user=user)
        for key in patient_changes:
            value = changes[key]
            setattr(profile, key, value.isoformat() if key == "date_of_birth" and value else value)
        profile.save()
    return user


@transaction.atomic
def account_delete(*, user: User, actor: User | None = None) -> User:
    """GDPR erasure, by its owner or (``actor``) an admin. Personal data is removed and the
    account can no longer log in; medical and financial records stay (legal retention),
    linked only to the anonymised account. The audit trail keeps the user's id, never their
    name or contact details. Here: the account's row, profile, login addresses, linked
    accounts, second-factor devices, stored request answers, invitations and its mentions in
    the admin site's log; each app above accounts erases its own rows (:data:`ERASURE_HOOKS`),
    and its stored sessions are deleted by a task committed with it. Under the user's row lock (see :func:`_locked`); an
    account erased already is left as it is."""
    from allauth.socialaccount.models import SocialAccount

    user = _locked(user)
    if user.deleted_at is not None:
        return user
    contacts = _contacts(user)
    logged = _logged_about(user)  # before its addresses and devices go
    identifiers = [str(user.pk), *contacts]
    person = ErasedPerson(id=user.pk, full_name=user.full_name)
    user.email = None
    user.phone = None
    user.phone_verified = False
    user.first_name = user.last_name = ""
    user.is_active = False
    user.deleted_at = timezone.now()
    user.set_unusable_password()
    # Only what changes: a whole-row save would write back what the instance holds of
    # anything else. (Saving is_active closes its upcoming appointments and delists a
    # doctor: bookings' and doctors' receivers of the user's save.)
    _save_fields(
        user,
        (
            "email",
            "phone",
            "phone_verified",
            "first_name",
            "last_name",
            "is_active",
            "deleted_at",
            "password",
        ),
    )
    EmailAddress.objects.filter(user=user).delete()  # their pending confirmations with them
    SocialAccount.objects.filter(user=user).delete()  # the provider's tokens with them
    # The invitation it signed up with is spent: its address goes too. One still pending for
    # one of its addresses is the person's too, and of no more use: it goes.
    Invitation.objects.filter(used_by=user).update(email="")
    Invitation.objects.filter(used_by__isnull=True, email__in=contacts).delete()
    PatientProfile.objects.filter(user=user).update(
        date_of_birth=None, sex="", city="", latitude=None, longitude=None
    )
    _keys_delete(user, actor or user)
    _admin_log_unname(user=user, contacts=contacts, about=logged)
    for hook in ERASURE_HOOKS:  # what the apps above accounts hold of the person
        hook(user, person)
    # What the stored sessions hold of the identifiers: a task committed with the erasure,
    # retried until it is done (``accounts.tasks``), that knows them only as keyed digests.
    _erased_sessions_enqueue(user_id=user.pk, identifiers=identifiers)
    # Its sessions die with it: tokens are validated against an active user on every request.
    access_revoked(user_id=user.pk)
    _audit(actor or user, "user.deleted", user)
    return user


def _contacts(user: User) -> list[str]:
    """The account's e-mail addresses (its login and any other it added) and phone number,
    lower-cased: what erasure looks for in the rows that name it by them."""
    found = {user.email or "", user.phone or ""}
    found.update(EmailAddress.objects.filter(user=user).values_list("email", flat=True))
    return sorted({c.lower() for c in found if c})


def _keys_delete(user: User, actor: User) -> None:
    """What opens or replays the account, beyond its password: its second-factor devices
    (every django-otp plugin installed: TOTP apps, static codes...), each removal audited
    as an admin's is (``auth.totp_removed``, by whoever erases, marked ``erasure``), and the
    answers stored for its ``Idempotency-Key`` requests (encrypted copies of what it
    created: a booking's reason among them). Codes sent to it (login, phone or e-mail
    verification) live in its sessions (see :func:`sessions_holding_delete`)."""
    for model in device_classes():
        for device in model.objects.filter(user=user).order_by("pk"):
            _device_remove(device, actor=actor, erasure=True)
    IdempotencyRecord.objects.filter(user=user).delete()


def _device_remove(
    device: Any, *, actor: User, ip: str | None = None, user_agent: str = "", erasure: bool = False
) -> None:
    """Delete a second-factor device, audited in the same transaction (``auth.totp_removed``:
    who removed it, whose it was, the device's id and whether it was confirmed, and whether
    an erasure did; never its key)."""
    device_id, owner_id, confirmed = device.pk, device.user_id, device.confirmed
    device.delete()
    # What it let in ends: tokens at their next request (``auth.second_factor_passed``),
    # sockets now (they open again only once passed with a device the user still has).
    access_revoked(user_id=owner_id)
    data: dict[str, Any] = {"device_id": device_id, "confirmed": confirmed}
    if erasure:
        data["erasure"] = True
    record(
        action="auth.totp_removed",
        actor_id=actor.pk,
        actor_role=actor.role,
        target_type="user",
        target_id=str(owner_id),
        ip=ip,
        user_agent=user_agent,
        data=data,
    )


def _mention(contacts: list[str]) -> re.Pattern[str]:
    """Any of ``contacts`` as a whole value, ignoring case: a@b.com, not within aa@b.com or
    a@b.com.eg (an e-mail at the end of a sentence still counts)."""
    values = "|".join(re.escape(c) for c in contacts)
    return re.compile(rf"(?<![\w.+%-])(?:{values})(?![\w+-]|\.\w)", re.IGNORECASE)


def _logged_about(user: User) -> Q:
    """The admin log's entries about the account and what was ever its own, whatever it was
    called then: the account, each address it had (its current ones, and those its audited
    address changes name by id: allauth's signals, see ``accounts.adapter``), each TOTP
    device an admin removed from it (``auth.totp_removed``; one removed by an erasure has no
    entry) and what other apps say was its own (:data:`ADMIN_LOG_OWNED`)."""
    from django.contrib.contenttypes.models import ContentType
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from audit.selectors import event_search

    addresses: set[Any] = set(EmailAddress.objects.filter(user=user).values_list("pk", flat=True))
    devices: set[Any] = set()
    changes = event_search(target_type="user", target_id=str(user.pk)).filter(
        Q(action__startswith="user.email_") | Q(action="auth.totp_removed")
    )
    for action, data in changes.values_list("action", "data"):
        if action.startswith("user.email_"):
            for part in ("address", "from", "to"):
                found = (data.get(part) or {}).get("id")
                if found is not None:
                    addresses.add(found)
        elif action == "auth.totp_removed" and not data.get("erasure"):
            devices.add(data.get("device_id"))
    owned: list[tuple[type[Model], Any]] = [
        (User, {user.pk}),
        (EmailAddress, addresses),
        (TOTPDevice, devices),
        *(found for hook in ADMIN_LOG_OWNED for found in hook(user)),
    ]
    about = Q()
    for model, ids in owned:
        ids = {str(i) for i in ids if i is not None}
        if ids:
            about |= Q(content_type=ContentType.objects.get_for_model(model), object_id__in=ids)
    return about


def _admin_log_unname(*, user: User, contacts: list[str], about: Q) -> None:
    """The admin site's change log names what it changed as it prints: an account, its
    login addresses and second-factor devices by e-mail or phone. An entry ``about`` the
    account or what was its own prints as the account's id (what an erased account prints
    as), as does each object its change message names (an address added to it...): it may
    have been named by an address it no longer had when erased. Elsewhere each mention of
    one of its ``contacts`` becomes the account's id. What was done, and by whom, stays."""
    from django.contrib.admin.models import LogEntry

    mention = _mention(contacts) if contacts else None
    found = about
    for contact in contacts:
        found |= Q(object_repr__icontains=contact) | Q(change_message__icontains=contact)
    if not found:
        return
    own = set(LogEntry.objects.filter(about).values_list("pk", flat=True)) if about else set()
    name = str(user.pk)
    changed = []
    for entry in LogEntry.objects.filter(found).only("id", "object_repr", "change_message"):
        repr_, message = entry.object_repr, entry.change_message
        if entry.pk in own:
            repr_, message = name, _objects_unnamed(message, name)
        if mention is not None:
            repr_, message = (mention.sub(name, v) for v in (repr_, message))
        if (repr_, message) != (entry.object_repr, entry.change_message):
            entry.object_repr, entry.change_message = repr_[:200], message
            changed.append(entry)
    LogEntry.objects.bulk_update(changed, ["object_repr", "change_message"], batch_size=500)


def _objects_unnamed(message: str, name: str) -> str:
    """A change message (Django's JSON list) with each object it names (``"object"``: an
    inline's row as it printed) replaced by ``name``; one that is not JSON as it is."""
    try:
        parts = json.loads(message)
    except ValueError:
        return message
    if not isinstance(parts, list):
        return message
    renamed = False
    for part in parts:
        for detail in part.values() if isinstance(part, dict) else ():
            if isinstance(detail, dict) and "object" in detail and detail["object"] != name:
                detail["object"], renamed = name, True
    return json.dumps(parts) if renamed else message


def account_erase_by_admin(*, actor: User, user: User) -> User:
    """Erasure asked of an admin (its owner cannot: a deactivated account has no live token).
    Never one's own account here; an admin's only by a superuser."""
    if user.pk == actor.pk:
        raise CannotChangeOwnAccess()
    require_erasure_allowed(actor, user)
    return account_delete(user=user, actor=actor)


def _erased_sessions_enqueue(*, user_id: Any, identifiers: list[str]) -> None:
    from accounts.tasks import erased_sessions_delete

    erased_sessions_delete.enqueue(str(user_id), identifier_digests(identifiers))


def identifier_digests(identifiers: Iterable[str]) -> list[str]:
    """Keyed digests (BLAKE2b under a key derived from ``SECRET_KEY``) of identifiers,
    ignoring case: what the task that deletes an erased account's sessions is given, so that
    its stored row (kept ``TASK_RESULT_RETENTION_DAYS``) does not hold the e-mail addresses
    and phone number the erasure removed, nor lets them be guessed without the key."""
    key = _digest_keys()[0]
    return sorted({_digest(key, i) for i in identifiers if i})


def _digest_keys() -> list[bytes]:
    """The digest keys of ``SECRET_KEY`` and of each of ``SECRET_KEY_FALLBACKS``: digests made
    before a rotation of the secret still match after it."""
    secrets_ = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [
        salted_hmac("accounts.erased-sessions", "identifier", secret=s, algorithm="sha256").digest()
        for s in secrets_
    ]


def _digest(key: bytes, value: str) -> str:
    return hashlib.blake2b(value.casefold().encode(), key=key, digest_size=16).hexdigest()


def sessions_holding_delete(*, digests: Iterable[str]) -> int:
    """Delete the unexpired sessions (database rows and cached copies) that hold, as a value
    or a key at any depth, a string whose digest is one of ``digests`` (whole values only:
    a@b.com is not in aa@b.com's session); how many. Signed-in sessions keep the address
    allauth signed in with, and a sign-in not finished holds the login tried. Run by a task
    after an erasure commits (the sessions stopped working then: the password hash changed
    and the account is inactive; this removes the personal data they store): no index of a
    user's sessions exists, so every unexpired one is read (about 15 microseconds each);
    expired ones are left to the housekeeping prune. Deleting twice is harmless: the task
    may run again after a failure."""
    from django.contrib.sessions.models import Session

    from core.sessions import SessionStore

    wanted, keys = set(digests), _digest_keys()
    store = SessionStore()
    doomed = [
        session_key
        for session_key, data in Session.objects.filter(expire_date__gt=timezone.now())
        .values_list("session_key", "session_data")
        .iterator(chunk_size=2000)
        if _holds(store.decode(data), wanted, keys)
    ]
    for session_key in doomed:
        store.delete(session_key)  # the cached copy first (loudly), then the row
    return len(doomed)


def _holds(value: Any, wanted: set[str], keys: list[bytes]) -> bool:
    """Whether the decoded session ``value`` has a string (a value or a key, at any depth)
    whose digest under one of ``keys`` is in ``wanted``."""
    if isinstance(value, dict):
        return any(_holds(k, wanted, keys) or _holds(v, wanted, keys) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds(v, wanted, keys) for v in value)
    return isinstance(value, str) and any(_digest(key, value) in wanted for key in keys)


def refresh_reuse_detected(*, user_id: str, session: SessionBase) -> None:
    """A rotated-out refresh token came back: revoke the whole session and audit it."""
    session.flush()
    access_revoked(user_id=user_id)
    record(action="auth.refresh_reuse", actor_id=user_id, target_type="user", target_id=user_id)


@transaction.atomic
def totp_devices_delete(
    *, actor: User, devices: Iterable[Any], ip: str | None = None, user_agent: str = ""
) -> int:
    """Remove staff second factors (a lost phone: the owner enrols again, password first).
    Admins only (the admin site's TOTP pages are theirs only). Each removal is audited in
    the same transaction (``auth.totp_removed``: who removed it, whose it was, the device's
    id and whether it was confirmed; never its key), so no second factor goes unaudited.
    Returns how many were removed (a device removed meanwhile is skipped). A superuser's
    only by a superuser: another admin would otherwise make a superuser enrol again."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    require_access_change(actor)
    ids = [device.pk for device in devices]
    locked = list(
        TOTPDevice.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(pk__in=ids)
        .order_by("pk")
    )
    for device in locked:  # a superuser's is a superuser's to remove (403 before any is)
        require_superuser_guard(actor, device.user)
    for device in locked:
        _device_remove(device, actor=actor, ip=ip, user_agent=user_agent)
    return len(locked)


# --- Groups (the admin site's, admins only) ----------------------------------------------


def _permission_labels(permissions: Iterable[Any]) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in permissions}


@transaction.atomic
def group_permissions_set(
    *,
    actor: User,
    group: Any,
    permissions: Iterable[Any],
    created: bool = False,
    ip: str | None = None,
    user_agent: str = "",
) -> None:
    """Give ``group`` exactly ``permissions``. Admins only. What was added and removed
    (``app_label.codename``) is audited in the same transaction
    (``group.permissions_changed``), so no grant through a group goes unaudited."""
    from django.contrib.auth.models import Group, Permission

    require_access_change(actor)
    locked = Group.objects.select_for_update().get(pk=group.pk)
    wanted = list(
        Permission.objects.filter(pk__in=[p.pk for p in permissions]).select_related("content_type")
    )
    before = _permission_labels(locked.permissions.select_related("content_type"))
    locked.permissions.set(wanted)
    after = _permission_labels(wanted)
    added, removed = sorted(after - before), sorted(before - after)
    if not (added or removed or created):
        return
    record(
        action="group.permissions_changed",
        actor_id=actor.pk,
        actor_role=actor.role,
        target_type="group",
        target_id=str(locked.pk),
        ip=ip,
        user_agent=user_agent,
        data={"name": locked.name, "created": created, "added": added, "removed": removed},
    )


@transaction.atomic
def groups_delete(
    *, actor: User, groups: Iterable[Any], ip: str | None = None, user_agent: str = ""
) -> int:
    """Delete groups (their members lose what they granted). Admins only. Each deletion is
    audited in the same transaction (``group.deleted``: its name, the permissions it held
    and how many members it had). Returns how many were deleted (one deleted meanwhile is
    skipped)."""
    from django.contrib.auth.models import Group

    require_access_change(actor)
    ids = [group.pk for group in groups]
    locked = list(Group.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
    for group in locked:
        record(
            action="group.deleted",
            actor_id=actor.pk,
            actor_role=actor.role,
            target_type="group",
            target_id=str(group.pk),
            ip=ip,
            user_agent=user_agent,
            data={
                "name": group.name,
                "permissions": sorted(
                    _permission_labels(group.permissions.select_related("content_type"))
                ),
                "members": group.user_set.count(),
            },
        )
        group.delete()
    return len(locked)
