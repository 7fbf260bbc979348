"""Where allauth calls into our code: SMS codes, phone storage, audit of logins."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from allauth.account import app_settings as account_settings
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.flows.reauthentication import get_reauthentication_flows
from allauth.account.internal.stagekit import clear_login, get_pending_stage
from allauth.account.stages import LoginStageKey
from allauth.core import context, ratelimit
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.providers.base import AuthProcess
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.hashers import make_password
from django.contrib.sites.shortcuts import get_current_site
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.crypto import get_random_string, salted_hmac
from django.utils.translation import gettext as _

from accounts.auth import RecentSignInRequired, signed_in_recently
from accounts.errors import LoginCodeStale
from accounts.models import User
from accounts.services import (
    access_revoked,
    unproven_phone_drop,
    user_complete_signup,
    user_phone_set,
)
from accounts.tasks import sms_code_enqueue
from audit.services import client_ip, record, record_from_request
from core import sms

if TYPE_CHECKING:
    from allauth.account.models import EmailAddress
    from allauth.socialaccount.models import SocialAccount, SocialLogin

# Set while allauth confirms an address by the code sent to confirm it (see
# :meth:`AccountAdapter.confirm_email` and :func:`email_confirmed`).
_confirming_directly: ContextVar[bool] = ContextVar("accounts_confirming_directly", default=False)


class AccountAdapter(DefaultAccountAdapter):
    # --- phone numbers (allauth keeps them where we say) -----------------------------
    def send_verification_code_sms(
        self, user: AbstractBaseUser, phone: str, code: str, **kwargs: Any
    ) -> None:
        """A login or sign-up code is texted by the task worker, and a number that is nobody's
        enqueues an empty message (:meth:`send_unknown_account_sms`): whether a number is an
        account's shows neither in the answer nor in its time, even with the provider down
        (``ACCOUNT_PREVENT_ENUMERATION``). A code to the signed-in caller's own account (a
        change of number) hides nothing from them: it is texted now, so that a failing
        provider answers 503 ``auth.sms_unavailable`` rather than a code that never comes."""
        language = getattr(user, "language", None) or translation.get_language() or "en"
        with translation.override(language):
            body = _("Your Telemed code is %(code)s. Do not share it with anyone.") % {"code": code}
        caller = getattr(context.request, "user", None)
        if caller is not None and caller.is_authenticated and caller.pk == user.pk:
            sms.send(to=phone, body=body)
        else:
            sms_code_enqueue(to=phone, body=body)

    def send_unknown_account_sms(self, phone: str, **kwargs: Any) -> None:
        # Nothing is texted (texting arbitrary numbers on request invites SMS-pumping fraud),
        # but the request does what a code's does: it enqueues a message, an empty one.
        sms_code_enqueue(to="", body="")

    def send_account_already_exists_sms(self, phone: str) -> None:
        # A sign-up with a number that is an account's: as for a number that is nobody's.
        _hash_as_a_new_account_would(self.request)
        sms_code_enqueue(to="", body="")

    def send_account_already_exists_mail(self, email: str) -> None:
        _hash_as_a_new_account_would(self.request)
        super().send_account_already_exists_mail(email)

    def set_phone(self, user: AbstractBaseUser, phone: str, verified: bool) -> None:
        assert isinstance(user, User)
        user_phone_set(user=user, phone=phone, verified=verified)

    def get_phone(self, user: AbstractBaseUser) -> tuple[str, bool] | None:
        assert isinstance(user, User)
        return (user.phone, user.phone_verified) if user.phone else None

    def set_phone_verified(self, user: AbstractBaseUser, phone: str) -> None:
        """``phone`` may be a new number (the change-phone flow verifies it before storing
        it): it replaces the old one, which no longer signs in. A login by SMS code ends here
        too (allauth's ``verify_phone_indirectly``), with the number the code was sent to:
        that login fails (409 ``auth.login_code_stale``) once the number is no longer the
        account's verified one (changed or erased since), rather than writing it back."""
        assert isinstance(user, User)
        request = context.request
        stage = get_pending_stage(request) if request is not None else None
        by_code = stage is not None and stage.key == LoginStageKey.LOGIN_BY_CODE
        try:
            user_phone_set(user=user, phone=phone, verified=True, current_only=by_code)
        except LoginCodeStale:
            clear_login(request)  # the pending login ends: the code is not tried again
            raise

    def save_user(
        self, request: HttpRequest, user: AbstractBaseUser, form: BaseForm, commit: bool = True
    ) -> AbstractBaseUser:
        """A sign-up with a phone: allauth texts the code only after the account is saved,
        and refuses to (429) when that number or this client asked for codes too often,
        which would leave an account behind that its owner was told was not made. The same
        limit is looked at first (not counted: sending the code counts it), so a refused
        sign-up creates nothing. A number already verified on an account never reaches
        here (allauth's answer to it hides that it exists) and gets the same 429 when
        sending its code is refused."""
        phone = form.cleaned_data.get("phone") if getattr(form, "_has_phone_field", False) else ""
        if phone and account_settings.PHONE_VERIFICATION_ENABLED:
            ratelimit.consume(
                request, action="verify_phone", key=phone, dry_run=True, raise_exception=True
            )
        return super().save_user(request, user, form, commit)

    def get_user_by_phone(self, phone: str) -> AbstractBaseUser | None:
        # Only a verified number is anyone's: an unverified one neither signs in nor blocks
        # another account from claiming it.
        return User.objects.filter(phone=phone, phone_verified=True).first()

    def pre_login(
        self, request: HttpRequest, user: AbstractBaseUser, *, email: str | None, **kwargs: Any
    ) -> HttpResponse | None:
        """A login by e-mail code (allauth's ``Login.email``, as a password reset's) goes on
        only while the address the code was sent to is still the account's: a code mailed
        before its owner changed the address (or erased the account) no longer signs in
        (409 ``auth.login_code_stale``). allauth itself would log in with it."""
        if email and not _owns_address(user, email):
            clear_login(request)
            raise LoginCodeStale()
        return super().pre_login(request, user, email=email, **kwargs)

    def confirm_email(self, request: HttpRequest, email_address: EmailAddress) -> bool:
        """allauth's confirmation of an address by the code (or link) sent to confirm it.
        Its other ways of verifying an address (a password reset or a login by e-mail code)
        do not come here: :func:`email_confirmed` tells them apart by this."""
        token = _confirming_directly.set(True)
        try:
            return bool(super().confirm_email(request, email_address))
        finally:
            _confirming_directly.reset(token)

    # --- failed logins (allauth's per-login limit) ------------------------------------
    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        """Failed logins are counted per account, whichever of its logins was tried (its
        addresses, its verified number): counted per login, an account with two addresses
        and a number gave three times the guesses. A login that is nobody's is counted on
        its own. (allauth's own key knows only an e-mail address or a username: every login
        by phone shared one count, and five wrong passwords for any number locked every
        number out.) A password reset clears the account's count (allauth clears it for
        each of its addresses, which all come here)."""
        login = credentials.get("email") or credentials.get("phone") or credentials.get("username")
        login = str(login or "").strip().lower()
        return _failed_logins_key(request, _account_of(request, login), login)

    def validation_error(self, code: str, *args: Any) -> ValidationError:
        """Where allauth makes its forms' errors: ``enter_current_password`` is a password
        change's wrong current password, a failed sign-in as a wrong password on
        reauthentication is (:meth:`_current_password_failed`)."""
        if code == "enter_current_password":
            self._current_password_failed()
        return super().validation_error(code, *args)

    def _current_password_failed(self) -> None:
        """Counted against the account's failed-login limit, with its failed logins (a stolen
        access token gets no guesses of its own), and audited (``auth.login_failed``) as
        they are. The change itself allows few tries (``change_password``, counted before
        the check, so that parallel guesses cannot pass it together)."""
        request = self.request
        user = getattr(request, "user", None)
        if request is None or user is None or not user.is_authenticated:
            return
        key = _failed_logins_key(request, user)
        ratelimit.consume(request, action="login_failed", key=key)
        record_from_request(
            request,
            action="auth.login_failed",
            target_type="user",
            target_id=str(user.pk),
            data={
                "method": "password",
                "page": "password_change",
                "login_digest": login_digest(user.email or ""),
            },
        )

    # --- reauthentication ------------------------------------------------------------
    def is_reauthentication_required(self, *, app: str, **kwargs: Any) -> bool:
        """allauth lets an account it has no way to reauthenticate (no password: Google
        sign-in only) change its e-mail addresses and phone with no check at all. Such an
        account must have signed in recently instead (``RECENT_SIGN_IN_MINUTES``, as for
        ``POST /api/v1/me/delete``), else 403 ``auth.recent_sign_in_required``: a stolen
        access token alone cannot take the account over."""
        required = super().is_reauthentication_required(app=app, **kwargs)
        request = context.request
        user = getattr(request, "user", None)
        if (
            required
            and user is not None
            and user.is_authenticated
            and not get_reauthentication_flows(user)
            and not signed_in_recently(getattr(request, "session", None), user)
        ):
            raise RecentSignInRequired()
        return required

    # --- the client's address (allauth's per-IP rate limits) ----------------------------
    def get_client_ip(self, request: HttpRequest) -> str:
        """The audit trail's rule (``AUDIT_TRUSTED_PROXY_COUNT``): behind our proxies the
        address the outermost one saw, else ``REMOTE_ADDR``. allauth's own rule answers 500
        to a request with fewer ``X-Forwarded-For`` entries than proxies (one that went
        around them); this one falls back to ``REMOTE_ADDR``."""
        ip = client_ip(request)
        if not ip:
            raise PermissionDenied("Unable to determine client IP address")
        return ip

    # --- audit --------------------------------------------------------------------------
    def login(self, request: HttpRequest, user: AbstractBaseUser) -> None:
        super().login(request, user)
        record_from_request(
            request, action="auth.login", target_type="user", target_id=str(user.pk)
        )

    def logout(self, request: HttpRequest) -> None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            record_from_request(
                request, action="auth.logout", target_type="user", target_id=str(user.pk)
            )
        super().logout(request)
        if user is not None and user.is_authenticated:
            # After the session is gone: its tokens are refused, its sockets close.
            access_revoked(user_id=user.pk)

    def authentication_failed(self, request: HttpRequest, **credentials: Any) -> None:
        """The append-only trail outlives an erasure, so it never holds the address or number
        tried: the account when there is one, else a keyed digest (``login_digest``) that
        still ties the attempts on one login together."""
        login = str(credentials.get("email") or credentials.get("phone") or "")
        user = _account_of(request, login)
        record_from_request(
            request,
            action="auth.login_failed",
            target_type="user" if user else "",
            target_id=str(user.pk) if user else "",
            data={"method": "password", "login_digest": login_digest(login)},
        )

    def set_password(self, user: AbstractBaseUser, password: str) -> None:
        """Also where an account with no password (Google sign-in only) is given one: allauth
        asks for no current password then, so, as for its other changes, the session must
        have signed in recently (else 403 ``auth.recent_sign_in_required``): a stolen token
        alone cannot set a password and then sign in with it. Only on the change-password
        endpoint: a reset (by e-mailed link or code) is proof enough, whether or not the
        client sent a token of an older sign-in."""
        assert isinstance(user, User)
        request = self.request
        signed_in = getattr(request, "user", None)
        match = getattr(request, "resolver_match", None)
        if (
            match is not None
            and match.url_name == "change_password"
            and signed_in is not None
            and signed_in.is_authenticated
            and signed_in.pk == user.pk
            and not user.has_usable_password()
            and not signed_in_recently(getattr(request, "session", None), user)
        ):
            raise RecentSignInRequired()
        if match is not None and match.url_name == "reset_password":
            _refuse_reset_to_a_former_address(request, user)
        user.set_password(password)
        user.must_change_password = False
        user.save(update_fields=["password", "must_change_password"])
        access_revoked(user_id=user.pk)  # every session was made with the old password
        if request is not None:
            record_from_request(
                request, action="auth.password_changed", target_type="user", target_id=str(user.pk)
            )


def _failed_logins_key(request: HttpRequest, user: AbstractBaseUser | None, login: str = "") -> str:
    """The key of allauth's failed-login limit (``login_failed``): the account's, else the
    login tried (:meth:`AccountAdapter._get_login_attempts_cache_key`)."""
    who = f"account:{user.pk}" if user is not None else login
    return f"{get_current_site(request).domain}:{who}"


def login_digest(login: str) -> str:
    """A keyed digest of a login (e-mail or phone) for the audit trail: whoever holds the
    secret key can check whether a given address was tried; nobody can read it back."""
    return salted_hmac("audit.login", login.strip().lower()).hexdigest()[:32]


def _refuse_reset_to_a_former_address(request: HttpRequest | None, user: User) -> None:
    """A password reset by e-mail code goes on only while the address the code was sent
    to is still the account's: the owner who removed an address (lost to someone else)
    has it no longer reset the password (409 ``auth.login_code_stale``, the pending reset
    ends). allauth itself would reset it."""
    from allauth.account.internal.flows.password_reset_by_code import (
        PASSWORD_RESET_VERIFICATION_SESSION_KEY,
    )

    session = getattr(request, "session", None)
    state = session.get(PASSWORD_RESET_VERIFICATION_SESSION_KEY) if session is not None else None
    if session is None or not state or str(state.get("user_id")) != str(user.pk):
        return
    if not _owns_address(user, str(state.get("email") or "")):
        session.pop(PASSWORD_RESET_VERIFICATION_SESSION_KEY, None)
        raise LoginCodeStale()


def _owns_address(user: AbstractBaseUser, email: str) -> bool:
    from allauth.account.models import EmailAddress

    return (getattr(user, "email", None) or "").lower() == email.lower() or (
        EmailAddress.objects.filter(user_id=user.pk, email__iexact=email).exists()
    )


_HASHED = "_accounts_signup_hashed"


def _hash_as_a_new_account_would(request: HttpRequest | None) -> None:
    """A sign-up with an e-mail or number that is an account's creates nothing, and would
    answer a quarter of a second sooner than one that hashes a new account's password
    (Argon2): how long it took would tell that the address has an account. It hashes a
    random password instead, once per sign-up request (only one of the two "already exists"
    messages is sent). Not on the other requests that send them (a change of address or
    number while signing up), where the new path hashes nothing either."""
    match = getattr(request, "resolver_match", None)
    if match is None or match.url_name != "signup" or getattr(request, _HASHED, False):
        return
    setattr(request, _HASHED, True)
    make_password(get_random_string(32))


def _account_of(request: HttpRequest, login: str) -> User | None:
    """:func:`_user_by_login`, looked up once per request and login: allauth asks for the
    failed-login key before authenticating, and a failure is audited after."""
    found: dict[str, User | None] = request.__dict__.setdefault("_accounts_of_logins", {})
    key = login.strip().lower()
    if key not in found:
        found[key] = _user_by_login(key)
    return found[key]


def _user_by_login(login: str) -> User | None:
    """The account an e-mail address (its own, or another of its addresses) or a verified
    number signs in to, if any."""
    from allauth.account.models import EmailAddress

    if not login:
        return None
    if "@" in login:
        user = User.objects.filter(email__iexact=login).first()
        if user is None:
            address = EmailAddress.objects.filter(email__iexact=login).select_related("user")
            user = next((a.user for a in address[:1]), None)
        return user
    return User.objects.filter(phone=login, phone_verified=True).first()


def login_code_rejected(
    sender: Any, request: HttpRequest, user: AbstractBaseUser, last_attempt: bool, **kwargs: Any
) -> None:
    """allauth's ``login_code_rejected`` signal (connected in ``AccountsConfig.ready``): a
    wrong e-mail or SMS login code is a failed login, audited as a wrong password is."""
    record_from_request(
        request,
        action="auth.login_failed",
        target_type="user",
        target_id=str(user.pk),
        data={"method": "code", "last_attempt": last_attempt},
    )


# --- changes of the ways into an account (allauth's signals, connected in AccountsConfig) ---
# The trail outlives an erasure: it holds which address (by id) and what kind of change, never
# the address itself, nor the Google account's subject.


def _account_changed(
    request: HttpRequest | None, *, action: str, user_id: Any, data: dict[str, Any]
) -> None:
    if request is None:  # a change made outside a request (a script): no client to name
        record(action=action, target_type="user", target_id=str(user_id), data=data)
        return
    record_from_request(
        request, action=action, target_type="user", target_id=str(user_id), data=data
    )


def _address(email_address: EmailAddress | None) -> dict[str, Any]:
    """An e-mail address as the trail keeps it: its id (None once deleted) and flags."""
    if email_address is None:
        return {"id": None}
    return {
        "id": email_address.pk,
        "verified": email_address.verified,
        "primary": email_address.primary,
    }


def _address_receiver(action: str) -> Any:
    """A receiver of allauth's signals about one address (added, confirmed, removed)."""

    def receiver(
        sender: Any, request: HttpRequest | None, email_address: EmailAddress, **kwargs: Any
    ) -> None:
        _account_changed(
            request,
            action=action,
            user_id=email_address.user_id,
            data={"address": _address(email_address)},
        )

    return receiver


email_added = _address_receiver("user.email_added")
email_removed = _address_receiver("user.email_removed")
_email_verified = _address_receiver("user.email_verified")


def email_confirmed(
    sender: Any, request: HttpRequest | None, email_address: EmailAddress, **kwargs: Any
) -> None:
    """Audited; and an address verified otherwise than by the code sent to confirm it (a
    password reset or a login by e-mail code: allauth's ``verify_email_indirectly``) may
    cost the account its phone number (:func:`accounts.services.unproven_phone_drop`)."""
    _email_verified(sender, request=request, email_address=email_address, **kwargs)
    if not _confirming_directly.get():
        unproven_phone_drop(
            user=email_address.user, reason="email_verified_indirectly", address_id=email_address.pk
        )


def email_changed(
    sender: Any,
    request: HttpRequest | None,
    user: Any,
    from_email_address: EmailAddress | None,
    to_email_address: EmailAddress,
    **kwargs: Any,
) -> None:
    """The login (primary) address became another one."""
    _account_changed(
        request,
        action="user.email_changed",
        user_id=to_email_address.user_id,
        data={"from": _address(from_email_address), "to": _address(to_email_address)},
    )


def social_account_added(
    sender: Any, request: HttpRequest | None, sociallogin: SocialLogin, **kwargs: Any
) -> None:
    """A Google account connected to an existing account (not a sign-up with Google)."""
    account = sociallogin.account
    _account_changed(
        request,
        action="user.social_connected",
        user_id=account.user_id,
        data={"provider": account.provider, "social_account_id": account.pk},
    )


def social_account_removed(
    sender: Any, request: HttpRequest | None, socialaccount: SocialAccount, **kwargs: Any
) -> None:
    _account_changed(
        request,
        action="user.social_disconnected",
        user_id=socialaccount.user_id,
        data={"provider": socialaccount.provider},
    )


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        """A Google sign-in into an existing account found by its e-mail address (not by a
        Google account linked to it) whose address there was not verified: allauth wipes
        the account's password (``wipe_password``: whoever signed up with the address is
        locked out), and the number they may have verified on it goes too unless another
        address of the account is verified (:func:`accounts.services.unproven_phone_drop`),
        or they would sign in by SMS code. Only where allauth would wipe it: on a login, not
        a connect."""
        email = getattr(sociallogin, "_did_authenticate_by_email", None)  # set by its lookup
        process = sociallogin.state.get("process")
        logs_in = process not in (AuthProcess.CONNECT, AuthProcess.REDIRECT)  # as complete_login
        if email and sociallogin.user is not None and logs_in:
            from allauth.account.models import EmailAddress

            address = EmailAddress.objects.filter(user_id=sociallogin.user.pk, email__iexact=email)
            if not address.filter(verified=True).exists():
                unproven_phone_drop(user=sociallogin.user, reason="google_email_authentication")
        super().pre_social_login(request, sociallogin)

    def save_user(
        self, request: HttpRequest, sociallogin: SocialLogin, form: Any = None
    ) -> AbstractBaseUser:
        """A Google sign-up ends as an e-mail one does: patient profile, audited. (With a
        form, the sign-up form's ``signup`` does it.)"""
        user = super().save_user(request, sociallogin, form)
        assert isinstance(user, User)
        if form is not None:
            return user
        return user_complete_signup(user=user, first_name=user.first_name, last_name=user.last_name)
