"""Extra sign-up fields, picked up by allauth's headless sign-up endpoint."""

from __future__ import annotations

from django import forms
from django.http import HttpRequest

from accounts import selectors, services
from accounts.errors import InvalidInvitation
from accounts.models import Language, User


class SignupForm(forms.Form):
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    language = forms.ChoiceField(choices=Language.choices, required=False)
    invitation_code = forms.CharField(max_length=64, required=False)

    def clean_invitation_code(self) -> str:
        code = self.cleaned_data.get("invitation_code", "").strip()
        # The raw e-mail, which the e-mail field refuses on its own when it is not text (a
        # number, a list): such a one fits no invitation made for an address.
        email = self.data.get("email")
        email = email if isinstance(email, str) else ""
        if code and selectors.invitation_usable(code=code, email=email) is None:
            raise forms.ValidationError(str(InvalidInvitation.message), code="invalid_invitation")
        return code

    def signup(self, request: HttpRequest, user: User) -> None:
        data = self.cleaned_data
        services.user_complete_signup(
            user=user,
            first_name=data.get("first_name", ""),
            last_name=data.get("last_name", ""),
            language=data.get("language") or "",
            invitation_code=data.get("invitation_code", ""),
        )
