from __future__ import annotations

from typing import Any
from urllib.parse import ParseResult

from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.conf import settings


class SocketOriginValidator(OriginValidator):
    """Channels' ``AllowedHostsOriginValidator``, plus the CORS allow-list, and one change:
    a handshake without an ``Origin`` header is let through.

    Browsers always send ``Origin`` on a WebSocket handshake, so cross-site socket hijacking
    is still stopped; non-browser clients (mobile apps, the ``Authorization: Bearer`` path of
    the protocol) send none, and must still reach authentication.
    """

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


def origin_validator(application: Any) -> SocketOriginValidator:
    hosts_validator = AllowedHostsOriginValidator(application)
    allowed = list(hosts_validator.allowed_origins) + list(settings.CORS_ALLOWED_ORIGINS)
    return SocketOriginValidator(application, allowed)
