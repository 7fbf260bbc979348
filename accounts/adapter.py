"""Where allauth calls into our code: SMS codes, phone storage, audit of logins."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest
from django.utils import translation
from django.utils.translation import gettext as _

from accounts.models import User
from accounts.services import access_revoked
from audit.services import record_from_request
from core import sms


class AccountAdapter(DefaultAccountAdapter):
    # --- phone numbers (allauth keeps them where we say) -----------------------------
    def send_verification_code_sms(
        self, user: AbstractBaseUser, phone: str, code: str, **kwargs: Any
    ) -> None:
        language = getattr(user, "language", None) or translation.get_language() or "en"
        with translation.override(language):
            body = _("Your Telemed code is %(code)s. Do not share it with anyone.") % {"code": code}
        sms.send(to=phone, body=body)

    def send_unknown_account_sms(self, phone: str, **kwargs: Any) -> None:
        # Deliberately silent: texting arbitrary numbers on request invites SMS-pumping fraud.
        return None

    def set_phone(self, user: AbstractBaseUser, phone: str, verified: bool) -> None:
        assert isinstance(user, User)
        user.phone, user.phone_verified = phone, verified
        user.save(update_fields=["phone", "phone_verified"])

    def get_phone(self, user: AbstractBaseUser) -> tuple[str, bool] | None:
        assert isinstance(user, User)
        return (user.phone, user.phone_verified) if user.phone else None

    def set_phone_verified(self, user: AbstractBaseUser, phone: str) -> None:
        assert isinstance(user, User)
        user.phone_verified = True
        user.save(update_fields=["phone_verified"])

    def get_user_by_phone(self, phone: str) -> AbstractBaseUser | None:
        return User.objects.filter(phone=phone).first()

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
        login = credentials.get("email") or credentials.get("phone") or ""
        record_from_request(request, action="auth.login_failed", data={"login": str(login)[:254]})

    def set_password(self, user: AbstractBaseUser, password: str) -> None:
        assert isinstance(user, User)
        user.set_password(password)
        user.must_change_password = False
        user.save(update_fields=["password", "must_change_password"])
        access_revoked(user_id=user.pk)  # every session was made with the old password
        request = self.request
        if request is not None:
            record_from_request(
                request, action="auth.password_changed", target_type="user", target_id=str(user.pk)
            )
