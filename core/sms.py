"""Text messages (SMS, WhatsApp) through one interface.

``SMS_PROVIDER`` picks the implementation: ``console`` prints (development), ``capture``
keeps messages in :data:`outbox` (tests), ``twilio`` sends through the official Twilio SDK
(``TWILIO_API_BASE_URL`` lets the tests point the SDK at a local stub of Twilio's REST API).
Never log a message body: it may hold a login code.

A failure is one of two kinds. :class:`SmsError`: the message was not sent (the provider could
not be reached, or answered with an error), so sending it again is safe. Its subclass
:class:`SmsOutcomeUnknown`: the request may have reached the provider (no answer in time, the
connection dropped after sending), which may have accepted it, so sending it again could send
it twice.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from django.conf import settings


@dataclass(frozen=True)
class SentMessage:
    to: str
    body: str
    channel: str  # "sms" or "whatsapp"
    provider_id: str


class SmsProvider(Protocol):
    def send(
        self, *, to: str, body: str, channel: str = "sms", status_callback: str | None = None
    ) -> SentMessage: ...


class SmsError(Exception):
    """The provider refused or could not be reached; the message was not sent (unless it is
    an :class:`SmsOutcomeUnknown`)."""


class SmsOutcomeUnknown(SmsError):
    """The request may have reached the provider, which may have accepted the message: do
    not send it again."""


outbox: list[SentMessage] = []


class CaptureProvider:
    def send(
        self, *, to: str, body: str, channel: str = "sms", status_callback: str | None = None
    ) -> SentMessage:
        message = SentMessage(
            to=to, body=body, channel=channel, provider_id=f"capture-{len(outbox) + 1}"
        )
        outbox.append(message)
        return message


class ConsoleProvider:
    def send(
        self, *, to: str, body: str, channel: str = "sms", status_callback: str | None = None
    ) -> SentMessage:
        sys.stdout.write(f"[{channel} to {to}] {body}\n")
        sys.stdout.flush()
        return SentMessage(to=to, body=body, channel=channel, provider_id="console")


class TwilioProvider:
    def __init__(self) -> None:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        self.client = Client(
            settings.TWILIO_ACCOUNT_SID,
            settings.TWILIO_AUTH_TOKEN,
            http_client=TwilioHttpClient(timeout=settings.SMS_TIMEOUT),
        )
        if settings.TWILIO_API_BASE_URL:
            self.client.api.base_url = settings.TWILIO_API_BASE_URL

    def send(
        self, *, to: str, body: str, channel: str = "sms", status_callback: str | None = None
    ) -> SentMessage:
        import requests
        from twilio.base.exceptions import TwilioException, TwilioRestException

        sender = settings.TWILIO_FROM_NUMBER
        if channel == "whatsapp":
            to, sender = f"whatsapp:{to}", f"whatsapp:{sender}"
        try:
            extra = {"status_callback": status_callback} if status_callback else {}
            message = self.client.messages.create(to=to, from_=sender, body=body, **extra)
        except TwilioRestException as exc:  # Twilio answered with an error (4xx, 429, 5xx)
            raise SmsError(type(exc).__name__) from exc
        except requests.RequestException as exc:
            if never_sent(exc):
                raise SmsError(type(exc).__name__) from exc
            raise SmsOutcomeUnknown(type(exc).__name__) from exc
        except TwilioException as exc:  # the SDK's own checks, before any request
            raise SmsError(type(exc).__name__) from exc
        return SentMessage(to=to, body=body, channel=channel, provider_id=str(message.sid))


def never_sent(exc: Exception) -> bool:
    """Whether a ``requests`` error happened before the request left (for any provider
    reached through ``requests``): a bad URL, or no
    connection made (refused, no such host, connect timeout). Any other error (a read
    timeout, a connection dropped while sending or waiting for the answer) may come after
    Twilio got the message."""
    import requests
    from requests import exceptions
    from urllib3.exceptions import NewConnectionError

    bad_url = (exceptions.InvalidURL, exceptions.MissingSchema, exceptions.InvalidSchema)
    if isinstance(exc, (requests.ConnectTimeout, *bad_url)):
        return True
    if not isinstance(exc, requests.ConnectionError) or not exc.args:
        return False
    return isinstance(getattr(exc.args[0], "reason", None), NewConnectionError)


@lru_cache(maxsize=4)
def _provider(name: str) -> SmsProvider:
    providers: dict[str, type] = {
        "console": ConsoleProvider,
        "capture": CaptureProvider,
        "twilio": TwilioProvider,
    }
    if name not in providers:
        raise ValueError(f"unknown SMS_PROVIDER {name!r}")
    return providers[name]()


def provider() -> SmsProvider:
    return _provider(settings.SMS_PROVIDER)


def send(
    *, to: str, body: str, channel: str = "sms", status_callback: str | None = None
) -> SentMessage:
    """``status_callback``: the URL the provider posts delivery status changes to."""
    return provider().send(to=to, body=body, channel=channel, status_callback=status_callback)
