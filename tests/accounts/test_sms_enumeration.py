"""Login and sign-up codes by SMS tell nobody which numbers are accounts': the code is texted
by the task worker, and a number that is nobody's enqueues a message too (an empty one), so
the request does the same work, takes the same time and ends the same way, whether the number
is an account's or not, and whether the provider is up or not. The task row holds neither the
number nor the code in clear; the worker tries again a message the provider refused, never one
it may have taken, and logs neither."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts import tasks
from core import sms
from tests.accounts.sms_queue import run_waiting, waiting
from tests.accounts.stubs import Recorded, Reply, StubServer
from tests.accounts.test_twilio import FakeTwilio, _code_from, twilio  # noqa: F401  (fixture)
from tests.factories import AUTH, PASSWORD, make_user, post

pytestmark = pytest.mark.django_db

KNOWN = "+201001234567"
UNKNOWN = "+201009999999"


@pytest.fixture
def twilio_down(twilio: FakeTwilio, settings: Any) -> Iterator[None]:  # noqa: F811
    """Twilio configured, but nothing listens where it is."""
    closed = StubServer(twilio.respond)
    closed.start()
    closed.stop()
    settings.TWILIO_API_BASE_URL = closed.base_url
    sms._provider.cache_clear()
    yield
    sms._provider.cache_clear()


def _flows(response: Any) -> list[dict[str, Any]]:
    return response.json()["data"]["flows"]


def test_a_code_request_answers_alike_for_a_known_and_an_unknown_number_with_twilio_down(
    api: Client, twilio_down: None
) -> None:
    make_user(phone=KNOWN, phone_verified=True)

    known = post(api, f"{AUTH}/auth/code/request", {"phone": KNOWN})
    unknown = post(Client(), f"{AUTH}/auth/code/request", {"phone": UNKNOWN})

    assert (known.status_code, unknown.status_code) == (401, 401), known.content
    assert _flows(known) == _flows(unknown)
    assert {"id": "login_by_code", "is_pending": True} in _flows(known)
    assert waiting().count() == 2  # one message enqueued by each request


def test_a_phone_sign_up_answers_alike_for_a_taken_and_a_free_number_with_twilio_down(
    api: Client, twilio_down: None
) -> None:
    make_user(phone=KNOWN, phone_verified=True)

    taken = post(
        api, f"{AUTH}/auth/signup", {"email": "a@example.com", "phone": KNOWN, "password": PASSWORD}
    )
    free = post(
        Client(),
        f"{AUTH}/auth/signup",
        {"email": "b@example.com", "phone": UNKNOWN, "password": PASSWORD},
    )

    assert (taken.status_code, free.status_code) == (401, 401), free.content
    assert _flows(taken) == _flows(free)
    assert {"id": "verify_phone", "is_pending": True} in _flows(free)
    assert waiting().count() == 2


def test_a_code_is_taken_by_the_worker_before_tasks_that_waited_longer(api: Client) -> None:
    from django_tasks_db.models import DBTaskResult

    from tests.testapp.tasks import record_run

    record_run.enqueue("earlier")  # a scan, a delivery... enqueued first
    make_user(phone=KNOWN, phone_verified=True)
    post(api, f"{AUTH}/auth/code/request", {"phone": KNOWN})
    first = DBTaskResult.objects.ready().first()
    assert first is not None and first.task_path == tasks.sms_code_send.module_path


def test_the_code_leaves_from_the_worker_sealed_in_its_task_row(
    api: Client,
    twilio: FakeTwilio,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    make_user(phone=KNOWN, phone_verified=True)

    r = post(api, f"{AUTH}/auth/code/request", {"phone": KNOWN})

    assert r.status_code == 401
    assert twilio.messages == []  # the request never waited on Twilio
    [row] = waiting()
    assert run_waiting() == ["sent"]
    [message] = twilio.messages
    assert message.form["To"] == [KNOWN]
    code = _code_from(message.form["Body"][0])
    stored = json.dumps(row.args_kwargs)
    assert KNOWN not in stored and code not in stored
    assert stored.count("enc1:") == 1
    assert code not in caplog.text and KNOWN not in caplog.text


def test_an_unknown_number_enqueues_a_message_that_texts_nobody(
    api: Client,
    twilio: FakeTwilio,  # noqa: F811
) -> None:
    r = post(api, f"{AUTH}/auth/code/request", {"phone": UNKNOWN})

    assert r.status_code == 401
    [row] = waiting()
    assert UNKNOWN not in json.dumps(row.args_kwargs)
    assert run_waiting() == ["nothing to send"]
    assert twilio.messages == []


def test_a_message_twilio_refused_is_tried_again_later_then_given_up(
    twilio: FakeTwilio,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    twilio.fail_with = 500
    tasks.sms_code_enqueue(to=KNOWN, body="Your Telemed code is ABCD-EFGH.")
    [first] = waiting()
    call = first.args_kwargs

    assert tasks.sms_code_send.call(*call["args"], **call["kwargs"]) == "retry"
    [again] = waiting().exclude(id=first.id)
    assert again.run_after > timezone.now()
    assert again.args_kwargs["args"] == [call["args"][0], 2]
    assert tasks.sms_code_send.call(call["args"][0], tasks.SMS_CODE_ATTEMPTS) == "failed"
    assert len(twilio.messages) == 2
    assert "ABCD-EFGH" not in caplog.text and KNOWN not in caplog.text


def test_a_message_twilio_may_have_taken_is_not_sent_again(
    twilio: FakeTwilio,  # noqa: F811
    settings: Any,
) -> None:
    def slow(request: Recorded) -> Reply:
        time.sleep(1.0)
        return twilio.respond(request)

    with StubServer(slow) as server:
        settings.TWILIO_API_BASE_URL = server.base_url
        settings.SMS_TIMEOUT = 0.3
        sms._provider.cache_clear()
        tasks.sms_code_enqueue(to=KNOWN, body="Your Telemed code is ABCD-EFGH.")
        try:
            assert run_waiting() == ["unknown"]
        finally:
            sms._provider.cache_clear()
    assert waiting().count() == 0


def test_ones_own_new_number_gets_its_code_at_once(
    api: Client,
    twilio: FakeTwilio,  # noqa: F811
) -> None:
    """Nothing to hide from the account's owner: the code is texted in the request (and a
    provider that is down answers 503, tests/accounts/test_phone.py)."""
    user = make_user()
    access = post(api, f"{AUTH}/auth/login", {"email": user.email, "password": PASSWORD}).json()[
        "meta"
    ]["access_token"]
    auth = {"Authorization": f"Bearer {access}"}
    assert (
        post(api, f"{AUTH}/auth/reauthenticate", {"password": PASSWORD}, **auth).status_code == 200
    )

    r = post(api, f"{AUTH}/account/phone", {"phone": KNOWN}, **auth)

    assert r.status_code == 202, r.content
    assert [m.form["To"] for m in twilio.messages] == [[KNOWN]]
    assert waiting().count() == 0
