"""Deliveries under failure: a provider whose outcome is unknown is never sent to twice, an
error of one delivery leaves its batch going, lost deliveries are enqueued again, recipients
who left or opted out meanwhile get nothing, old rows are deleted. Providers are stopped at
their edge: a local SMTP server, a local stub of an HTTP API, a raw socket that takes the
request and never answers."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.services import account_delete, user_set_active
from core import sms
from realtime import deliveries
from realtime.deliveries import (
    NOT_WANTED,
    deliveries_housekeeping,
    preference_set,
    send_deliveries,
)
from realtime.models import Delivery, Notification
from realtime.services import notify
from tests.accounts.stubs import Reply, StubServer
from tests.accounts.test_twilio import PHONE
from tests.factories import bearer, login, make_user
from tests.platform.test_tasks import run_worker_batch

pytestmark = pytest.mark.django_db(transaction=True)


def reminder(user) -> Notification:
    [n] = notify(
        users=[user], kind="booking.reminder", data={}, render=lambda u: ("Reminder", "Soon.")
    )
    return n


def sms_user():
    return make_user(phone=PHONE, phone_verified=True)


def waiting_sends() -> list[DBTaskResult]:
    return list(DBTaskResult.objects.filter(task_path__endswith="send_deliveries", status="READY"))


# --- providers at their edge --------------------------------------------------------------


class RawServer:
    """A TCP server on 127.0.0.1 whose every connection is handed to ``serve(rfile, wfile)``
    in a thread of its own; ``release`` ends the connections still held (a hanging server)."""

    def __init__(self, serve: Callable[[Any, Any, RawServer], None]) -> None:
        self.release = threading.Event()
        self.received: list[bytes] = []
        raw = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                try:
                    serve(self.rfile, self.wfile, raw)
                except OSError:
                    pass  # the client went away (its timeout): what these tests cause

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def http_taker(answer: str) -> Callable[[Any, Any, RawServer], None]:
    """An HTTP server that reads the whole request, then either never answers (``hang``,
    until released) or drops the connection (``drop``)."""

    def serve(rfile: Any, wfile: Any, raw: RawServer) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = rfile.readline()
            if not line:
                return
            head += line
        length = next(
            (
                int(h.split(b":")[1])
                for h in head.split(b"\r\n")
                if h.lower().startswith(b"content-length")
            ),
            0,
        )
        raw.received.append(head + rfile.read(length))
        if answer == "hang":
            raw.release.wait(10)

    return serve


def smtp_server(after_data: str) -> Callable[[Any, Any, RawServer], None]:
    """Enough of SMTP for smtplib; after the message: ``accept`` (250), ``reject`` (451),
    ``hang`` (no answer until released) or ``drop`` (the connection closed)."""

    def serve(rfile: Any, wfile: Any, raw: RawServer) -> None:
        def say(line: str) -> None:
            wfile.write(line.encode() + b"\r\n")
            wfile.flush()

        say("220 stub ESMTP")
        while line := rfile.readline():
            verb = line[:4].upper()
            if verb == b"QUIT":
                say("221 bye")
                return
            if verb != b"DATA":
                say("250 OK")
                continue
            say("354 end with .")
            body = b""
            while (data := rfile.readline()) not in (b".\r\n", b""):
                body += data
            raw.received.append(body)
            if after_data == "hang":
                raw.release.wait(10)
                return
            if after_data == "drop":
                return
            say("250 OK queued" if after_data == "accept" else "451 4.3.0 try again later")

    return serve


@pytest.fixture
def smtp(settings) -> Iterator[Callable[[str], RawServer]]:
    """``smtp(mode)``: deliveries' e-mail goes to a local SMTP server behaving so."""
    servers: list[RawServer] = []

    def start(after_data: str) -> RawServer:
        server = RawServer(smtp_server(after_data)).__enter__()
        servers.append(server)
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
        settings.EMAIL_TIMEOUT = 0.5
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        return server

    yield start
    for server in servers:
        server.__exit__()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- 1. outcome unknown: never sent twice ---------------------------------------------------


@pytest.mark.parametrize("answer", ["hang", "drop"])
def test_sms_send_tells_an_unknown_outcome_from_a_refusal(twilio, settings, answer):
    """A request that reached Twilio and got no answer may have been accepted; one that
    never connected was not."""
    settings.SMS_TIMEOUT = 0.5
    with RawServer(http_taker(answer)) as server:
        settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{server.port}"
        sms._provider.cache_clear()
        with pytest.raises(sms.SmsOutcomeUnknown):
            sms.send(to=PHONE, body="hi")
        assert len(server.received) == 1
    settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{closed_port()}"
    sms._provider.cache_clear()
    with pytest.raises(sms.SmsError) as refused:
        sms.send(to=PHONE, body="hi")
    assert not isinstance(refused.value, sms.SmsOutcomeUnknown)


@pytest.mark.parametrize("answer", ["hang", "drop"])
def test_an_sms_that_may_have_reached_twilio_is_recorded_failed_and_not_sent_again(
    twilio, settings, answer
):
    settings.SMS_TIMEOUT = 0.5
    settings.DELIVERY_RETRY_BACKOFF_SECONDS = 0
    delivery = Delivery.objects.get(notification=reminder(sms_user()), channel="sms")
    with RawServer(http_taker(answer)) as server:
        settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{server.port}"
        sms._provider.cache_clear()
        run_worker_batch()
        assert len(server.received) == 1  # once, and never again
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.error.startswith("outcome unknown: the provider may have accepted it (")
    assert delivery.error.endswith("); not sent again")
    assert waiting_sends() == []


@pytest.mark.parametrize("status", [429, 503])
def test_an_sms_twilio_refused_is_retried(twilio, settings, status):
    settings.DELIVERY_RETRY_BACKOFF_SECONDS = 30
    twilio.fail_with = status
    delivery = Delivery.objects.get(notification=reminder(sms_user()), channel="sms")
    run_worker_batch()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.error, len(twilio.messages)) == ("queued", "SmsError", 1)
    [retry] = waiting_sends()
    assert retry.args_kwargs["args"] == [[str(delivery.id)]]


@pytest.mark.parametrize("after_data", ["hang", "drop"])
def test_an_email_whose_smtp_answer_never_came_is_recorded_failed_not_sent_again(
    smtp, settings, after_data
):
    settings.DELIVERY_RETRY_BACKOFF_SECONDS = 0
    server = smtp(after_data)
    delivery = reminder(make_user()).deliveries.get()
    run_worker_batch()
    assert len(server.received) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.error == (
        "outcome unknown: the provider may have accepted it (SMTPServerDisconnected); "
        "not sent again"
    )
    assert waiting_sends() == []


def test_an_email_the_smtp_server_refused_or_that_could_not_connect_is_retried(smtp, settings):
    settings.DELIVERY_RETRY_BACKOFF_SECONDS = 30
    server = smtp("reject")
    refused = reminder(make_user()).deliveries.get()
    run_worker_batch()
    refused.refresh_from_db()
    assert (refused.status, refused.error, len(server.received)) == ("queued", "SMTPDataError", 1)

    settings.EMAIL_PORT = closed_port()
    unreachable = reminder(make_user()).deliveries.get()
    run_worker_batch()
    unreachable.refresh_from_db()
    assert (unreachable.status, unreachable.error) == ("queued", "EmailNotConnected")
    assert sorted(r.args_kwargs["args"][0][0] for r in waiting_sends()) == sorted(
        [str(refused.id), str(unreachable.id)]
    )

    smtp("accept")
    DBTaskResult.objects.filter(status="READY").update(run_after=timezone.now())  # time passes
    run_worker_batch()
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}


def test_smtp_connections_time_out_by_default():
    """Django's default is to wait for ever; ``EMAIL_TIMEOUT`` (README) is 20 s."""
    assert SmtpBackend().timeout == 20


@pytest.mark.parametrize(
    ("answer", "status", "error"),
    [
        ("503", "queued", "AnymailRequestsAPIError"),
        (
            "slow",
            "failed",
            "outcome unknown: the provider may have accepted it (AnymailRequestsAPIError); "
            "not sent again",
        ),
    ],
)
def test_an_anymail_provider_s_error_answer_is_retried_and_its_silence_is_not(
    settings, answer, status, error
):
    settings.DELIVERY_RETRY_BACKOFF_SECONDS = 30
    released = threading.Event()

    def postmark(request) -> Reply:
        if answer == "slow":
            released.wait(5)
        return Reply.json(503, {"ErrorCode": 100, "Message": "Maintenance"})

    with StubServer(postmark) as server:
        settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
        settings.ANYMAIL = {
            "POSTMARK_SERVER_TOKEN": "server-token",
            "POSTMARK_API_URL": f"{server.base_url}/",
            "REQUESTS_TIMEOUT": 0.5,
        }
        delivery = reminder(make_user()).deliveries.get()
        run_worker_batch()
        released.set()
        assert [r.path for r in server.requests] == ["/email"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.error) == (status, error)
    assert len(waiting_sends()) == (1 if status == "queued" else 0)


def test_an_anymail_provider_not_reached_is_retried(settings):
    import socket

    with socket.socket() as probe:  # a port nobody listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {
        "POSTMARK_SERVER_TOKEN": "server-token",
        "POSTMARK_API_URL": f"http://127.0.0.1:{port}/",
    }
    delivery = reminder(make_user()).deliveries.get()
    run_worker_batch()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.error) == ("queued", "AnymailRequestsAPIError")
    assert len(waiting_sends()) == 1


# --- 2. one delivery's database error; deliveries lost before their claim -----------------


@pytest.fixture
def failing_update() -> Iterator[Callable[[Any, str], None]]:
    """``failing_update(delivery_id, status)``: the database refuses to move that delivery to
    that status (a trigger), as a failing database would."""

    def install(delivery_id: Any, status: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE OR REPLACE FUNCTION test_failing_delivery() RETURNS trigger AS $$ "
                f"BEGIN IF NEW.id = '{delivery_id}'::uuid AND NEW.status = '{status}' THEN "
                "RAISE EXCEPTION 'the database failed'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER test_failing_delivery BEFORE UPDATE ON realtime_delivery "
                "FOR EACH ROW EXECUTE FUNCTION test_failing_delivery()"
            )

    yield install
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS test_failing_delivery ON realtime_delivery")
        cursor.execute("DROP FUNCTION IF EXISTS test_failing_delivery()")


def three_reminders() -> list[str]:
    """Three e-mail deliveries in one batch task: their ids, in the task's order."""
    notify(
        users=[make_user() for _ in range(3)],
        kind="booking.reminder",
        data={},
        render=lambda u: ("Reminder", "Soon."),
    )
    [batch] = waiting_sends()
    return batch.args_kwargs["args"][0]


def test_a_claim_the_database_refuses_leaves_the_batch_going_and_housekeeping_enqueues_it_again(
    failing_update, settings
):
    first, *others = three_reminders()
    failing_update(first, "sending")
    run_worker_batch()

    [batch] = DBTaskResult.objects.filter(task_path__endswith="send_deliveries")
    assert (batch.status, batch.return_value) == (
        "SUCCESSFUL",
        ["error: left to housekeeping", "sent", "sent"],
    )
    statuses = {str(pk): status for pk, status in Delivery.objects.values_list("id", "status")}
    assert [statuses[i] for i in [first, *others]] == ["queued", "sent", "sent"]
    assert len(mail.outbox) == 2

    # The database is back. Not before the longest backoff has passed...
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_failing_delivery ON realtime_delivery")
    assert deliveries_housekeeping.call()["requeued"] == 0
    # ...but after it, the lost delivery is enqueued again, once, and sent.
    waited = timedelta(seconds=settings.DELIVERY_RETRY_MAX_BACKOFF_SECONDS, minutes=11)
    Delivery.objects.filter(id=first).update(updated_at=timezone.now() - waited)
    assert deliveries_housekeeping.call()["requeued"] == 1
    assert deliveries_housekeeping.call()["requeued"] == 0
    [again] = waiting_sends()
    assert again.args_kwargs["args"] == [[first]]
    run_worker_batch()
    assert Delivery.objects.get(id=first).status == "sent"
    assert len(mail.outbox) == 3


def test_a_send_whose_record_the_database_refuses_is_not_sent_again(failing_update, settings):
    """Sent, but "sent" could not be written: the delivery stays ``sending``, and
    housekeeping records it interrupted, never sends it again."""
    first, *others = three_reminders()
    failing_update(first, "sent")
    run_worker_batch()
    assert len(mail.outbox) == 3
    assert Delivery.objects.get(id=first).status == "sending"
    assert set(Delivery.objects.filter(id__in=others).values_list("status", flat=True)) == {"sent"}

    long_ago = timezone.now() - timedelta(seconds=settings.DELIVERY_SENDING_TIMEOUT_SECONDS + 60)
    Delivery.objects.filter(id=first).update(updated_at=long_ago)
    assert deliveries_housekeeping.call()["interrupted"] == 1
    run_worker_batch()
    assert Delivery.objects.get(id=first).status == "failed"
    assert len(mail.outbox) == 3


# --- 7. the recipient as they are when it is sent --------------------------------------------


def test_nothing_goes_to_an_account_erased_or_deactivated_or_to_a_channel_dropped_meanwhile(
    twilio,
):
    erased, deactivated, opted_out = make_user(), make_user(), make_user()
    moved = sms_user()  # e-mail and SMS by default; then e-mail only
    queued = {u.pk: reminder(u) for u in (erased, deactivated, opted_out, moved)}

    account_delete(user=erased)
    user_set_active(actor=make_user(role="admin"), user=deactivated, active=False)
    preference_set(user=opted_out, kind="booking.reminder", channels=[])
    preference_set(user=moved, kind="booking.reminder", channels=["email"])
    run_worker_batch()

    assert [m.to for m in mail.outbox] == [[moved.email]]
    assert twilio.messages == []
    outcome = {
        (user_id, d.channel): (d.status, d.error)
        for user_id, n in queued.items()
        for d in n.deliveries.all()
    }
    # Erasure deletes the erased user's notifications, their deliveries with them.
    assert not Delivery.objects.filter(notification__user=erased).exists()
    assert outcome == {
        (deactivated.pk, "email"): ("failed", NOT_WANTED),
        (opted_out.pk, "email"): ("failed", NOT_WANTED),
        (moved.pk, "email"): ("sent", ""),
        (moved.pk, "sms"): ("failed", NOT_WANTED),
    }


# --- 5. every stored kind can be routed -------------------------------------------------------


def test_chat_and_records_notifications_can_be_routed(api):
    user = make_user()
    auth = bearer(login(api, user.email)["access"])
    r = api.put(
        "/api/v1/notifications/preferences/chat.unread",
        {"channels": ["email"]},
        content_type="application/json",
        headers=auth,
    )
    assert r.status_code == 200, r.content
    listed = {
        p["kind"]: p["channels"]
        for p in api.get("/api/v1/notifications/preferences", headers=auth).json()["items"]
    }
    assert listed["chat.unread"] == ["email"]
    assert listed["records.infected"] == listed["records.rejected"] == []
    assert "chat.message" not in listed  # a socket event, never stored
    for kind in ("records.infected", "records.rejected"):
        put = api.put(
            f"/api/v1/notifications/preferences/{kind}",
            {"channels": ["email"]},
            content_type="application/json",
            headers=auth,
        )
        assert put.status_code == 200, put.content

    [n] = notify(users=[user], kind="chat.unread", data={}, render=lambda u: ("New", ""))
    assert list(n.deliveries.values_list("channel", flat=True)) == ["email"]
    other = make_user()  # no preference: chat in the app only
    [m] = notify(users=[other], kind="chat.unread", data={}, render=lambda u: ("New", ""))
    assert not m.deliveries.exists()


def test_kinds_are_those_the_apps_store():
    assert "chat.unread" in deliveries.KINDS and "chat.message" not in deliveries.KINDS
    assert {"records.infected", "records.rejected"} <= set(deliveries.KINDS)


# --- 6. retention -----------------------------------------------------------------------------


def test_old_notifications_go_with_their_deliveries_counters_and_ids_stay_right(
    api, settings, monkeypatch
):
    from realtime.unread import unread_counts

    settings.NOTIFICATION_RETENTION_DAYS = 365
    monkeypatch.setattr(deliveries, "HOUSEKEEPING_BATCH", 2)
    user, other = make_user(), make_user()
    old = [reminder(user) for _ in range(5)]
    recent = reminder(user)
    kept = reminder(other)
    Notification.objects.filter(id__in=[n.id for n in old[:2]]).update(read_at=timezone.now())
    Notification.objects.filter(id__in=[n.id for n in old]).update(
        created_at=timezone.now() - timedelta(days=366)
    )
    assert unread_counts(user_id=user.pk)["notifications"] == 4  # cached
    DBTaskResult.objects.all().delete()

    monkeypatch.setattr(deliveries, "RETENTION_BATCHES", 2)
    assert deliveries_housekeeping.call()["notifications_deleted"] == 4  # 2 batches of 2
    assert deliveries_housekeeping.call()["notifications_deleted"] == 1
    assert deliveries_housekeeping.call()["notifications_deleted"] == 0

    assert set(Notification.objects.values_list("id", flat=True)) == {recent.id, kept.id}
    assert set(Delivery.objects.values_list("notification_id", flat=True)) == {
        recent.id,
        kept.id,
    }
    assert unread_counts(user_id=user.pk)["notifications"] == 1  # counted again
    # Event ids go on from the last given, not from the rows left.
    assert reminder(user).seq == recent.seq + 1 == 7


def test_finished_task_rows_are_deleted_after_their_retention(settings, monkeypatch):
    from core import tasks

    settings.TASK_RESULT_RETENTION_DAYS = 7
    monkeypatch.setattr(tasks, "PRUNE_BATCH", 2)
    done = [send_deliveries.enqueue([]) for _ in range(5)]
    run_worker_batch()
    waiting = send_deliveries.using(run_after=timezone.now() + timedelta(days=1)).enqueue([])
    recent = send_deliveries.enqueue([])
    run_worker_batch()
    long_ago = timezone.now() - timedelta(days=8)
    DBTaskResult.objects.filter(id__in=[r.id for r in done]).update(
        finished_at=long_ago, enqueued_at=long_ago
    )
    DBTaskResult.objects.filter(id=waiting.id).update(enqueued_at=long_ago)

    assert tasks.task_results_prune(now=timezone.now()) == 5
    left = {str(pk) for pk in DBTaskResult.objects.values_list("id", flat=True)}
    assert left == {str(waiting.id), str(recent.id)}
    assert DBTaskResult.objects.get(id=waiting.id).status == "READY"


def test_the_minute_loop_prunes_task_rows_at_most_once_an_hour(settings):
    from django_tasks_db.models import DBTaskResult

    from realtime.deliveries import deliveries_housekeeping

    settings.TASK_RESULT_RETENTION_DAYS = 7

    def finished_long_ago() -> None:
        done = send_deliveries.enqueue([])
        run_worker_batch()
        long_ago = timezone.now() - timedelta(days=8)
        DBTaskResult.objects.filter(id=done.id).update(finished_at=long_ago, enqueued_at=long_ago)

    finished_long_ago()
    assert deliveries_housekeeping.call()["task_results_deleted"] == 1
    finished_long_ago()
    # The table has no index on finished_at: the next minute's run does not scan it again.
    assert deliveries_housekeeping.call()["task_results_deleted"] == 0
