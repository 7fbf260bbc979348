"""Deliveries beyond the app: e-mail and SMS/WhatsApp (the Twilio SDK against a local stub of
Twilio's REST API), tracked, retried with backoff, never sent twice, status callbacks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from twilio.request_validator import RequestValidator

from bookings.services import appointment_book
from realtime.deliveries import channels_for, preference_set, send_deliveries
from realtime.models import Delivery, DeliveryPreference
from realtime.services import notify
from tests.accounts.test_twilio import AUTH_TOKEN, PHONE
from tests.bookings.conftest import next_slot
from tests.factories import bearer, login, make_user
from tests.platform.test_tasks import run_worker_batch
from tests.procs import run_on_sqlite

pytestmark = pytest.mark.django_db(transaction=True)
CALLBACK = "http://testserver/api/v1/realtime/twilio/status"


def reminder_for(user) -> Delivery:
    [notification] = notify(
        users=[user],
        kind="booking.reminder",
        data={},
        render=lambda u: ("Appointment reminder", "Your appointment is tomorrow."),
    )
    return Delivery.objects.get(notification=notification, channel="sms")


def sms_user():
    return make_user(phone=PHONE, phone_verified=True)


def test_a_booking_emails_both_sides_each_in_their_language(doctor_with_hours):
    doctor_with_hours.user.language = "ar"
    doctor_with_hours.user.save()
    patient = make_user(first_name="Mona")
    appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(), mode="in_person"
    )
    deliveries = Delivery.objects.filter(notification__kind="booking.created")
    assert sorted(d.channel for d in deliveries) == ["email", "email"]
    assert {d.status for d in deliveries} == {"queued"}  # sent off the request path

    run_worker_batch()

    by_recipient = {str(m.to[0]): m for m in mail.outbox}
    assert by_recipient[str(doctor_with_hours.user.email)].subject == "موعد جديد"
    assert by_recipient[str(patient.email)].subject == "New appointment"
    assert len(mail.outbox) == 2
    assert [(d.status, d.attempts) for d in Delivery.objects.all()] == [("sent", 1)] * 2


def test_preferences_choose_the_channels(api):
    user = make_user()
    auth = bearer(login(api, user.email)["access"])
    r = api.put(
        "/api/v1/notifications/preferences/booking.confirmed",
        {"channels": ["whatsapp", "email"]},
        content_type="application/json",
        headers=auth,
    )
    assert r.json() == {"kind": "booking.confirmed", "channels": ["email", "whatsapp"]}
    items = {
        p["kind"]: p["channels"]
        for p in api.get("/api/v1/notifications/preferences", headers=auth).json()["items"]
    }
    assert items["booking.confirmed"] == ["email", "whatsapp"]
    assert items["booking.reminder"] == ["email", "sms"]  # the default
    bad_kind = api.put(
        "/api/v1/notifications/preferences/no.such",
        {"channels": []},
        content_type="application/json",
        headers=auth,
    )
    assert bad_kind.status_code == 404
    assert bad_kind.json()["error"]["code"] == "realtime.unknown_kind"
    bad_channel = api.put(
        "/api/v1/notifications/preferences/booking.confirmed",
        {"channels": ["pigeon"]},
        content_type="application/json",
        headers=auth,
    )
    assert bad_channel.status_code == 422
    # WhatsApp needs a verified phone: this user has none, so only e-mail is sent.
    [n] = notify(users=[user], kind="booking.confirmed", data={}, render=lambda u: ("t", "b"))
    assert list(n.deliveries.values_list("channel", flat=True)) == ["email"]


def test_a_failing_sms_is_retried_up_to_the_limit_then_recorded_failed(twilio, settings):
    settings.DELIVERY_MAX_ATTEMPTS = 3
    settings.DELIVERY_RETRY_BACKOFF_SECONDS = 0
    twilio.fail_with = 500
    delivery = reminder_for(sms_user())

    run_worker_batch()

    delivery.refresh_from_db()
    assert len(twilio.messages) == 3
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert delivery.error == "SmsError"
    assert delivery.provider_id == ""


def test_a_retry_waits_for_its_backoff(twilio, settings):
    settings.DELIVERY_RETRY_BACKOFF_SECONDS = 30
    twilio.fail_with = 500
    delivery = reminder_for(sms_user())
    run_worker_batch()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, len(twilio.messages)) == ("queued", 1, 1)
    waiting = DBTaskResult.objects.filter(status="READY").get()
    assert waiting.run_after > timezone.now() + timedelta(seconds=25)


def test_one_task_sends_a_fan_outs_deliveries_and_a_failure_is_retried_alone(twilio, settings):
    """A notification's deliveries go out through one task (per ``DELIVERY_BATCH``); the SMS
    that fails is retried by a task of its own, the e-mails in the same batch are sent."""
    settings.DELIVERY_RETRY_BACKOFF_SECONDS = 30
    settings.DELIVERY_BATCH = 25
    twilio.fail_with = 500
    created = notify(
        users=[sms_user(), make_user(), make_user()],
        kind="booking.reminder",
        data={},
        render=lambda u: ("Appointment reminder", "Your appointment is tomorrow."),
    )
    deliveries = Delivery.objects.filter(notification__in=created)
    assert sorted(d.channel for d in deliveries) == ["email", "email", "email", "sms"]
    [batch] = DBTaskResult.objects.filter(status="READY")
    assert sorted(batch.args_kwargs["args"][0]) == sorted(str(d.id) for d in deliveries)

    run_worker_batch()

    assert len(mail.outbox) == 3 and len(twilio.messages) == 1
    assert sorted(d.status for d in deliveries.all()) == ["queued", "sent", "sent", "sent"]
    sms = deliveries.get(channel="sms")
    retry = DBTaskResult.objects.get(status="READY")
    assert retry.args_kwargs["args"] == [[str(sms.id)]]


def test_a_retried_task_does_not_send_a_second_sms(twilio, settings):
    settings.TWILIO_STATUS_CALLBACK_URL = CALLBACK
    delivery = reminder_for(sms_user())
    run_worker_batch()
    send_deliveries.enqueue([str(delivery.id)])  # the same again (a retry, a second worker)
    run_worker_batch()

    [message] = twilio.messages
    assert message.form["StatusCallback"] == [CALLBACK]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    assert delivery.provider_id == twilio.sids[0]
    assert DBTaskResult.objects.filter(return_value=["skipped: not queued"]).count() == 1


def test_twilio_status_callbacks_update_the_delivery_and_bad_signatures_are_refused(
    api, twilio, settings
):
    delivery = reminder_for(sms_user())
    run_worker_batch()
    delivery.refresh_from_db()
    params = {"MessageSid": delivery.provider_id, "MessageStatus": "delivered"}
    good = RequestValidator(AUTH_TOKEN).compute_signature(CALLBACK, params)

    def callback(data, signature):
        headers = {"X-Twilio-Signature": signature} if signature is not None else {}
        return api.post("/api/v1/realtime/twilio/status", data, headers=headers)

    for signature in (
        "bad",
        None,
        RequestValidator("other-token").compute_signature(CALLBACK, params),
    ):
        r = callback(params, signature)
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "realtime.bad_signature"
    tampered = {**params, "MessageStatus": "failed"}
    assert callback(tampered, good).status_code == 403
    delivery.refresh_from_db()
    assert delivery.status == "sent"

    assert callback(params, good).status_code == 204
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    late = {"MessageSid": delivery.provider_id, "MessageStatus": "sent"}
    sig = RequestValidator(AUTH_TOKEN).compute_signature(CALLBACK, late)
    assert callback(late, sig).status_code == 204
    delivery.refresh_from_db()
    assert delivery.status == "delivered"  # a late "sent" does not move it back


def test_a_status_callback_before_the_worker_stored_the_id_is_applied_once_it_is(
    api, twilio, monkeypatch
):
    """Twilio answers the send, then calls back at once, while the worker has yet to save
    the message's id: the callback finds no delivery, and its status must not be lost."""
    from realtime import deliveries

    real_send = deliveries._send
    answers = []

    def send_then_call_back(delivery):
        sid = real_send(delivery)
        if delivery.channel != "sms":
            return sid
        params = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}
        sig = RequestValidator(AUTH_TOKEN).compute_signature(CALLBACK, params)
        r = api.post("/api/v1/realtime/twilio/status", params, headers={"X-Twilio-Signature": sig})
        answers.append(r.status_code)
        return sid

    monkeypatch.setattr(deliveries, "_send", send_then_call_back)
    delivery = reminder_for(sms_user())
    run_worker_batch()
    delivery.refresh_from_db()
    assert answers == [204]
    assert (delivery.status, delivery.error) == ("failed", "provider error 30003")


def test_an_early_sent_does_not_replace_an_early_final_status():
    from realtime import deliveries

    user = sms_user()
    delivery = reminder_for(user)
    assert not deliveries.delivery_status_update(provider_id="SMearly", status="delivered")
    assert not deliveries.delivery_status_update(provider_id="SMearly", status="sent")
    assert not deliveries.delivery_status_update(provider_id="SMearly", status="queued")
    Delivery.objects.filter(pk=delivery.pk).update(status="sent", provider_id="SMearly")
    deliveries._apply_early_status("SMearly")
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


def test_whatsapp_goes_through_twilio_with_whatsapp_numbers(twilio):
    user = sms_user()
    DeliveryPreference.objects.create(user=user, kind="booking.reminder", channels=["whatsapp"])
    reminder = notify(
        users=[user], kind="booking.reminder", data={}, render=lambda u: ("Reminder", "Soon.")
    )[0]
    run_worker_batch()
    [message] = twilio.messages
    assert message.form["To"] == [f"whatsapp:{PHONE}"]
    assert message.form["Body"] == ["Reminder: Soon."]
    assert reminder.deliveries.get().status == "sent"


def test_an_anymail_provider_s_message_id_is_recorded(settings):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    user = make_user()
    [n] = notify(users=[user], kind="booking.confirmed", data={}, render=lambda u: ("t", "b"))
    run_worker_batch()
    delivery = n.deliveries.get()
    assert delivery.status == "sent"
    [message] = mail.outbox
    # The test backend's message id (its outbox index), as a provider's would be.
    assert message.anymail_status.message_id == 0
    assert delivery.provider_id == "0"


def test_a_callback_body_that_is_not_a_form_is_422_not_500(api):
    """Found by the API fuzz run: a multipart content type without a boundary."""
    r = api.generic(
        "POST",
        "/api/v1/realtime/twilio/status",
        b"MessageSid=SM1",
        content_type="multipart/form-data",
        headers={"X-Twilio-Signature": "x", "Accept-Language": "ar"},
    )
    assert r.status_code == 422
    body = r.json()["error"]
    assert body["code"] == "request.invalid" and body["fields"].keys() == {"body"}
    assert body["fields"]["body"] != "The request body is not valid form data."  # in Arabic


def test_a_delivery_left_sending_by_a_dead_worker_is_recorded_failed_not_sent_again(settings):
    """A worker that claimed a delivery and died mid-send leaves it ``sending``: after the
    timeout, housekeeping records it ``failed`` (interrupted) and nothing sends it again; a
    recent claim and a queued delivery are left alone."""
    from realtime.deliveries import INTERRUPTED, deliveries_housekeeping

    settings.DELIVERY_SENDING_TIMEOUT_SECONDS = 600
    notifications = notify(
        users=[make_user() for _ in range(3)],
        kind="booking.reminder",
        data={},
        render=lambda u: ("Appointment reminder", "Your appointment is tomorrow."),
    )
    stuck, recent, queued = (Delivery.objects.get(notification=n) for n in notifications)
    long_ago = timezone.now() - timedelta(minutes=11)
    Delivery.objects.filter(id=stuck.id).update(status="sending", attempts=1, updated_at=long_ago)
    Delivery.objects.filter(id=recent.id).update(status="sending", attempts=1)
    DBTaskResult.objects.all().delete()  # no send task left: only housekeeping may touch them

    assert deliveries_housekeeping.call()["interrupted"] == 1
    assert deliveries_housekeeping.call()["interrupted"] == 0
    statuses = dict(Delivery.objects.values_list("id", "status"))
    assert (statuses[stuck.id], statuses[recent.id], statuses[queued.id]) == (
        "failed",
        "sending",
        "queued",
    )
    stuck.refresh_from_db()
    assert stuck.error == INTERRUPTED and stuck.attempts == 1
    # Each run scheduled the next one; the worker runs those and sends nothing.
    assert DBTaskResult.objects.filter(
        task_path="realtime.deliveries.deliveries_housekeeping", status="READY"
    ).exists()
    run_worker_batch()
    assert mail.outbox == []
    assert Delivery.objects.get(id=stuck.id).status == "failed"


def test_one_command_starts_every_housekeeping_loop_once():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("schedule_housekeeping", stdout=out)
    lines = out.getvalue().splitlines()
    assert sorted(lines) == [
        "bookings.tasks.housekeeping: scheduled",
        "core.reclaim.tasks_reclaim: scheduled",
        "realtime.deliveries.deliveries_housekeeping: scheduled",
        "records.tasks.records_housekeeping: scheduled",
    ]
    again = StringIO()
    call_command("schedule_housekeeping", stdout=again)
    assert all(line.endswith(": already scheduled") for line in again.getvalue().splitlines())
    assert DBTaskResult.objects.filter(status="READY").count() == 4


def test_a_fan_out_follows_each_recipients_channels_in_one_statement_for_rows_and_deliveries(
    django_assert_num_queries,
):
    """On PostgreSQL ``notify()`` writes the deliveries in its one statement: the channels it
    picks are those of ``channels_for`` (the saved preference for the kind, else the
    defaults, each only where the recipient can be reached)."""
    users = [make_user() for _ in range(4)] + [sms_user(), make_user(phone="+12025550143")]
    preference_set(user=users[1], kind="booking.confirmed", channels=[])  # no e-mail
    preference_set(user=users[2], kind="booking.cancelled", channels=[])  # another kind
    preference_set(user=users[4], kind="booking.confirmed", channels=["sms", "whatsapp", "email"])
    preference_set(user=users[5], kind="booking.confirmed", channels=["sms"])  # not verified
    # BEGIN, the rows with their deliveries, one task for them, COMMIT.
    with django_assert_num_queries(1 + 1 + 1 + 1):
        created = notify(users=users, kind="booking.confirmed", data={}, render=lambda u: ("t", ""))
    sent = {
        n.user_id: list(n.deliveries.order_by("channel").values_list("channel", flat=True))
        for n in created
    }
    assert sent == {
        users[0].pk: ["email"],
        users[1].pk: [],
        users[2].pk: ["email"],
        users[3].pk: ["email"],
        users[4].pk: ["email", "sms", "whatsapp"],
        users[5].pk: [],
    }
    saved = dict(
        DeliveryPreference.objects.filter(kind="booking.confirmed").values_list("user", "channels")
    )
    for user in users:
        assert sent[user.pk] == channels_for(user, "booking.confirmed", saved.get(user.pk))
    [task] = DBTaskResult.objects.filter(task_path__endswith="send_deliveries")
    ids = {str(i) for i in Delivery.objects.values_list("id", flat=True)}
    assert set(task.args_kwargs["args"][0]) == ids and len(ids) == 6
    rows = Delivery.objects.values_list("status", "attempts", "provider_id", "error")
    assert set(rows) == {("queued", 0, "", "")}
    # The defaults of another kind: a reminder goes by e-mail and, with a verified phone, SMS.
    [reminder] = notify(
        users=[users[4]], kind="booking.reminder", data={}, render=lambda u: ("t", "")
    )
    assert sorted(reminder.deliveries.values_list("channel", flat=True)) == ["email", "sms"]


SQLITE_SCRIPT = """
from django_tasks_db.models import DBTaskResult
from realtime.deliveries import preference_set
from realtime.models import Delivery
from realtime.services import notify
from tests.factories import make_user

users = [make_user(), make_user(), make_user(phone="+12025550143", phone_verified=True)]
preference_set(user=users[1], kind="booking.confirmed", channels=[])
preference_set(user=users[2], kind="booking.confirmed", channels=["whatsapp", "email"])
created = notify(users=users, kind="booking.confirmed", data={}, render=lambda u: ("t", ""))
sent = [sorted(n.deliveries.values_list("channel", flat=True)) for n in created]
assert sent == [["email"], [], ["email", "whatsapp"]], sent
[task] = DBTaskResult.objects.filter(task_path__endswith="send_deliveries")
ids = {str(i) for i in Delivery.objects.values_list("id", flat=True)}
assert set(task.args_kwargs["args"][0]) == ids and len(ids) == 3, task.args_kwargs
print("sqlite ok")
"""


def test_on_sqlite_the_deliveries_follow_the_same_rule(tmp_path):
    """``make run``'s SQLite: the deliveries are written by the ORM (``deliveries_create``),
    by the same rule as PostgreSQL's statement, and enqueued in one task."""
    run_on_sqlite(SQLITE_SCRIPT, tmp_path / "var")
