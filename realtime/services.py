"""Writes of the real-time gateway that other apps reach through the composition root."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from core import db
from core.cache import best_effort
from realtime import fanout
from realtime.consumers import CLOSE_FORBIDDEN
from realtime.deliveries import (
    channels_for,
    deliveries_create,
    deliveries_enqueue,
    reachable_channels,
)
from realtime.errors import NotificationNotFound
from realtime.models import (
    Delivery,
    DeliveryPreference,
    DeliveryStatus,
    EventCounter,
    Notification,
)
from realtime.unread import unread_adjust_on_commit, unread_forget_on_commit


def publish_on_commit(*, user_ids: Iterable[Any], event: dict[str, Any]) -> None:
    """After the current transaction commits, push ``event`` to every socket of each user.
    Only services call this, and they name the recipients."""
    publish_many_on_commit([(user_id, event) for user_id in user_ids])


def publish_many_on_commit(pushes: list[tuple[Any, dict[str, Any]]]) -> None:
    """After commit, push each ``(user id, event)``: one channel-layer message for the lot
    (cut if very large), which each server process hands to its own sockets."""
    _publish_on_commit(fanout.event_batches(pushes))


def _publish_on_commit(messages: list[dict[str, Any]]) -> None:
    """Events are rows first, pushes second: a push that fails (Redis away) is logged and
    the committed change is still answered as done (its events are replayed on resume)."""
    if messages:
        transaction.on_commit(
            lambda: best_effort(fanout.publish_from_thread, messages, what="socket push")
        )


def next_event_ids(user_ids: list[Any]) -> dict[Any, int]:
    """Each user's next event id, in the caller's transaction. The counter rows stay locked
    until that transaction ends (taken in id order, so two transactions cannot deadlock
    here), so a user's events commit in id order and a rolled-back id is given again: a
    client that has seen event ``n`` has been able to see every earlier one (what makes
    ``resume`` exact). One statement on PostgreSQL, one per user elsewhere."""
    table = connection.ops.quote_name(EventCounter._meta.db_table)
    upsert = f"ON CONFLICT (user_id) DO UPDATE SET last = {table}.last + 1 RETURNING user_id, last"
    prep = EventCounter._meta.get_field("user").target_field.get_db_prep_value  # type: ignore[union-attr]
    ordered = [prep(u, connection) for u in sorted(set(user_ids), key=str)]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} (user_id, last) "  # noqa: S608 (our own table name)
                f"SELECT u, 1 FROM unnest(%s) AS u ORDER BY u {upsert}",
                [ordered],
            )
            rows = cursor.fetchall()
        else:
            rows = []
            for user_id in ordered:
                cursor.execute(
                    f"INSERT INTO {table} (user_id, last) VALUES (%s, 1) {upsert}",  # noqa: S608
                    [user_id],
                )
                rows.append(cursor.fetchone())
    last = {_plain(user_id): int(n) for user_id, n in rows}
    return {user_id: last[_plain(user_id)] for user_id in user_ids}


def event_counters_lock(user_ids: Iterable[Any]) -> None:
    """Lock these users' event counters (made if missing) until the transaction ends, in the
    one order every ``notify()`` takes them (by id). A transaction that notifies several
    times (a change in bulk) calls this first with every recipient: taken one notification
    at a time, its locks would come in appointment order, and a concurrent ``notify()`` to
    two of the same users could deadlock with it. SQLite serialises writers: nothing to do."""
    if connection.vendor != "postgresql":
        return
    table = connection.ops.quote_name(EventCounter._meta.db_table)
    prep = EventCounter._meta.get_field("user").target_field.get_db_prep_value  # type: ignore[union-attr]
    ordered = [prep(u, connection) for u in sorted(set(user_ids), key=str)]
    if not ordered:
        return
    with connection.cursor() as cursor:
        # DO UPDATE (to the same value) locks an existing row; DO NOTHING would not.
        cursor.execute(
            f"INSERT INTO {table} (user_id, last) "  # noqa: S608 (our own table name)
            f"SELECT u, 0 FROM unnest(%s) AS u ORDER BY u "
            f"ON CONFLICT (user_id) DO UPDATE SET last = {table}.last",
            [ordered],
        )


def _plain(value: Any) -> str:
    """A user id as text in one form (SQLite returns UUIDs as 32 hex digits)."""
    return str(value).replace("-", "")


def _render(
    recipients: list[Any], render: Callable[[Any], tuple[str, str]]
) -> list[tuple[str, str]]:
    """Each recipient's title and body, rendered in the recipient's language (one switch of
    the active language per language, not per recipient)."""
    by_language: dict[str, list[int]] = {}
    for i, user in enumerate(recipients):
        by_language.setdefault(getattr(user, "language", None) or "en", []).append(i)
    texts: list[tuple[str, str]] = [("", "")] * len(recipients)
    for language, indexes in by_language.items():
        with translation.override(language):
            for i in indexes:
                title, body = render(recipients[i])
                texts[i] = (title[:200], body)
    return texts


def _store_postgresql(
    *, recipients: list[Any], texts: list[tuple[str, str]], kind: str, data: dict[str, Any]
) -> tuple[list[Notification], list[str]]:
    """Event ids, rows and their deliveries in one statement (what ``next_event_ids``,
    ``bulk_create`` and ``deliveries_create`` do, without building a 500-row INSERT in
    Python: a fan-out's cost is mostly this); the notifications and the new deliveries' ids.
    The rows travel as one JSON parameter: as arrays, psycopg quoted each of their 1,500 items
    in Python (~4 ms under cProfile for 500 rows). Which channels a recipient gets is decided
    by ``channels_for`` (the one rule): each row carries the recipient's channels without a
    saved preference and the channels the recipient can be reached on, and the statement
    takes the first, or the reachable ones of the saved preference for ``kind``."""
    counter = connection.ops.quote_name(EventCounter._meta.db_table)
    table = connection.ops.quote_name(Notification._meta.db_table)
    preference = connection.ops.quote_name(DeliveryPreference._meta.db_table)
    delivery = connection.ops.quote_name(Delivery._meta.db_table)
    user_type = EventCounter._meta.get_field("user").target_field.db_type(connection)  # type: ignore[union-attr]
    keys = [str(u.pk) for u in recipients]
    rows = []
    for key, user, (title, body) in zip(keys, recipients, texts, strict=True):
        reachable = reachable_channels(user)
        default = channels_for(user, kind, None, reachable)
        rows.append({"u": key, "t": title, "b": body, "d": default, "r": reachable})
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH t AS (SELECT * FROM json_to_recordset(%s::json) "  # noqa: S608 (our tables)
            f"AS t(u {user_type}, t text, b text, d jsonb, r jsonb)), "
            f"ids AS (INSERT INTO {counter} (user_id, last) SELECT u, 1 FROM t ORDER BY u "
            f"ON CONFLICT (user_id) DO UPDATE SET last = {counter}.last + 1 "
            f"RETURNING user_id, last), "
            f"stored AS (INSERT INTO {table} (user_id, seq, kind, title, body, data, created_at) "
            f"SELECT ids.user_id, ids.last, %s, t.t, t.b, %s::jsonb, %s "
            f"FROM ids JOIN t ON t.u = ids.user_id RETURNING id, user_id, seq), "
            f"wanted AS (SELECT stored.id AS n, c.channel FROM stored "
            f"JOIN t ON t.u = stored.user_id "
            f"LEFT JOIN {preference} p ON p.user_id = stored.user_id AND p.kind = %s "
            f"CROSS JOIN LATERAL jsonb_array_elements_text(t.r) AS c(channel) "
            f"WHERE COALESCE(p.channels, t.d) ? c.channel), "
            f"sent AS (INSERT INTO {delivery} (id, notification_id, channel, status, attempts, "
            f"provider_id, error, created_at, updated_at) "
            f"SELECT gen_random_uuid(), n, channel, %s, 0, '', '', %s, %s FROM wanted "
            f"RETURNING id, notification_id, channel) "
            f"SELECT stored.id, stored.user_id, stored.seq, array_agg(sent.id::text "
            f"ORDER BY sent.channel) FILTER (WHERE sent.id IS NOT NULL) FROM stored "
            f"LEFT JOIN sent ON sent.notification_id = stored.id "
            f"GROUP BY stored.id, stored.user_id, stored.seq",
            [
                json.dumps(rows),
                kind,
                json.dumps(data, cls=DjangoJSONEncoder),
                now,
                kind,
                DeliveryStatus.QUEUED,
                now,
                now,
            ],
        )
        stored = {str(user_id): (pk, seq, sent) for pk, user_id, seq, sent in cursor.fetchall()}
    created: list[Notification] = []
    deliveries: list[str] = []
    for user, key, (title, body) in zip(recipients, keys, texts, strict=True):
        pk, seq, sent = stored[key]
        n = db.stored(
            Notification,
            {
                "id": pk,
                "user_id": user.pk,
                "seq": seq,
                "kind": kind,
                "title": title,
                "body": body,
                "data": data,
                "created_at": now,
                "read_at": None,
            },
            {"user": user},
        )
        created.append(n)
        deliveries += sent or []
    return created, deliveries


@transaction.atomic(savepoint=False)
def notify(
    *,
    users: Iterable[Any],
    kind: str,
    data: dict[str, Any],
    render: Callable[[Any], tuple[str, str]],
) -> list[Notification]:
    """One stored notification per recipient, its title and body rendered by ``render`` in
    the recipient's language, its deliveries (e-mail, SMS, WhatsApp, by the recipient's
    preferences) enqueued, each pushed to the recipient's sockets after commit. A few
    statements whatever the number of recipients (fan-out to many users stays fast)."""
    recipients = list({user.pk: user for user in users}.values())
    if not recipients:
        return []
    texts = _render(recipients, render)
    if connection.vendor == "postgresql":
        created, deliveries = _store_postgresql(
            recipients=recipients, texts=texts, kind=kind, data=data
        )
    else:
        ids = next_event_ids([user.pk for user in recipients])
        created = [
            Notification(user=user, seq=ids[user.pk], kind=kind, title=t, body=b, data=data)
            for user, (t, b) in zip(recipients, texts, strict=True)
        ]
        Notification.objects.bulk_create(created)
        deliveries = deliveries_create(notifications=created)
    deliveries_enqueue(deliveries)
    publish_many_on_commit([(n.user_id, n.event()) for n in created])
    unread_adjust_on_commit(user_ids=[n.user_id for n in created], name="notifications", delta=1)
    return created


@transaction.atomic
def notification_mark_read(*, user: Any, event_id: int) -> Notification:
    notification = Notification.objects.select_for_update().filter(user=user, seq=event_id).first()
    if notification is None:
        raise NotificationNotFound()
    if notification.read_at is None:
        notification.read_at = timezone.now()
        notification.save(update_fields=["read_at"])
        unread_adjust_on_commit(user_ids=[user.pk], name="notifications", delta=-1)
    return notification


@transaction.atomic
def notifications_mark_all_read(*, user: Any) -> int:
    updated = Notification.objects.filter(user=user, read_at__isnull=True).update(
        read_at=timezone.now()
    )
    unread_forget_on_commit(user_id=user.pk, name="notifications")
    return updated


def close_user_sockets(*, user_id: Any, code: int = CLOSE_FORBIDDEN) -> None:
    """After the current transaction commits, close every open socket of the user."""
    _publish_on_commit(fanout.close_batches([user_id], code))


def account_erased(user: Any, person: Any) -> None:
    """Erasure of ``user``'s account (``accounts.services.ERASURE_HOOKS``, wired at the root):
    their own notifications go (their deliveries with them), their delivery preferences and
    their unread counter."""
    Notification.objects.filter(user=user).delete()
    DeliveryPreference.objects.filter(user=user).delete()
    unread_forget_on_commit(user_id=user.pk, name="notifications")


def notifications_unname(
    *,
    kind: str,
    key: str,
    recipient_ids: set[Any],
    ids: set[str],
    name: str,
    template: str,
    unnamed: Callable[[dict[str, str]], str],
) -> None:
    """Rewrite without ``name`` (an erased account's) the notifications of ``kind`` that
    named them: those of ``recipient_ids`` whose ``data[key]`` is one of ``ids``. A text is
    rendered once, at creation, in the recipient's language: one that ``template`` (the
    msgid that named the person, of the app that owns ``kind``) matches in a language is
    rendered again by ``unnamed`` (given the matched values) in that language; one of another
    wording has the name replaced. Deliveries still queued send the rewritten text: they read
    the notification when they are sent."""
    if not ids:
        return
    changed = []
    for n in Notification.objects.filter(
        user_id__in=recipient_ids, kind=kind, **{f"data__{key}__in": sorted(ids)}
    ).select_related("user"):
        title = _unnamed(n.title, template, unnamed, name, n.user.language)[:200]
        body = _unnamed(n.body, template, unnamed, name, n.user.language)
        if (title, body) != (n.title, n.body):
            n.title, n.body = title, body
            changed.append(n)
    Notification.objects.bulk_update(changed, ["title", "body"], batch_size=500)


def _template_pattern(template: str) -> re.Pattern[str]:
    """``template``'s text with each ``%(key)s`` as a named group."""
    parts = re.split(r"%\((\w+)\)s", template)
    return re.compile(
        "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.*)" for i, p in enumerate(parts)),
        re.DOTALL,
    )


def _unnamed(
    text: str,
    template: str,
    unnamed: Callable[[dict[str, str]], str],
    name: str,
    language: str,
) -> str:
    """``text`` without the person's name: rendered again as for a person with no name, in
    the language it was rendered in; else (another wording) the name replaced."""
    for code, _label in settings.LANGUAGES:
        with translation.override(code):
            found = _template_pattern(_(template)).fullmatch(text)
            if found:
                return unnamed(found.groupdict())
    if name and name in text:
        with translation.override(language or "en"):
            return text.replace(name, _("a deleted account"))
    return text
