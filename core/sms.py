"""Text messages (SMS, WhatsApp) through one interface.

``SMS_PROVIDER`` picks the implementation: ``console`` prints (development), ``capture``
keeps messages in :data:`outbox` (tests), ``twilio`` sends through the official Twilio SDK
(``TWILIO_API_BASE_URL`` lets the tests point the SDK at a local stub of Twilio's REST API).
Never log a message body: it may hold a login code.
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
    """The provider refused or could not be reached; the message was not sent."""


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
            http_client=TwilioHttpClient(timeout=10),
        )
        if settings.TWILIO_API_BASE_URL:
            self.client.api.base_url = settings.TWILIO_API_BASE_URL

    def send(
        self, *, to: str, body: str, channel: str = "sms", status_callback: str | None = None
    ) -> SentMessage:
        import requests
        from twilio.base.exceptions import TwilioException

        sender = settings.TWILIO_FROM_NUMBER
        if channel == "whatsapp":
            to, sender = f"whatsapp:{to}", f"whatsapp:{sender}"
        try:
            extra = {"status_callback": status_callback} if status_callback else {}
            message = self.client.messages.create(to=to, from_=sender, body=body, **extra)
        except (TwilioException, requests.RequestException) as exc:
            raise SmsError(type(exc).__name__) from exc
        return SentMessage(to=to, body=body, channel=channel, provider_id=str(message.sid))


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
