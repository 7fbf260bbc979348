"""SMS through the real Twilio SDK, against a local stub of Twilio's REST API; then a phone
login by SMS code through allauth with that provider."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.test import Client

from accounts.models import User
from core import sms
from tests.accounts.sms_queue import run_waiting
from tests.accounts.stubs import Recorded, Reply, StubServer

pytestmark = pytest.mark.django_db

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token-9f8e7d6c5b4a"
FROM_NUMBER = "+15005550006"
PHONE = "+201001234567"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


@dataclass
class FakeTwilio:
    """Answers like Twilio's Messages resource; ``fail_with`` makes it answer an error instead."""

    server: StubServer | None = None
    fail_with: int | None = None
    sids: list[str] = field(default_factory=list)

    def respond(self, request: Recorded) -> Reply:
        if request.method != "POST" or request.path != MESSAGES_PATH:
            return Reply.json(
                404,
                {"code": 20404, "message": "The requested resource was not found", "status": 404},
            )
        if self.fail_with is not None:
            return Reply.json(
                self.fail_with,
                {
                    "code": 21211 if self.fail_with == 400 else 20500,
                    "message": "The 'To' number is not a valid phone number."
                    if self.fail_with == 400
                    else "Internal Server Error",
                    "more_info": "https://www.twilio.com/docs/errors/21211",
                    "status": self.fail_with,
                },
            )
        form = {k: v[0] for k, v in request.form.items()}
        sid = f"SM{len(self.sids) + 1:032x}"
        self.sids.append(sid)
        date = "Thu, 24 Aug 2023 05:01:45 +0000"
        return Reply.json(
            201,
            {
                "account_sid": ACCOUNT_SID,
                "api_version": "2010-04-01",
                "body": form.get("Body"),
                "date_created": date,
                "date_sent": None,
                "date_updated": date,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form.get("From"),
                "messaging_service_sid": None,
                "num_media": "0",
                "num_segments": "1",
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                "status": "queued",
                "subresource_uris": {
                    "media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json"
                },
                "to": form.get("To"),
                "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
            },
        )

    @property
    def messages(self) -> list[Recorded]:
        assert self.server is not None
        return [r for r in self.server.requests if r.path == MESSAGES_PATH]


@pytest.fixture
def twilio(settings: Any) -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    with StubServer(fake.respond) as server:
        fake.server = server
        settings.SMS_PROVIDER = "twilio"
        settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
        settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
        settings.TWILIO_FROM_NUMBER = FROM_NUMBER
        settings.TWILIO_API_BASE_URL = server.base_url
        sms._provider.cache_clear()
        try:
            yield fake
        finally:
            sms._provider.cache_clear()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_twilio_send_posts_message_and_returns_twilio_sid(twilio: FakeTwilio) -> None:
    sent = sms.send(to=PHONE, body="hi")

    assert sent == sms.SentMessage(to=PHONE, body="hi", channel="sms", provider_id=twilio.sids[0])
    assert twilio.sids == ["SM" + "0" * 31 + "1"]
    [request] = twilio.messages
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["authorization"] == _basic(ACCOUNT_SID, AUTH_TOKEN)
    assert request.form == {"To": [PHONE], "From": [FROM_NUMBER], "Body": ["hi"]}


def test_twilio_whatsapp_prefixes_both_numbers(twilio: FakeTwilio) -> None:
    sent = sms.send(to=PHONE, body="Your appointment is at 10:00", channel="whatsapp")

    assert sent.channel == "whatsapp"
    assert sent.provider_id == twilio.sids[0]
    [request] = twilio.messages
    assert request.form == {
        "To": [f"whatsapp:{PHONE}"],
        "From": [f"whatsapp:{FROM_NUMBER}"],
        "Body": ["Your appointment is at 10:00"],
    }
    assert request.headers["authorization"] == _basic(ACCOUNT_SID, AUTH_TOKEN)


@pytest.mark.parametrize("status", [400, 500])
def test_twilio_error_answer_raises_sms_error(twilio: FakeTwilio, status: int) -> None:
    twilio.fail_with = status

    with pytest.raises(sms.SmsError) as excinfo:
        sms.send(to=PHONE, body="hi")

    assert str(excinfo.value) == "TwilioRestException"
    assert len(twilio.messages) == 1  # tried once, nothing claimed sent
    assert twilio.sids == []


def test_twilio_unreachable_raises_sms_error(twilio: FakeTwilio, settings: Any) -> None:
    """SmsError's contract: "refused or could not be reached". A closed port is a
    ``requests.ConnectionError``, which the SDK does not wrap in a TwilioException."""
    closed = StubServer(twilio.respond)
    closed.start()
    closed.stop()
    settings.TWILIO_API_BASE_URL = closed.base_url
    sms._provider.cache_clear()

    with pytest.raises(sms.SmsError):
        sms.send(to=PHONE, body="hi")


def _patient_with_phone() -> User:
    user = User.objects.create_user(
        "noor@example.com", "Very-secret-pw-123", phone=PHONE, phone_verified=True
    )
    EmailAddress.objects.create(user=user, email="noor@example.com", verified=True, primary=True)
    return user


def _code_from(body: str) -> str:
    match = re.fullmatch(r"Your Telemed code is (\S+)\. Do not share it with anyone\.", body)
    assert match is not None, body
    return match.group(1)


def test_phone_login_by_code_delivers_sms_through_twilio_and_returns_tokens(
    api: Client, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user = _patient_with_phone()

    requested = api.post(
        "/_allauth/app/v1/auth/code/request", {"phone": PHONE}, content_type="application/json"
    )

    assert requested.status_code == 401, requested.content
    flows = {f["id"]: f for f in requested.json()["data"]["flows"]}
    assert flows["login_by_code"]["is_pending"] is True
    session_token = requested.json()["meta"]["session_token"]
    assert twilio.messages == []  # texted by the task worker, not in the request
    assert run_waiting() == ["sent"]
    [message] = twilio.messages
    form = message.form
    assert form["To"] == [PHONE]
    assert form["From"] == [FROM_NUMBER]
    assert message.headers["authorization"] == _basic(ACCOUNT_SID, AUTH_TOKEN)
    code = _code_from(form["Body"][0])
    assert code not in caplog.text  # the SDK's request log and ours never carry the body

    confirmed = api.post(
        "/_allauth/app/v1/auth/code/confirm",
        {"code": code},
        content_type="application/json",
        headers={"X-Session-Token": session_token},
    )

    assert confirmed.status_code == 200, confirmed.content
    meta = confirmed.json()["meta"]
    assert meta["is_authenticated"] is True
    assert isinstance(meta["refresh_token"], str)
    me = api.get("/api/v1/me", headers={"Authorization": f"Bearer {meta['access_token']}"})
    assert me.status_code == 200, me.content
    assert me.json()["id"] == str(user.id)
    assert me.json()["phone"] == PHONE


def test_phone_login_wrong_code_gets_no_tokens(api: Client, twilio: FakeTwilio) -> None:
    _patient_with_phone()
    requested = api.post(
        "/_allauth/app/v1/auth/code/request", {"phone": PHONE}, content_type="application/json"
    )
    assert requested.status_code == 401, requested.content
    run_waiting()
    code = _code_from(twilio.messages[0].form["Body"][0])
    wrong = "0" * len(code) if code != "0" * len(code) else "1" * len(code)

    confirmed = api.post(
        "/_allauth/app/v1/auth/code/confirm",
        {"code": wrong},
        content_type="application/json",
        headers={"X-Session-Token": requested.json()["meta"]["session_token"]},
    )

    assert confirmed.status_code == 400, confirmed.content
    assert confirmed.json()["errors"][0]["param"] == "code"
    assert "access_token" not in confirmed.json().get("meta", {})


def test_phone_login_for_unknown_number_sends_nothing_and_answers_the_same(
    api: Client, twilio: FakeTwilio
) -> None:
    requested = api.post(
        "/_allauth/app/v1/auth/code/request",
        {"phone": "+201009999999"},
        content_type="application/json",
    )

    assert requested.status_code == 401, requested.content
    flows = {f["id"]: f for f in requested.json()["data"]["flows"]}
    assert flows["login_by_code"]["is_pending"] is True
    assert run_waiting() == ["nothing to send"]
    assert twilio.messages == []
