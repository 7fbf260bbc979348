from django.utils.translation import gettext_lazy as _

from core.errors import ApplicationError, RateLimited


class PasswordChangeRequired(ApplicationError):
    code = "auth.password_change_required"
    status = 403
    message = _("You must change your password before continuing.")


class RoleRequired(ApplicationError):
    code = "auth.role_required"
    status = 403
    message = _("Your account's role does not allow this.")


class InvalidInvitation(ApplicationError):
    code = "auth.invalid_invitation"
    status = 422
    message = _("This invitation code is not valid or has expired.")


class AccountInactive(ApplicationError):
    code = "auth.account_inactive"
    status = 403
    message = _("This account is deactivated.")


class EmailTaken(ApplicationError):
    code = "auth.email_taken"
    status = 409
    message = _("An account with this e-mail already exists.")


class CannotChangeOwnAccess(ApplicationError):
    code = "auth.cannot_change_own_access"
    status = 409
    message = _("You cannot change the role or status of your own account.")


class AdminOnly(ApplicationError):
    code = "auth.admin_only"
    status = 403
    message = _("Only an administrator can change a user's role or a staff member's account.")


class SmsUnavailable(ApplicationError):
    code = "auth.sms_unavailable"
    status = 503
    message = _("We could not send the text message right now. Please try again shortly.")


class PhoneTaken(ApplicationError):
    code = "auth.phone_taken"
    status = 409
    message = _("This phone number is already verified on another account.")


class AccountErased(ApplicationError):
    code = "auth.account_erased"
    status = 409
    message = _("This account was deleted at its owner's request and cannot be reactivated.")


class SuperuserRequired(ApplicationError):
    code = "auth.superuser_required"
    status = 403
    message = _("Only a superuser can erase an administrator's account.")


class SecondFactorRequired(ApplicationError):
    code = "auth.second_factor_required"
    status = 403
    message = _(
        "Staff accounts must confirm a code from their authenticator app before using the API."
    )


class SecondFactorNotEnrolled(ApplicationError):
    code = "auth.second_factor_not_enrolled"
    status = 403
    message = _("Set up your authenticator app on the admin site first.")


class SecondFactorInvalid(ApplicationError):
    code = "auth.second_factor_invalid"
    status = 422
    message = _("That code is not correct. Please try again.")


class SecondFactorThrottled(RateLimited):
    code = "auth.second_factor_throttled"
    message = _("Too many wrong codes. Wait a little, then enter the current code.")


class LoginCodeStale(ApplicationError):
    code = "auth.login_code_stale"
    status = 409
    message = _(
        "This code was sent to a phone number or e-mail address that no longer signs in to "
        "the account. Please sign in again."
    )
