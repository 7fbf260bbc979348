"""Helpers for tests of the Django admin site: a staff client past the second factor, and
the data a browser would send back for a change form."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Role, User
from tests.factories import make_user


def staff_client(user: User) -> Client:
    """A client logged in to the admin site as ``user``, with a confirmed TOTP device."""
    client = Client()
    client.force_login(user)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def superuser() -> User:
    user = make_user(role=Role.ADMIN)
    user.is_superuser = True
    user.save()
    return user


def helper_with(*perms: str) -> User:
    group = Group.objects.create(name=f"staff-{Group.objects.count()}")
    for perm in perms:
        app_label, codename = perm.split(".")
        group.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    helper = make_user(role=Role.HELPER)
    helper.groups.add(group)
    return helper


def _form_data(form: forms.BaseForm) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = form[name].value()
        key = form.add_prefix(name)
        if field.show_hidden_initial:  # the hidden copy of what the page showed
            shown = form.add_initial_prefix(name)
            if isinstance(field, forms.MultipleChoiceField | forms.ModelMultipleChoiceField):
                if value:  # none chosen: a browser posts no hidden value
                    data[shown] = [str(v) for v in value]
            else:
                data[shown] = "" if value is None else str(value)
        if isinstance(field.widget, forms.CheckboxInput):
            if value:
                data[key] = "on"
        elif isinstance(field, forms.MultipleChoiceField | forms.ModelMultipleChoiceField):
            data[key] = [str(v) for v in value or []]
        else:
            data[key] = "" if value is None else str(value)
    return data


def change_form(client: Client, url: str, **changes: Any) -> dict[str, Any]:
    """What the change page at ``url`` posts back as it is, with ``changes`` applied (a
    checkbox set to False is left out, as a browser does; the hidden copies of the values
    the page showed stay as they were)."""
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    data = _form_data(page.context["adminform"].form)
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        data |= _form_data(formset.management_form)
        for form in formset.forms:
            data |= _form_data(form)
    for key, value in changes.items():
        if value is False:
            data.pop(key, None)
        else:
            data[key] = value
    return data
