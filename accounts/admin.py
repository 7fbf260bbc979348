"""Users on the admin site. What the API also changes goes through the same services, so it
is audited and acted on the same way (a deactivation closes the user's sockets at once).

- What grants access (role, active, superuser, groups, permissions) is changed by admins
  only, never on their own account; a helper allowed to change users cannot change a staff
  member's account either; nor can an admin who is not a superuser change a superuser's
  account or make one superuser. No account is deleted here: its appointments, messages and
  medical files would go with it.
- E-mail and phone are logins: they change through the account's own verified flows
  (allauth's addresses and codes), never here.
- Passwords are their owners': whoever could set one could sign in as that user, past the
  break-glass rule on chats and medical files: the per-user "change password" page is
  refused (a staff member's own, ``/admin/password_change/``, is audited by the site). An
  account opened here gets a one-time password its owner must change at first sign-in
  (ID-2).
"""

from __future__ import annotations

from typing import Any, cast

from allauth.account.models import EmailAddress
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm
from django.contrib.auth.forms import UserChangeForm as BaseUserChangeForm
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.forms import MultipleHiddenInput, TypedChoiceField
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin as BaseTOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from accounts.errors import EmailTaken
from accounts.models import Role, User
from accounts.permissions import (
    UNPRIVILEGED_ROLES,
    is_staff_account,
    may_change_access,
    may_change_superuser,
)
from audit.services import client_ip, record

ACCESS_FIELDS = (
    "role",
    "is_active",
    "is_superuser",
    "groups",
    "user_permissions",
    "must_change_password",
)
_ALWAYS_READ_ONLY = ("id", "email", "phone", "date_joined", "last_login", "is_staff")


def _actor(request: HttpRequest) -> User:
    return cast(User, request.user)


class UserAddForm(BaseUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "role", "first_name", "last_name")

    # True on the form shown again after the service refused the address that passed here
    # (another account took it meanwhile): see :meth:`UserAdmin.add_view`.
    email_refused = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True  # the login of an account opened here

    def clean_email(self) -> Any:
        """Another account's login is refused by the model's constraint; another account's
        verified (second) address is taken too, in any case (as the service says)."""
        email = self.cleaned_data.get("email")
        if email and (
            self.email_refused
            or EmailAddress.objects.filter(email__iexact=email, verified=True).exists()
        ):
            raise ValidationError(EmailTaken.message, code=EmailTaken.code)
        return email


class UserChangeForm(BaseUserChangeForm):
    """Each field posts back, hidden, the value the page showed: only what the admin changed
    on the page is a change. A row changed since the page was rendered (another admin's
    deactivation or role change) is not silently set back to what the page showed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if field.disabled:  # the password hash's field: never posted, nor shown
                continue
            # A post without the hidden value (not from the page) is compared with the row;
            # but a page showing no choice of a multiple one posts no hidden value either.
            shown = self.add_initial_prefix(name)
            multiple = issubclass(field.hidden_widget, MultipleHiddenInput)
            field.show_hidden_initial = not self.is_bound or shown in self.data or multiple

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        if self.instance.pk is not None and self.changed_data:
            # The row locked until the save commits (an erasure takes the same lock): an
            # account erased since the page was read is refused here, not by a 500 later.
            row = User.objects.select_for_update().get(pk=self.instance.pk)
            if row.deleted_at is not None:
                raise ValidationError(
                    _("This account was erased at its owner's request: it cannot be changed.")
                )
        return cleaned


_EMAIL_REFUSED = "_accounts_user_add_email_refused"


def _require_password_change(actor: User, user: User) -> None:
    """The user must change their password before anything else (set here, never cleared:
    see :meth:`UserAdmin.get_readonly_fields`). Audited."""
    user.must_change_password = True
    user.save(update_fields=["must_change_password"])
    record(
        action="user.password_change_required",
        actor_id=actor.pk,
        actor_role=actor.role,
        target_type="user",
        target_id=str(user.pk),
    )


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ("email",)
    list_display = ("email", "phone", "role", "is_active", "date_joined")
    list_filter = ("role", "is_active", "language")
    search_fields = ("email", "phone", "first_name", "last_name")
    fieldsets = (
        (None, {"fields": ("id", "email", "phone")}),
        ("Profile", {"fields": ("first_name", "last_name", "language", "time_zone")}),
        (
            "Access",
            {
                "fields": (
                    "role",
                    "is_active",
                    "is_staff",
                    "is_superuser",
                    "groups",
                    "must_change_password",
                )
            },
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    form = UserChangeForm
    add_form = UserAddForm
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "role", "first_name", "last_name", "password1", "password2"),
            },
        ),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ()
        if (
            obj.pk == request.user.pk
            or not may_change_access(request.user)
            or obj.deleted_at is not None  # erased by its owner: never reactivated
        ):
            return (*_ALWAYS_READ_ONLY, *ACCESS_FIELDS)
        fields: tuple[str, ...] = _ALWAYS_READ_ONLY
        if not getattr(request.user, "is_superuser", False):
            # Superuser status is given by a superuser only (see may_change_superuser).
            fields = (*fields, "is_superuser")
        if obj.must_change_password:
            # Cleared only by its owner, by changing the password: whoever opened the account
            # knows the one-time password and could otherwise keep it working.
            fields = (*fields, "must_change_password")
        return fields

    def formfield_for_choice_field(
        self, db_field: models.Field, request: HttpRequest, **kwargs: Any
    ) -> TypedChoiceField | None:
        if db_field.name == "role" and not may_change_access(request.user):
            kwargs["choices"] = [c for c in Role.choices if c[0] in UNPRIVILEGED_ROLES]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def _protected(self, request: HttpRequest, obj: Any) -> bool:
        """A staff account, and the request not an admin's: it may not touch it; a
        superuser's, and the request not a superuser's: neither (see may_change_superuser)."""
        return (
            obj is not None
            and obj.pk != request.user.pk
            and (
                (is_staff_account(obj) and not may_change_access(request.user))
                or not may_change_superuser(request.user, obj)
            )
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and not self._protected(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Never: deleting a row would cascade to the user's appointments, messages and
        medical files, which are kept (legal retention). An account is closed (deactivated)
        here, or erased by its owner (``account_delete``: personal data gone, records kept)."""
        return False

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None and getattr(request, _EMAIL_REFUSED, False):
            form = type(form.__name__, (form,), {"email_refused": True})
        return form

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().add_view(request, form_url, extra_context)
        except EmailTaken:
            # Taken between the form's check and the insert (the service's transaction was
            # rolled back): the form again, with the error on the address, not a 500.
            setattr(request, _EMAIL_REFUSED, True)
            return super().add_view(request, form_url, extra_context)

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        raise PermissionDenied  # see the module's docstring

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        actor = _actor(request)
        if not change:
            data = form.cleaned_data
            user, _ = services.user_create_by_admin(
                admin=actor,
                email=data["email"],
                role=data["role"],
                first_name=data.get("first_name", ""),
                last_name=data.get("last_name", ""),
                password=data.get("password1") or "",
            )
            obj.pk = user.pk  # what the admin's answer names and links to
            obj.refresh_from_db()
            return
        changed = {name: form.cleaned_data[name] for name in form.changed_data}
        # The row as it is now, locked until the commit: only the fields changed on the page
        # are written, each by its service, so what changed since it was read (a
        # deactivation, a password change, a new session epoch, an erasure) stays.
        user = User.objects.select_for_update().get(pk=obj.pk)
        profile = {k: v for k, v in changed.items() if k in services.ADMIN_EDITABLE}
        if profile:
            services.user_update_by_admin(actor=actor, user=user, changes=profile)
        if "is_active" in changed:
            services.user_set_active(actor=actor, user=user, active=changed["is_active"])
        services.user_grants_set(actor=actor, user=user, changes=changed)
        if changed.get("must_change_password") and not user.must_change_password:
            _require_password_change(actor, user)
        obj.refresh_from_db()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Groups and permissions were set by save_model, through their service.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


class DeletesThroughService:
    """Removals from an admin page (one from its page, or several with "delete selected")
    through ``delete_service(actor=, <plural of the model>=, ip=, user_agent=)``, audited
    there."""

    delete_service: Any
    delete_argument = ""

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self._delete(request, [obj])

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        self._delete(request, queryset)

    def _delete(self, request: HttpRequest, objects: Any) -> None:
        self.delete_service(
            actor=_actor(request),
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
            **{self.delete_argument: objects},
        )


class TOTPDeviceAdmin(DeletesThroughService, BaseTOTPDeviceAdmin):
    """django-otp's page of TOTP devices, whose removals (one from its page, or several with
    the "delete selected" action) go through :func:`services.totp_devices_delete`: audited
    (``auth.totp_removed``). Adding and changing are refused (see :data:`NOT_ADDED_OR_CHANGED`)."""

    delete_service = staticmethod(services.totp_devices_delete)
    delete_argument = "devices"

    def get_queryset(self, request: HttpRequest) -> Any:
        """A superuser's second factor is a superuser's to remove (see
        :func:`services.totp_devices_delete`): not listed to other admins."""
        queryset = super().get_queryset(request)
        if not getattr(request.user, "is_superuser", False):
            queryset = queryset.exclude(user__is_superuser=True)
        return queryset


if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)
admin.site.register(TOTPDevice, TOTPDeviceAdmin)


class GroupAdmin(DeletesThroughService, BaseGroupAdmin):
    """Django's page of groups, whose grants and deletions go through their services:
    audited (``group.permissions_changed`` with the codenames added and removed,
    ``group.deleted``). Admins only (see :data:`ADMINS_ONLY`)."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if "permissions" in form.cleaned_data:
            services.group_permissions_set(
                actor=_actor(request),
                group=form.instance,
                permissions=form.cleaned_data["permissions"],
                created=not change,
                ip=client_ip(request),
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
            )
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    delete_service = staticmethod(services.groups_delete)
    delete_argument = "groups"


if admin.site.is_registered(Group):
    admin.site.unregister(Group)
admin.site.register(Group, GroupAdmin)


# Models of other apps that hold access or its keys: a group's permissions, an account's
# login addresses, its linked Google account and tokens, its second factor, and the task
# queue (whose rows run code with their arguments). On the admin site they are the admins'
# only, whatever permissions a helper's groups hold: a helper could otherwise give its own
# group every permission, or add a verified address to an admin's account and reset its
# password. (Registered before this module is imported: INSTALLED_APPS lists them first.)
ADMINS_ONLY = (
    "auth.Group",
    "account.EmailAddress",
    "socialaccount.SocialAccount",
    "socialaccount.SocialToken",
    "socialaccount.SocialApp",
    "otp_totp.TOTPDevice",
    "django_tasks_database.DBTaskResult",
)
_CHECKS = (
    "has_module_permission",
    "has_view_permission",
    "has_add_permission",
    "has_change_permission",
    "has_delete_permission",
)


def _admins_only(model_admin: admin.ModelAdmin) -> None:
    for name in _CHECKS:
        allowed = getattr(model_admin, name)

        # Django passes ``obj`` by keyword too (the autocomplete view's view permission).
        def check(request: HttpRequest, *args: Any, _allowed: Any = allowed, **kwargs: Any) -> bool:
            return may_change_access(request.user) and bool(_allowed(request, *args, **kwargs))

        setattr(model_admin, name, check)


# Login addresses and linked Google accounts: view-only for everyone, superusers included.
# Whoever could add, change or verify an address on someone's account, or link a Google
# account to it, could sign in as that user (by e-mail code), past the break-glass rule and
# unaudited. They change through their owner's verified flows only.
# The Google app's keys too: a changed client or secret would send every Google sign-in
# elsewhere (unaudited); its secret, key and settings (which may hold a private key) are
# never shown (:data:`HIDDEN_FIELDS`).
VIEW_ONLY = (
    "account.EmailAddress",
    "socialaccount.SocialAccount",
    "socialaccount.SocialToken",
    "socialaccount.SocialApp",
)
HIDDEN_FIELDS = {"socialaccount.SocialApp": ("secret", "key", "settings")}
# Second factors are enrolled by their owners (``/admin/otp/enrol/``): a device added or
# changed here, with a key of the admin's choice, would pass another staff member's second
# factor. One may still be deleted (a lost phone), audited (:class:`TOTPDeviceAdmin`): its
# owner then enrols again, which takes their password.
NOT_ADDED_OR_CHANGED = ("otp_totp.TOTPDevice",)


def _never(request: HttpRequest, *args: Any, **kwargs: Any) -> bool:
    return False


def _no_actions(request: HttpRequest) -> dict[str, Any]:
    return {}


def _restrict(model_admin: admin.ModelAdmin, *, deletable: bool) -> None:
    denied = ["has_add_permission", "has_change_permission"]
    if not deletable:
        denied.append("has_delete_permission")
        # allauth's "mark as verified" asks for no permission: it would verify addresses.
        model_admin.get_actions = _no_actions  # type: ignore[method-assign]
    for name in denied:
        setattr(model_admin, name, _never)


def _guard_access_models() -> None:
    from django.apps import apps

    for labels, deletable in ((VIEW_ONLY, False), (NOT_ADDED_OR_CHANGED, True)):
        for label in labels:
            model_admin = admin.site._registry.get(apps.get_model(label))
            if model_admin is not None:
                _restrict(model_admin, deletable=deletable)
    for label, hidden in HIDDEN_FIELDS.items():
        model_admin = admin.site._registry.get(apps.get_model(label))
        if model_admin is not None:
            model_admin.exclude = (*(model_admin.exclude or ()), *hidden)  # type: ignore[misc]
    for label in ADMINS_ONLY:
        model_admin = admin.site._registry.get(apps.get_model(label))
        if model_admin is not None:
            _admins_only(model_admin)


_guard_access_models()
