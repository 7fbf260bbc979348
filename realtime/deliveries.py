"""Deliveries beyond the app: e-mail (Django's e-mail backends; django-anymail's for
providers), SMS and WhatsApp (``core.sms``: the Twilio SDK, console or capture).

A notification's deliveries are created, and their tasks enqueued, in the notification's own
transaction (database task backend), so a crash loses neither and a rollback sends nothing.
``(notification, channel)`` is the delivery key. One task sends up to ``DELIVERY_BATCH`` of them,
one after the other, each on its own (an error in one, even the database's, leaves the others
going). It claims each delivery (``queued`` -> ``sending``) in a committed transaction before
calling the provider, so a retried or duplicated task never sends twice: at most once. After
the claim it checks that the recipient is still active, reachable on the channel and wants
it (an account erased or deactivated, or an opt-out saved, since the delivery was queued); if
not, it records it ``failed`` unsent.

A provider failure is one of two kinds. Known not sent (no connection made, an error answer:
SMTP's error replies, HTTP 4xx/5xx): retried with bounded exponential backoff up to
``DELIVERY_MAX_ATTEMPTS``, then recorded ``failed``. Outcome unknown (a timeout or a dropped
connection after the message may have reached the provider, or any other error): recorded
``failed`` at once, since sending it again could send it twice. A crash mid-send leaves the
delivery visibly ``sending``, until the housekeeping loop records it ``failed``
("interrupted") after ``DELIVERY_SENDING_TIMEOUT_SECONDS``, for the same reason. Provider
status callbacks (Twilio's) move ``sent`` to ``delivered`` or ``failed``.

The housekeeping loop also enqueues again the deliveries left ``queued`` past any retry's
backoff (their task was lost: the database failed when it was to be enqueued or claimed), and
deletes notifications (with their deliveries) older than ``NOTIFICATION_RETENTION_DAYS`` and
finished task rows older than ``TASK_RESULT_RETENTION_DAYS``.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
from datetime import datetime, timedelta
from typing import Any

from anymail.exceptions import AnymailAPIError
from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.utils import timezone
from django_tasks import task

from core import sms
from core.tasks import PRUNE_EVERY, at_most_every, loop_again, run_steps, task_results_prune
from realtime.models import Channel, Delivery, DeliveryPreference, DeliveryStatus, Notification
from realtime.unread import unread_forget_many_on_commit

logger = logging.getLogger(__name__)

# The kinds of the notifications the apps store (``notify(kind=...)``), each of which a user
# may route: bookings', reviews', doctors' verification, chat's "new messages", records'
# refused files, and the generic ``notification.created`` of the protocol (DESIGN.md).
KINDS = (
    "booking.created",
    "booking.confirmed",
    "booking.paid",
    "booking.rejected",
    "booking.cancelled",
    "booking.rescheduled",
    "booking.reminder",
    "booking.expired",
    "booking.completed",
    "booking.no_show",
    "review.created",
    "doctor.verification",
    "chat.unread",
    "records.infected",
    "records.rejected",
    "notification.created",
)
# Without a preference of the user's: e-mail for what RT-2 names (bookings made, confirmed,
# cancelled, moved, reminders), SMS for reminders, and a doctor's verification decision by
# e-mail and SMS (whichever reaches them: some doctors sign up with a phone only). WhatsApp
# only when asked for.
DEFAULT_CHANNELS: dict[str, list[str]] = {
    "booking.created": [Channel.EMAIL],
    "booking.confirmed": [Channel.EMAIL],
    "booking.paid": [Channel.EMAIL],  # paid, and the doctor's to approve
    "booking.cancelled": [Channel.EMAIL],
    "booking.rescheduled": [Channel.EMAIL],
    "booking.reminder": [Channel.EMAIL, Channel.SMS],
    "doctor.verification": [Channel.EMAIL, Channel.SMS],
}


_ORDER = tuple(str(c) for c in Channel.values)


def reachable_channels(user: Any) -> list[str]:
    """The channels the user can be reached on, in the canonical order."""
    phone = bool(getattr(user, "phone", None) and getattr(user, "phone_verified", False))
    email = bool(getattr(user, "email", None))
    ok: dict[str, bool] = {Channel.EMAIL: email, Channel.SMS: phone, Channel.WHATSAPP: phone}
    return [c for c in _ORDER if ok[c]]


def channels_for(
    user: Any, kind: str, preference: list[str] | None = None, reachable: list[str] | None = None
) -> list[str]:
    """The channels the user wants for this kind (``preference``: the user's saved choice,
    if any) and can be reached on (``reachable``: ``reachable_channels(user)``, when the
    caller has it already)."""
    wanted = preference if preference is not None else DEFAULT_CHANNELS.get(kind, [])
    if not wanted:
        return []
    if reachable is None:
        reachable = reachable_channels(user)
    return [c for c in reachable if c in wanted]


def preferences_for(*, user: Any) -> list[dict[str, Any]]:
    saved = dict(DeliveryPreference.objects.filter(user=user).values_list("kind", "channels"))
    return [
        {"kind": kind, "channels": saved.get(kind, DEFAULT_CHANNELS.get(kind, []))}
        for kind in KINDS
    ]


def preference_set(*, user: Any, kind: str, channels: list[str]) -> list[str]:
    ordered = [c for c in Channel.values if c in channels]
    DeliveryPreference.objects.update_or_create(
        user=user, kind=kind, defaults={"channels": ordered}
    )
    return ordered


def deliveries_create(*, notifications: list[Notification]) -> list[str]:
    """In the caller's transaction: one delivery per wanted channel of each notification's
    recipient (``channels_for``); their ids. (On PostgreSQL ``notify()`` writes them in its
    own statement, by the same rule.)"""
    if not notifications:
        return []
    saved = dict(
        DeliveryPreference.objects.filter(
            user__in=[n.user_id for n in notifications], kind=notifications[0].kind
        ).values_list("user_id", "channels")
    )
    created = Delivery.objects.bulk_create(
        [
            Delivery(notification=n, channel=channel)
            for n in notifications
            for channel in channels_for(n.user, n.kind, saved.get(n.user_id))
        ]
    )
    return [str(d.id) for d in created]


def deliveries_enqueue(delivery_ids: list[str]) -> None:
    """In the caller's transaction (the one that created the deliveries, so a rollback sends
    nothing): one task per ``DELIVERY_BATCH`` deliveries."""
    step = max(1, int(getattr(settings, "DELIVERY_BATCH", 25)))
    for start in range(0, len(delivery_ids), step):
        send_deliveries.enqueue(delivery_ids[start : start + step])


def max_attempts() -> int:
    return int(getattr(settings, "DELIVERY_MAX_ATTEMPTS", 5))


def backoff(attempts: int) -> timedelta:
    base = float(getattr(settings, "DELIVERY_RETRY_BACKOFF_SECONDS", 30))
    cap = float(getattr(settings, "DELIVERY_RETRY_MAX_BACKOFF_SECONDS", 3600))
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


OUTCOME_UNKNOWN = "outcome unknown: the provider may have accepted it ({}); not sent again"
NOT_WANTED = "not sent: recipient no longer reachable or opted out"


class EmailNotConnected(Exception):
    """The e-mail backend could not open its connection: nothing was sent."""


def _send(delivery: Delivery) -> str:
    """Hand the delivery to its provider; the provider's message id."""
    notification = delivery.notification
    user = notification.user
    if delivery.channel == Channel.EMAIL:
        return _send_email(to=str(user.email), subject=notification.title, body=notification.body)
    text = f"{notification.title}: {notification.body}" if notification.body else notification.title
    callback = getattr(settings, "TWILIO_STATUS_CALLBACK_URL", "") or None
    sent = sms.send(
        to=str(user.phone), body=text, channel=delivery.channel, status_callback=callback
    )
    return sent.provider_id


def _send_email(*, to: str, subject: str, body: str) -> str:
    """The connection is opened first, so that a failure to connect (or to log in) is told
    apart from one during the send."""
    connection = get_connection()
    try:
        connection.open()
    except Exception as exc:
        raise EmailNotConnected(type(exc).__name__) from exc
    try:
        message = EmailMessage(subject=subject, body=body, to=[to], connection=connection)
        message.send()
    finally:
        with contextlib.suppress(Exception):  # sent or not, a failing QUIT changes nothing
            connection.close()
    status = getattr(message, "anymail_status", None)  # set by django-anymail backends
    message_id = getattr(status, "message_id", None)
    return "" if message_id is None else str(message_id)


def _not_sent(exc: Exception) -> bool:
    """Whether the provider certainly did not take the message, so that sending it again
    is safe: no connection was made, or the provider answered with an error (an SMTP error
    reply, an API's HTTP error status). Anything else (a timeout, a connection dropped
    after sending, an unexpected error) may come after the provider accepted it."""
    if isinstance(exc, sms.SmsError):
        return not isinstance(exc, sms.SmsOutcomeUnknown)
    if isinstance(exc, AnymailAPIError):
        if exc.status_code is None:  # no answer: the requests error it was raised from says
            cause = exc.__cause__
            return isinstance(cause, Exception) and sms.never_sent(cause)
        return exc.status_code >= 400  # a 2xx it could not read was accepted
    return isinstance(
        exc, (EmailNotConnected, smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused)
    )


def _claim(delivery_id: str) -> Delivery | None:
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update()
            .select_related("notification__user")
            .filter(id=delivery_id)
            .first()
        )
        if delivery is None or delivery.status != DeliveryStatus.QUEUED:
            return None
        delivery.status = DeliveryStatus.SENDING
        delivery.attempts += 1
        delivery.save(update_fields=["status", "attempts", "updated_at"])
    return delivery


def _still_wanted(delivery: Delivery) -> bool:
    """The recipient as they are now (the claim read the row): active, not erased, reachable
    on the channel, and wanting it (the preference saved now, or the defaults)."""
    user = delivery.notification.user
    kind = delivery.notification.kind
    if not user.is_active or user.deleted_at is not None:
        return False
    saved = (
        DeliveryPreference.objects.filter(user=user, kind=kind)
        .values_list("channels", flat=True)
        .first()
    )
    return delivery.channel in channels_for(user, kind, saved)


@task()
def send_deliveries(delivery_ids: list[str]) -> list[str]:
    """Each delivery in turn, each claimed on its own: a failure is retried alone (a task of
    its own, after the backoff) and the others go on; each one's outcome, in order. An error
    of our own (the database's) is logged and leaves the delivery to housekeeping: ``queued``
    is enqueued again later, ``sending`` is recorded interrupted."""
    outcomes = []
    for delivery_id in delivery_ids:
        try:
            outcomes.append(_deliver(delivery_id))
        except Exception:
            logger.exception("delivery not completed", extra={"delivery": delivery_id})
            outcomes.append("error: left to housekeeping")
    return outcomes


def _deliver(delivery_id: str) -> str:
    delivery = _claim(delivery_id)
    if delivery is None:
        return "skipped: not queued"
    if not _still_wanted(delivery):
        delivery.status, delivery.error = DeliveryStatus.FAILED, NOT_WANTED
        delivery.save(update_fields=["status", "error", "updated_at"])
        return delivery.status
    try:
        provider_id = _send(delivery)
    except Exception as exc:  # any provider failure is recorded, never raised
        _record_failure(delivery, exc)
        return delivery.status
    delivery.status, delivery.provider_id, delivery.error = DeliveryStatus.SENT, provider_id, ""
    delivery.save(update_fields=["status", "provider_id", "error", "updated_at"])
    _apply_early_status(provider_id)
    return "sent"


def _record_failure(delivery: Delivery, exc: Exception) -> None:
    """Retried after the backoff if it was certainly not sent and attempts remain; else
    recorded ``failed``."""
    name, not_sent = type(exc).__name__, _not_sent(exc)
    retry = not_sent and delivery.attempts < max_attempts()
    delivery.status = DeliveryStatus.QUEUED if retry else DeliveryStatus.FAILED
    delivery.error = (name if not_sent else OUTCOME_UNKNOWN.format(name))[:300]
    with transaction.atomic():
        if retry:
            due = timezone.now() + backoff(delivery.attempts)
            send_deliveries.using(run_after=due).enqueue([str(delivery.id)])
        delivery.save(update_fields=["status", "error", "updated_at"])


HOUSEKEEPING_EVERY = timedelta(minutes=1)
INTERRUPTED = "interrupted: the sender stopped mid-send; not sent again"
# Beyond the longest retry backoff, a delivery still queued has lost its task.
REQUEUE_MARGIN = timedelta(minutes=10)
HOUSEKEEPING_BATCH = 1000  # rows one step changes or deletes per statement
RETENTION_BATCHES = 10  # deletions per run: a backlog is worked off over several runs


def sending_timeout() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "DELIVERY_SENDING_TIMEOUT_SECONDS", 600)))


def requeue_after() -> timedelta:
    cap = float(getattr(settings, "DELIVERY_RETRY_MAX_BACKOFF_SECONDS", 3600))
    return timedelta(seconds=cap) + REQUEUE_MARGIN


def notification_retention() -> timedelta:
    return timedelta(days=int(getattr(settings, "NOTIFICATION_RETENTION_DAYS", 365)))


@task()
def deliveries_housekeeping() -> dict[str, int | None]:
    """Every minute: record as ``failed`` the deliveries left ``sending`` past the timeout,
    enqueue again those left ``queued`` past any backoff, and delete what is past its
    retention. The next run is enqueued first (``loop_again``); each step runs on its own
    (``run_steps``). Rows another transaction holds are left for the next run."""
    loop_again(deliveries_housekeeping, HOUSEKEEPING_EVERY)
    now = timezone.now()
    interrupted_before, queued_before = now - sending_timeout(), now - requeue_after()
    notifications_before = now - notification_retention()
    return run_steps(
        "deliveries",
        {
            "interrupted": lambda: _fail_interrupted(before=interrupted_before, now=now),
            "requeued": lambda: _requeue_lost(before=queued_before, now=now),
            "notifications_deleted": lambda: notifications_delete_old(before=notifications_before),
            "task_results_deleted": lambda: (
                task_results_prune(now=now) if at_most_every("task_results", PRUNE_EVERY) else 0
            ),
        },
    )


@transaction.atomic
def _fail_interrupted(*, before: datetime, now: datetime) -> int:
    """Deliveries whose worker died between the claim and the provider's answer."""
    stuck = list(
        Delivery.objects.select_for_update(skip_locked=True)
        .filter(status=DeliveryStatus.SENDING, updated_at__lte=before)
        .values_list("id", flat=True)[:HOUSEKEEPING_BATCH]
    )
    Delivery.objects.filter(id__in=stuck).update(
        status=DeliveryStatus.FAILED, error=INTERRUPTED, updated_at=now
    )
    return len(stuck)


@transaction.atomic
def _requeue_lost(*, before: datetime, now: datetime) -> int:
    """Deliveries still ``queued`` long after any retry was due: their task was never
    written, or failed before the claim. Enqueued again (a task that is only late finds
    them claimed: the claim is atomic), and touched so that they wait as long again."""
    lost = list(
        Delivery.objects.select_for_update(skip_locked=True)
        .filter(status=DeliveryStatus.QUEUED, updated_at__lte=before)
        .values_list("id", flat=True)[:HOUSEKEEPING_BATCH]
    )
    Delivery.objects.filter(id__in=lost).update(updated_at=now)
    deliveries_enqueue([str(pk) for pk in lost])
    return len(lost)


def notifications_delete_old(*, before: datetime) -> int:
    """Notifications created before ``before``, with their deliveries, in batches (each
    its own transaction); the unread counters of their recipients are dropped, so that
    they are counted again without them. Event ids are not given again: they come from
    each user's ``EventCounter``, not from the rows."""
    deleted = 0
    for _ in range(RETENTION_BATCHES):
        with transaction.atomic():
            rows = list(
                Notification.objects.filter(created_at__lt=before).values_list(
                    "id", "user_id", "read_at"
                )[:HOUSEKEEPING_BATCH]
            )
            Notification.objects.filter(id__in=[pk for pk, *_ in rows]).delete()  # cascades
            unread = {user_id for _, user_id, read_at in rows if read_at is None}
            unread_forget_many_on_commit(user_ids=sorted(unread, key=str), name="notifications")
        deleted += len(rows)
        if len(rows) < HOUSEKEEPING_BATCH:
            break
    return deleted


# Twilio's MessageStatus values that we record; the others (queued, sending...) say nothing new.
_TWILIO_STATUS = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.FAILED,
    "failed": DeliveryStatus.FAILED,
}
_FINAL = {DeliveryStatus.DELIVERED, DeliveryStatus.FAILED}


# A callback can come before the worker has stored the message's id (Twilio answers the send,
# then calls back, while the worker is still saving): its status waits this long for the id.
EARLY_STATUS_SECONDS = 600


def _early_key(provider_id: str) -> str:
    return f"delivery-early-status:{provider_id}"


def delivery_status_update(*, provider_id: str, status: str, error_code: str = "") -> bool:
    """Apply a provider's status callback; callbacks arrive out of order, so a final status
    is never moved back. False if no delivery has this provider id yet: the status is then
    kept for a while and applied once the worker stores the id (:func:`_apply_early_status`).
    Each side writes first and then looks for the other's write, so one of them sees both."""
    if not provider_id:
        return False
    if _status_apply(provider_id=provider_id, status=status, error_code=error_code):
        return True
    if status not in _TWILIO_STATUS:
        return False
    with contextlib.suppress(Exception):  # Redis away: the status is lost, as it would be
        kept = cache.get(_early_key(provider_id))
        if kept is None or _rank(status) >= _rank(kept[0]):
            cache.set(_early_key(provider_id), (status, error_code), EARLY_STATUS_SECONDS)
    return _status_apply(provider_id=provider_id, status=status, error_code=error_code)


def _rank(status: str) -> int:
    return 1 if _TWILIO_STATUS.get(status) in _FINAL else 0


def _apply_early_status(provider_id: str) -> None:
    if not provider_id:
        return
    try:
        kept = cache.get(_early_key(provider_id))
    except Exception:  # Redis away: nothing was kept either
        return
    if kept is not None:
        _status_apply(provider_id=provider_id, status=kept[0], error_code=kept[1])


@transaction.atomic
def _status_apply(*, provider_id: str, status: str, error_code: str) -> bool:
    new = _TWILIO_STATUS.get(status)
    delivery = Delivery.objects.select_for_update().filter(provider_id=provider_id).first()
    if delivery is None:
        return False
    if new is None or delivery.status in _FINAL:
        return True
    delivery.status = new
    if new == DeliveryStatus.FAILED:
        delivery.error = f"provider error {error_code}"[:300] if error_code else "undelivered"
    delivery.save(update_fields=["status", "error", "updated_at"])
    return True
