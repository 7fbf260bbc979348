from django.utils.translation import gettext_lazy as _

from core.errors import ApplicationError


class MalformedFrame(ApplicationError):
    code = "realtime.malformed"
    status = 400
    message = _("The message could not be read as a JSON object.")


class UnknownType(ApplicationError):
    code = "realtime.unknown_type"
    status = 400
    message = _("This message type is not supported.")


class MessageTooLarge(ApplicationError):
    code = "realtime.too_large"
    status = 413
    message = _("This message is too large.")


class SlowDown(ApplicationError):
    code = "realtime.rate_limited"
    status = 429
    message = _("You are sending messages too fast. Please slow down.")


class InvalidMessage(ApplicationError):
    code = "realtime.invalid"
    status = 422
    message = _("This message is missing a field or has a wrong value.")


class NotificationNotFound(ApplicationError):
    code = "realtime.notification_not_found"
    status = 404
    message = _("This notification was not found.")


class UnknownKind(ApplicationError):
    code = "realtime.unknown_kind"
    status = 404
    message = _("There is no notification of this kind.")


class BadSignature(ApplicationError):
    code = "realtime.bad_signature"
    status = 403
    message = _("The request signature is not valid.")
