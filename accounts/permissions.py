"""Who may do what: the one place REST endpoints and socket handlers ask.

Admins may do everything except read chats and medical files (that needs an audited
break-glass reason, checked by those apps); helpers may do what their Django groups'
permissions allow; patients and doctors have no staff permissions at all.
"""

from __future__ import annotations

from typing import Any

from accounts.errors import RoleRequired
from accounts.models import Role
from core.errors import Forbidden, Unauthenticated

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
