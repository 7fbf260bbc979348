"""Who may do what: the one place REST endpoints and socket handlers ask.

Admins may do everything except read chats and medical files (that needs an audited
break-glass reason, checked by those apps); helpers may do what their Django groups'
permissions allow; patients and doctors have no staff permissions at all.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from accounts.errors import AdminOnly, RoleRequired, SuperuserRequired
from accounts.models import Role
from core.errors import Forbidden, Unauthenticated

# The roles staff who may not change access can still give a new account.
UNPRIVILEGED_ROLES = frozenset({Role.PATIENT, Role.DOCTOR})

# Reading other people's chats and medical files is never a standing permission.
BREAK_GLASS_ONLY = frozenset({"chat.view_message", "records.view_record"})


def has_permission(user: Any, perm: str) -> bool:
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if perm in BREAK_GLASS_ONLY:
        return False
    if user.role == Role.ADMIN:
        return True
    if user.role == Role.HELPER:
        return bool(user.has_perm(perm))
    return False


def may_change_access(user: Any) -> bool:
    """Whether ``user`` may change what grants access: roles, superuser status, groups and
    permissions, and an admin's account. Admins only, so that a helper allowed to change
    users can raise neither itself nor anyone else, nor shut the admins out."""
    return bool(
        user is not None and user.is_authenticated and user.is_active and user.role == Role.ADMIN
    )


def is_staff_account(user: Any) -> bool:
    """An account only admins may change: a staff member's (an admin's or a helper's; a
    superuser's counts: older rows may hold it), so that no helper can lock out, or rename
    its way into, another staff member's account."""
    return bool(user.role in (Role.ADMIN, Role.HELPER) or user.is_superuser)


def require_access_change(user: Any) -> None:
    if not may_change_access(user):
        raise AdminOnly()


def may_change_superuser(actor: Any, user: Any, *, grants_superuser: bool = False) -> bool:
    """Whether ``actor`` may change ``user``'s account (its profile, role, status or grants):
    a superuser's account, or a change that would make an account superuser, is a
    superuser's only. Else an admin could demote a superuser (its role changed, its
    superuser status dropped), lock it out, and then erase it, or raise any account
    (its own through another's) above the admins."""
    if not (grants_superuser or getattr(user, "is_superuser", False)):
        return True
    return bool(actor is not None and getattr(actor, "is_superuser", False))


def require_superuser_guard(actor: Any, user: Any, *, grants_superuser: bool = False) -> None:
    """:func:`may_change_superuser`, else 403 ``auth.superuser_required``."""
    if not may_change_superuser(actor, user, grants_superuser=grants_superuser):
        raise SuperuserRequired(
            _("Only a superuser can change a superuser's account or make an account superuser.")
        )


def may_read_sealed(user: Any) -> bool:
    """Whether ``user`` reads sealed audit values (break-glass reasons, which may tell of a
    patient's health: ``audit.services.seal``) in the audit search and on the admin site:
    active admins; helpers allowed to view the trail see ``[sealed]``."""
    return bool(user is not None and getattr(user, "is_active", False) and user.role == Role.ADMIN)


def require_erasure_allowed(actor: Any, user: Any) -> None:
    """Erasing someone else's account is for admins only; an admin's account (a superuser's
    counts) only for a superuser, so that no admin can wipe another out of the way."""
    require_access_change(actor)
    if (user.role == Role.ADMIN or user.is_superuser) and not actor.is_superuser:
        raise SuperuserRequired()


def require_permission(user: Any, perm: str) -> None:
    if user is None or not user.is_authenticated:
        raise Unauthenticated()
    if not has_permission(user, perm):
        raise Forbidden()


def require_role(user: Any, *roles: str) -> None:
    if user is None or not user.is_authenticated:
        raise Unauthenticated()
    if user.role not in roles:
        raise RoleRequired()


def is_staff(user: Any) -> bool:
    return bool(
        user is not None and user.is_authenticated and user.role in (Role.ADMIN, Role.HELPER)
    )
