"""Staff two-factor authentication for the Django admin (ID-10).

The admin site is django-otp's :class:`OTPAdminSite`: signing in takes e-mail, password and
a TOTP token from a *confirmed* device. A staff member (role admin or helper) who has no such
device yet enrols at ``/admin/otp/enrol/`` (:func:`enrol`):

1. they prove the first factor with e-mail and password (failures are rate-limited per
   address and per client IP, counted together with the admin login form's, each attempt
   before its check so that parallel guesses cannot pass the limit together); an account
   that must still change an admin-set password cannot enrol;
2. the page shows an unconfirmed :class:`TOTPDevice` as an ``otpauth://`` URI, a QR code and
   the base32 secret (an existing unconfirmed device is reused, with a new secret: only the
   browser of the latest password step is shown one, and can confirm it);
3. a correct 6-digit token confirms the device, is audited (``auth.totp_enrolled``) and logs
   them in, OTP-verified, to the admin. Wrong tokens count against django-otp's exponential
   throttling of the device (1, 2, 4, 8 ... seconds between attempts), so guessing the six
   digits is hopeless.

Between steps 1 and 3 nobody is logged in: the session only names the pending user, for
``PENDING_TTL`` seconds and only while that user's password is unchanged. Anyone who already
has a confirmed device is sent to the normal admin login; enrolling a second device is not
possible here.

:class:`StaffOTPAdminSite` is the admin site's class (``telemed/urls.py``): the login page
links to the enrolment page, selects the user's only device by itself and tells a staff
member without a device to enrol. Its sign-ins and sign-outs (``auth.login``,
``auth.logout``), its password changes (``auth.password_changed``) and the wrong passwords
and codes of both pages (``auth.login_failed``, by keyed digest of the address, as allauth's
adapter records the API's) are audited here: Django's login never goes through allauth. An
account whose admin-set password still waits to be changed is kept out, as on the API.

A device is removed only by an admin, on the admin site's page of TOTP devices (one, or
several at once): each removal is audited (``auth.totp_removed``, see
``accounts.admin.TOTPDeviceAdmin``); no API or command removes one.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from base64 import b32encode
from typing import Any

import qrcode
import qrcode.image.svg
from allauth.core.internal.ratelimit import truncate_ip
from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth import login as auth_login
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import devices_for_user, user_has_device
from django_otp import login as otp_login
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite
from django_otp.plugins.otp_totp.models import TOTPDevice, default_key

from accounts.errors import SecondFactorInvalid, SecondFactorNotEnrolled, SecondFactorThrottled
from accounts.models import STAFF_ROLES, User
from audit.services import client_ip, record_from_request
from core import ratelimit
from core.errors import Forbidden, Unauthenticated

SESSION_KEY = "accounts_otp_enrol"
PENDING_TTL = 10 * 60  # seconds between the password step and the token
DEVICE_NAME = "Authenticator app"

# Failed passwords on the enrolment page: (limit, window in seconds).
PASSWORD_FAILURES_PER_EMAIL = (5, 5 * 60)
PASSWORD_FAILURES_PER_IP = (20, 5 * 60)

ENROL_URL_NAME = "admin_otp_enrol"

_RATE_LIMITED = _("Too many failed attempts. Please try again in a few minutes.")
_PASSWORD_CHANGE_REQUIRED = _(
    "This account must change its password before using the admin site. Change it in the "
    "app, then sign in here again."
)


# --- Admin site -------------------------------------------------------------------------


class StaffOTPAdminAuthenticationForm(OTPAdminAuthenticationForm):
    """django-otp's admin login form, less the device drop-down for the usual case.

    A user with exactly one confirmed device need not choose it; a staff member with none is
    told to enrol (only after the right password, so nothing leaks to a guesser).
    """

    otp_error_messages = dict(
        OTPAdminAuthenticationForm.otp_error_messages,
        no_device=_(
            "This account has no authenticator app yet. Set up two-factor authentication first."
        ),
    )
    error_messages = {
        **OTPAdminAuthenticationForm.error_messages,
        "invalid_login": _("Please enter a correct e-mail address, password and code."),
        "rate_limited": _RATE_LIMITED,
        "password_change_required": _PASSWORD_CHANGE_REQUIRED,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rate_limited = False
        self.password_passed = False

    def clean(self) -> dict[str, Any]:
        """Failures count against the enrolment page's limits (per address, per client IP),
        and whatever was wrong, the password or the code, the answer is the same; each is
        audited (``auth.login_failed``). An account that must change an admin-set password
        is refused after both factors passed (as on the API: the password first)."""
        email = (self.cleaned_data.get("username") or "").lower()
        keys = _failure_keys(self.request, email)
        if _count_attempt(keys):
            self.rate_limited = True
            raise forms.ValidationError(self.error_messages["rate_limited"], code="rate_limited")
        try:
            cleaned = super().clean()
        except forms.ValidationError as exc:
            if exc.code == "no_device":  # said only after the right password (see above)
                _give_attempt_back(keys)
                raise
            admin_login_failed(
                self.request,
                login=email,
                method="totp" if self.password_passed else "password",
                page="login",
            )
            raise forms.ValidationError(
                self.error_messages["invalid_login"], code="invalid_login"
            ) from exc
        _give_attempt_back(keys)
        user = self.get_user()
        if user is not None and getattr(user, "must_change_password", False):
            raise forms.ValidationError(
                self.error_messages["password_change_required"], code="password_change_required"
            )
        return cleaned

    def clean_otp(self, user: Any) -> None:
        self.password_passed = user is not None
        if user is not None and not self.cleaned_data.get("otp_device"):
            devices = list(devices_for_user(user))
            if not devices:
                raise forms.ValidationError(self.otp_error_messages["no_device"], code="no_device")
            if len(devices) == 1:
                self.cleaned_data["otp_device"] = devices[0].persistent_id
        super().clean_otp(user)


class StaffOTPAdminSite(OTPAdminSite):
    """The admin site's class: TOTP required, with a way in for staff without a device."""

    login_form = StaffOTPAdminAuthenticationForm
    login_template = "accounts/otp_admin_login.html"

    def has_permission(self, request: HttpRequest) -> bool:
        """Not while an admin-set password waits to be changed (on the API, first thing)."""
        return super().has_permission(request) and not getattr(
            request.user, "must_change_password", False
        )

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """Django's login, never allauth's: its sign-ins are audited here (``auth.login``),
        its failures by the form."""
        response = super().login(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        if getattr(form, "rate_limited", False):
            response.status_code = 429
        # A POST to the login view answers a redirect only once it has logged the user in.
        if request.method == "POST" and response.status_code == 302:
            user = request.user
            if user.is_authenticated:
                _admin_session_audited(request, user, "auth.login")
        return response

    def password_change(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        """A staff member's own password, changed here as on the API (allauth's adapter):
        audited (``auth.password_changed``) and the account's sockets closed (its tokens,
        made with the old password, are refused already; this browser's session is kept)."""
        response = super().password_change(request, extra_context)
        # The view answers a redirect only once the new password is saved.
        user = request.user
        if request.method == "POST" and response.status_code == 302 and user.is_authenticated:
            from accounts.services import access_revoked

            access_revoked(user_id=user.pk)
            _admin_session_audited(request, user, "auth.password_changed")
        return response

    def logout(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """Audited (``auth.logout``) once the session has ended."""
        user = request.user
        signed_in = request.method == "POST" and user.is_authenticated
        response = super().logout(request, extra_context)
        if signed_in and not request.user.is_authenticated:
            _admin_session_audited(request, user, "auth.logout")
        return response


# --- Audit of the admin site's sign-ins (Django's login: allauth's adapter never sees them) --


def _admin_session_audited(request: HttpRequest, user: Any, action: str) -> None:
    """An admin-site sign-in (``auth.login``), sign-out (``auth.logout``) or password change
    (``auth.password_changed``) of ``user``."""
    record_from_request(
        request,
        action=action,
        actor_id=user.pk,
        actor_role=str(getattr(user, "role", "") or ""),
        target_type="user",
        target_id=str(user.pk),
        data={"site": "admin"},
    )


def admin_login_failed(request: HttpRequest, *, login: str, method: str, page: str) -> None:
    """A wrong password or code on the admin site's login or enrolment page, audited as the
    API's are (``accounts.adapter``): the account when there is one, and the keyed digest of
    the address tried, never the address itself (the trail outlives an erasure)."""
    from accounts.adapter import _user_by_login, login_digest

    user = _user_by_login(login)
    record_from_request(
        request,
        action="auth.login_failed",
        target_type="user" if user else "",
        target_id=str(user.pk) if user else "",
        data={
            "site": "admin",
            "page": page,
            "method": method,
            "login_digest": login_digest(login),
        },
    )


# --- Forms ------------------------------------------------------------------------------


class EnrolPasswordForm(forms.Form):
    email = forms.EmailField(label=_("E-mail address"), max_length=254)
    password = forms.CharField(label=_("Password"), strip=False, widget=forms.PasswordInput)

    error_messages = {
        "invalid_login": _("Please enter a correct e-mail address and password."),
        "rate_limited": _RATE_LIMITED,
    }

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request = request
        self.user: User | None = None
        self.rate_limited = False

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        email = (cleaned.get("email") or "").lower()
        password = cleaned.get("password")
        if not email or not password:
            return cleaned
        keys = _failure_keys(self.request, email)
        if _count_attempt(keys):
            self.rate_limited = True
            raise forms.ValidationError(self.error_messages["rate_limited"], code="rate_limited")
        user = authenticate(self.request, username=email, password=password)
        if not isinstance(user, User) or not user.is_active:
            admin_login_failed(self.request, login=email, method="password", page="enrol")
            raise forms.ValidationError(self.error_messages["invalid_login"], code="invalid_login")
        _give_attempt_back(keys)
        self.user = user
        return cleaned


class EnrolTokenForm(forms.Form):
    otp_token = forms.RegexField(
        label=_("Code from the app"),
        regex=r"^\d{6}$",
        max_length=6,
        error_messages={"invalid": _("Enter the 6-digit code shown by the app.")},
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


# --- Failure limits (enrolment and admin login share them) -----------------------------


def _failure_keys(request: HttpRequest, email: str) -> list[tuple[str, int, int]]:
    digest = hashlib.sha256(email.encode()).hexdigest()
    return [
        (f"otp-enrol-fail:email:{digest}", *PASSWORD_FAILURES_PER_EMAIL),
        # An IPv6 client holds a whole /64: counted as one address, as allauth counts it.
        (f"otp-enrol-fail:ip:{truncate_ip(client_ip(request) or '-')}", *PASSWORD_FAILURES_PER_IP),
    ]


def _count_attempt(keys: list[tuple[str, int, int]]) -> bool:
    """Count an attempt against each limit before its password and code are checked, and
    answer whether it is over one (it stays counted: a client that keeps trying stays
    limited). Counted only after a failed check, parallel guesses all passed a limit that
    none of them had added to yet. A right password and code give their attempt back
    (:func:`_give_attempt_back`): only failures use a limit up, so staff signing in from one
    office address do not lock each other out. Counted by :func:`core.ratelimit.add`."""
    # Every key, always: an attempt over one limit still counts against the other.
    counts = [ratelimit.add(key, 1, window=window) for key, _limit, window in keys]
    return any(count > limit for count, (_key, limit, _window) in zip(counts, keys, strict=True))


def _give_attempt_back(keys: list[tuple[str, int, int]]) -> None:
    for key, _limit, window in keys:
        ratelimit.add(key, -1, window=window)


# --- Helpers ----------------------------------------------------------------------------


def is_staff_user(user: User) -> bool:
    """Staff who may enrol: not while an admin-set password still waits to be changed
    (whoever set it knows it)."""
    return bool(
        user.is_active
        and user.is_staff
        and user.role in STAFF_ROLES
        and not user.must_change_password
    )


def _pending_user(request: HttpRequest) -> User | None:
    """The user who passed the password step in this session, if still valid."""
    state = request.session.get(SESSION_KEY)
    if not isinstance(state, dict):
        return None
    if time.time() - float(state.get("at", 0)) > PENDING_TTL:
        request.session.pop(SESSION_KEY, None)
        return None
    try:
        user_id = uuid.UUID(str(state.get("user")))
    except ValueError:
        user_id = None
    user = User.objects.filter(pk=user_id).first() if user_id else None
    if (
        user is None
        or not is_staff_user(user)
        or not constant_time_compare(str(state.get("hash", "")), user.get_session_auth_hash())
    ):
        request.session.pop(SESSION_KEY, None)
        return None
    return user


def _fresh_unconfirmed_device(user: User) -> TOTPDevice:
    """The user's unconfirmed device (made if none), with a new secret: each password step
    gets its own. Whoever passed it before (in another browser) held the same secret, and
    would have held the staff member's second factor once confirmed; their page now shows
    the set-up as ended (:func:`_enrolment_device`)."""
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(user=user, confirmed=False)
            .order_by("id")
            .first()
        )
        if device is None:
            return TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)
        device.key = default_key()
        device.save(update_fields=["key"])
    return device


def _key_digest(device: TOTPDevice) -> str:
    """What the session keeps of the secret it was shown (never the secret itself)."""
    return hashlib.sha256(device.key.encode()).hexdigest()


def _enrolment_device(request: HttpRequest, user: User) -> TOTPDevice | None:
    """The unconfirmed device this session's password step gave a secret, while it still
    has that secret (no later password step gave it another)."""
    state = request.session.get(SESSION_KEY) or {}
    device = TOTPDevice.objects.filter(
        user=user, confirmed=False, pk=state.get("device") or 0
    ).first()
    if device is None or not constant_time_compare(str(state.get("key", "")), _key_digest(device)):
        return None
    return device


def qr_svg(data: str) -> SafeString:
    """An inline SVG QR code for ``data``; our own markup, no text from ``data`` in it."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathFillImage, box_size=8, border=2)
    return mark_safe(image.to_string(encoding="unicode"))  # noqa: S308


def _context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    from django.contrib import admin

    return {**admin.site.each_context(request), "title": _("Two-factor authentication"), **extra}


def _admin_login_redirect() -> HttpResponseRedirect:
    return redirect(reverse("admin:login"))


# --- View -------------------------------------------------------------------------------


@sensitive_post_parameters("password", "otp_token")
@csrf_protect
@never_cache
def enrol(request: HttpRequest) -> HttpResponse:
    """``/admin/otp/enrol/``: password, then scan and confirm a TOTP device."""
    if request.method == "GET" and "restart" in request.GET:
        request.session.pop(SESSION_KEY, None)
        return redirect(request.path)
    if request.method not in ("GET", "HEAD", "POST"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})

    if request.method == "POST" and request.POST.get("step") == "password":
        return _password_step(request)
    user = _pending_user(request)
    if user is None:
        return _password_step(request)
    if user_has_device(user, confirmed=True):
        request.session.pop(SESSION_KEY, None)
        return _admin_login_redirect()
    return _token_step(request, user)


def _password_step(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        form = EnrolPasswordForm(request)
        return render(request, "accounts/otp_enrol.html", _context(request, form=form))

    form = EnrolPasswordForm(request, request.POST)
    if not form.is_valid() or form.user is None:
        status = 429 if form.rate_limited else 200
        return render(
            request, "accounts/otp_enrol.html", _context(request, form=form), status=status
        )
    user = form.user
    if not is_staff_user(user):
        raise PermissionDenied
    if user_has_device(user, confirmed=True):
        request.session.pop(SESSION_KEY, None)
        return _admin_login_redirect()

    device = _fresh_unconfirmed_device(user)
    request.session.cycle_key()
    request.session[SESSION_KEY] = {
        "user": str(user.pk),
        "at": time.time(),
        "hash": user.get_session_auth_hash(),
        "device": device.pk,
        "key": _key_digest(device),
    }
    return redirect(request.path)


def _token_step(request: HttpRequest, user: User) -> HttpResponse:
    device = _enrolment_device(request, user)
    form = EnrolTokenForm(request.POST if request.method == "POST" else None)
    if device is not None and request.method == "POST" and form.is_valid():
        confirmed = _confirm(request, user, device, form)
        if confirmed is not None:
            request.session.pop(SESSION_KEY, None)
            auth_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            otp_login(request, confirmed)
            _admin_session_audited(request, user, "auth.login")
            return redirect(reverse("admin:index"))
        device = _enrolment_device(request, user)  # its throttling, as counted
    if device is None:  # a later password step gave the device a new secret: start again
        request.session.pop(SESSION_KEY, None)
        return redirect(request.path)

    uri = device.config_url
    context = _context(
        request,
        form=form,
        pending_user=user,
        otpauth_uri=uri,
        qr_svg=qr_svg(uri),
        secret=b32encode(device.bin_key).decode(),
        restart_url=f"{request.path}?restart=1",
    )
    return render(request, "accounts/otp_enrol.html", context)


def _confirm(
    request: HttpRequest, user: User, device: TOTPDevice, form: EnrolTokenForm
) -> TOTPDevice | None:
    """Check the token under django-otp's throttling; on success confirm and audit."""
    with transaction.atomic():
        locked = TOTPDevice.objects.select_for_update().filter(pk=device.pk, user=user).first()
        if locked is None or locked.confirmed or locked.key != device.key:
            form.add_error(None, _("This set-up has expired. Please start again."))
            return None
        allowed, _info = locked.verify_is_allowed()
        if not allowed:
            form.add_error(
                "otp_token",
                _("Too many wrong codes. Wait a little, then enter the current code."),
            )
            return None
        if not locked.verify_token(form.cleaned_data["otp_token"]):
            # verify_token() has counted the failure: the next attempt must wait longer.
            form.add_error("otp_token", _("That code is not correct. Please try again."))
            return None
        locked.confirmed = True
        locked.save(update_fields=["confirmed"])
        # Recorded last, in the same transaction: a device is never confirmed unaudited.
        record_from_request(
            request,
            action="auth.totp_enrolled",
            actor_id=user.pk,
            actor_role=user.role,
            target_type="user",
            target_id=str(user.pk),
        )
    return locked


# --- The second factor on the API (see ``accounts.auth``) ---------------------------------


def second_factor_verify(request: HttpRequest, *, user: User, session: Any, code: str) -> None:
    """A staff member's token session passes the second factor with a current code of their
    confirmed device (enrolled here, on the admin site). Wrong codes count against
    django-otp's throttling of the device, as on the admin site's login (1, 2, 4 ... seconds
    between attempts: 429 with ``Retry-After`` meanwhile), and are audited
    (``auth.second_factor_failed``); a right one marks the session (``auth.second_factor``).
    Not staff: 403; no confirmed device: 403 ``auth.second_factor_not_enrolled``."""
    from accounts.auth import SECOND_FACTOR_SESSION_KEY

    if user.role not in STAFF_ROLES:
        raise Forbidden()
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(user=user, confirmed=True)
            .order_by("pk")
            .first()
        )
        if device is None:
            raise SecondFactorNotEnrolled()
        allowed, info = device.verify_is_allowed()
        if not allowed:
            until = (info or {}).get("locked_until")
            wait = (until - timezone.now()).total_seconds() if until else 1
            raise SecondFactorThrottled(retry_after=math.ceil(wait))
        passed = device.verify_token(code)  # counts a failure, or resets the count
        record_from_request(
            request,
            action="auth.second_factor" if passed else "auth.second_factor_failed",
            actor_id=user.pk,
            actor_role=user.role,
            target_type="user",
            target_id=str(user.pk),
            data={"device_id": device.pk},
        )
    if not passed:
        raise SecondFactorInvalid()
    # The session as it is now, not as the request read it: a token refresh meanwhile
    # rotated what it holds, and saving the old copy would undo that.
    fresh = type(session)(session.session_key)
    fresh[SECOND_FACTOR_SESSION_KEY] = {
        "user": str(user.pk),
        "device": device.pk,
        "at": time.time(),
    }
    if fresh.session_key is None:  # ended meanwhile (a logout): nothing left to mark
        raise Unauthenticated()
    fresh.save()


__all__ = [
    "StaffOTPAdminAuthenticationForm",
    "StaffOTPAdminSite",
    "enrol",
    "second_factor_verify",
]
