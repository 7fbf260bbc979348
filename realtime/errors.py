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
