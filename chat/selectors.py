"""Reads of chat, each knowing its viewer: only the two participants see a conversation
(anyone else gets 404, never 403), and each only while their account still holds its side's
role (:func:`participating`); staff read one only through the audited break-glass
service. Unread counts come from the database (a Redis cache of them can sit in front)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    When,
)
from django.db.models.functions import Coalesce

from accounts.models import Role, User
from chat.errors import ConversationNotFound, MessageNotFound
from chat.models import Conversation, Message
from core.cache import best_effort
from core.db import db_value, fetch, names, select_sql
from core.ids import is_uuid
from core.pagination import InvalidCursor, decode_cursor, encode_cursor, paginate
from doctors.models import DoctorProfile, Verification
from realtime.presence import audience, online

OLDER, NEWER = "older", "newer"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def message_data(message: Message) -> dict[str, Any]:
    """A message as the API and the socket events show it (JSON-native: it crosses the
    channel layer). A deleted message is a tombstone: no text, no attachments."""
    return {
        "conversation_id": str(message.conversation_id),
        "seq": message.seq,
        "client_id": message.client_id,
        "sender_id": str(message.sender_id),
        "text": message.text,
        "attachments": list(message.attachments),
        "created_at": _iso(message.created_at),
        "edited_at": _iso(message.edited_at),
        "deleted_at": _iso(message.deleted_at),
        # The conversation's ``rev`` of its last edit or deletion (0: never changed).
        "rev": message.changed_rev or 0,
    }


def state_event(conversation: Conversation) -> dict[str, Any]:
    """``chat.closed`` or ``chat.reopened``: the conversation's state, with the ``rev`` of
    its last close or reopen."""
    return {
        "type": "chat.closed" if conversation.closed_at is not None else "chat.reopened",
        "data": {"conversation_id": str(conversation.pk), "rev": conversation.state_rev},
    }


def participating(viewer: Any, prefix: str = "") -> Q:
    """The conversations ``viewer`` (a user or its id) may read, as the database holds the
    account now: its patient side while the account is a patient's, its doctor side while it
    is a doctor's with a verified profile. A doctor made helper or admin reads none (staff read
    only through the audited break-glass service), nor does a doctor whose verification was
    withdrawn, whatever they saw before, until verified again. ``prefix``: the path to the
    conversation (``"conversation__"`` from a message)."""
    pk = getattr(viewer, "pk", viewer)
    # About the viewer, not the row: uncorrelated, each runs once per statement (an InitPlan
    # on PostgreSQL), and the conversation's own indexes on patient and doctor still serve.
    is_patient = Exists(User.objects.filter(pk=pk, role=Role.PATIENT))
    is_doctor = Exists(
        DoctorProfile.objects.filter(
            user_id=pk, user__role=Role.DOCTOR, verification=Verification.VERIFIED
        )
    )
    return (Q(**{f"{prefix}patient_id": pk}) & Q(is_patient)) | (
        Q(**{f"{prefix}doctor_id": pk}) & Q(is_doctor)
    )


def participant(user: User) -> Q:
    """Every conversation ``user`` is one of the two people of, whatever their role now: for
    what concerns them rather than what they may read (an erasure, their access log)."""
    return Q(patient=user) | Q(doctor=user)


def conversation_for(
    *, viewer: User, conversation_id: Any, lock: bool = False, people: bool = True
) -> Conversation:
    """The conversation if ``viewer`` is one of its two participants and may read it
    (:func:`participating`), else 404 (as for an unknown id). With
    ``lock``, the row stays locked until the caller's transaction ends (the participants'
    user rows are read, not locked). ``people=False`` leaves the participants' user rows to
    be loaded when used (a message send, a read marker and a typing event need only their
    ids): that is the path of every message, so it is one hand-written statement (the ORM
    took longer to build the query than the database to answer it)."""
    if not is_uuid(conversation_id):
        raise ConversationNotFound()
    if people:
        qs = Conversation.objects.select_related("patient", "doctor")
        if lock:
            qs = qs.select_for_update(of=("self",))
        # No ``first()``: its ORDER BY costs the ORM more than the query costs the database.
        found = next(iter(qs.filter(participating(viewer), pk=conversation_id)[:1]), None)
    else:
        viewer_id = db_value(User, "id", viewer.pk)
        params = [
            db_value(Conversation, "id", conversation_id),
            viewer_id,
            viewer_id,
            db_value(User, "role", Role.PATIENT),
            viewer_id,
            viewer_id,
            db_value(User, "role", Role.DOCTOR),
            db_value(DoctorProfile, "verification", Verification.VERIFIED),
        ]
        rows = fetch(Conversation, _conversation_sql(connection.vendor, lock), params)
        found = rows[0] if rows else None
    if found is None:
        raise ConversationNotFound()
    return found


@functools.cache
def _conversation_sql(vendor: str, lock: bool) -> str:
    """:func:`participating` by hand: the viewer's role and verification are read in the same
    statement (only the conversation's row is locked)."""
    _, pk, patient, doctor = names(Conversation, "id", "patient", "doctor")
    users, user_id, role = names(User, "id", "role")
    profiles, profile_user, verification = names(DoctorProfile, "user", "verification")
    where = (
        f"{pk} = %s AND ("  # noqa: S608 (names from the models)
        f"({patient} = %s AND EXISTS (SELECT 1 FROM {users} u "
        f"WHERE u.{user_id} = %s AND u.{role} = %s)) OR "
        f"({doctor} = %s AND EXISTS (SELECT 1 FROM {users} u "
        f"JOIN {profiles} d ON d.{profile_user} = u.{user_id} "
        f"WHERE u.{user_id} = %s AND u.{role} = %s AND d.{verification} = %s)))"
    )
    return select_sql(Conversation, where, lock=lock)


# A place in the list of conversations (most recent activity first, ties by id): the
# ``last_activity_at`` and id of the last conversation sent.
ListPlace = tuple[datetime, uuid.UUID]


@dataclass
class Resumed:
    """What :func:`resume_changes` found: ``events`` in order, the ``marks`` the client keeps
    (``{conversation id: [seq, rev]}``, for the conversations it named that had anything),
    ``more`` when the limit cut the named conversations' messages (resume again with these
    marks), ``list_next`` the place of the last conversation sent when the unnamed ones were
    cut (None: all were sent), ``reads`` both read markers of every named conversation of
    the viewer (``{conversation id: {"read_seq", "other_read_seq"}}``, as the list's items
    say them): a marker moved while the client was away is no message and no ``rev``."""

    events: list[dict[str, Any]] = field(default_factory=list)
    marks: dict[str, list[int]] = field(default_factory=dict)
    reads: dict[str, dict[str, int]] = field(default_factory=dict)
    more: bool = False
    list_next: ListPlace | None = None


@contextmanager
def _snapshot() -> Iterator[None]:
    """One view of the database for all the queries inside (PostgreSQL: a repeatable-read
    transaction), so a change committing between two of them is in neither. Inside a
    transaction already, that one's view.

    ``SET TRANSACTION`` must be the transaction's first statement, so the health check of a
    reused connection (``CONN_HEALTH_CHECKS``: its ``SELECT 1``, due again after every
    ``close_old_connections``) is run here first, under autocommit. (Django's ``atomic()``
    runs it before its ``BEGIN`` too; this keeps the snapshot from depending on that.)"""
    outermost = not connection.in_atomic_block
    if outermost:
        connection.close_if_health_check_failed()
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def resume_changes(
    *,
    viewer: User,
    marks: dict[str, tuple[int, int | None]],
    limit: int,
    new_limit: int,
    list_after: ListPlace | None = None,
    list_done: bool = False,
) -> Resumed:
    """What a reconnecting client missed in chat. ``marks``: ``{conversation id: (last seq
    seen, last rev seen)}`` of the conversations it knows (a rev of None, a bare seq: the
    conversation's own, so that no earlier change is sent again; but its state, closed or
    reopened, if it was ever closed: such a client cannot say which one it saw, and learns of
    a close or reopen only live). For each of those ``viewer`` is in (in id order): the close
    or reopen after its ``rev`` mark, the messages it had seen that were
    edited or deleted since (in ``rev`` order), then the new messages (in ``seq`` order); at
    most ``limit`` messages in all. Then the conversations of the viewer that it did not name
    (new to it), as ``chat.conversation`` (the list's item), most recent first, at most
    ``new_limit``, after ``list_after`` (none with ``list_done``). And both read markers of
    each named conversation of the viewer (``reads``): a marker moved while the client was
    away (the other side's read, or the viewer's on another device) changes neither ``seq``
    nor ``rev``, so it is told every round. Five queries whatever the
    number of conversations (and the statement that opens the snapshot), all in one
    snapshot: the conversations, their changes and their messages are of one moment, so
    nothing is sent twice across the rounds of a cut resume. A mark past its conversation's
    ``last_seq`` or ``rev`` is answered with those (in ``marks``).

    Changes are read up to the ``rev`` read with the conversation (they commit in ``rev``
    order, under its row lock), so the marks answered never pass a change not sent; a close
    or reopen is sent only in the round whose marks pass its ``rev``."""
    with _snapshot():
        return _resume_changes(
            viewer=viewer,
            marks=marks,
            limit=limit,
            new_limit=new_limit,
            list_after=list_after,
            list_done=list_done,
        )


def _resume_changes(
    *,
    viewer: User,
    marks: dict[str, tuple[int, int | None]],
    limit: int,
    new_limit: int,
    list_after: ListPlace | None,
    list_done: bool,
) -> Resumed:
    result = Resumed()
    known = list(
        Conversation.objects.filter(participating(viewer), pk__in=list(marks)).order_by("pk")
    )
    stale = []
    # The conversations named by a bare seq that were ever closed: their state is sent.
    state_of: set[Any] = set()
    for c in known:
        result.reads[str(c.pk)] = read_markers(c, viewer=viewer)
        seq, rev = marks[str(c.pk)]
        if rev is None:  # a bare seq: no earlier change is sent again, only the state
            rev = c.rev
            if c.state_rev > 0:
                state_of.add(c.pk)
        if seq > c.last_seq or rev > c.rev:
            # A mark past the conversation (a client's bug, a database restored from a
            # backup): answered with the conversation's own, or the messages up to the
            # client's mark would never be resumed.
            seq, rev = min(seq, c.last_seq), min(rev, c.rev)
            result.marks[str(c.pk)] = [seq, rev]
        if c.last_seq > seq or c.rev > rev or c.pk in state_of:
            stale.append((c, seq, rev))
    changed_q, new_q = Q(pk__in=[]), Q(pk__in=[])
    for c, seq, rev in stale:
        if c.rev > rev:
            changed_q |= Q(
                conversation_id=c.pk, seq__lte=seq, changed_rev__gt=rev, changed_rev__lte=c.rev
            )
        if c.last_seq > seq:
            new_q |= Q(conversation_id=c.pk, seq__gt=seq)
    changed = list(
        Message.objects.filter(changed_q).order_by("conversation_id", "changed_rev")[: limit + 1]
    )
    new = list(Message.objects.filter(new_q).order_by("conversation_id", "seq")[: limit + 1])
    order = {c.pk: i for i, c in enumerate(c for c, _, _ in stale)}
    changed_by, changed_edge = _grouped(changed, limit, order)
    new_by, new_edge = _grouped(new, limit, order)
    budget = limit
    for i, (c, seq, rev) in enumerate(stale):
        if budget <= 0:
            result.more = True
            break
        mine = changed_by.get(c.pk, [])
        sent = mine[:budget]
        budget -= len(sent)
        cut = len(sent) < len(mine) or i == changed_edge  # its changes go on past the cut
        # The rev this round reaches: a close or reopen past it comes in a later round.
        upto = c.rev
        if cut:
            upto = sent[-1].changed_rev if sent else rev  # type: ignore[assignment]
        if rev < c.state_rev <= upto or c.pk in state_of:
            result.events.append(state_event(c))
        result.events += [{"type": "chat.message", "data": message_data(m)} for m in sent]
        if cut:
            result.marks[str(c.pk)] = [seq, upto]
            result.more = True
            break
        mine = new_by.get(c.pk, [])
        sent = mine[:budget]
        budget -= len(sent)
        result.events += [{"type": "chat.message", "data": message_data(m)} for m in sent]
        result.marks[str(c.pk)] = [sent[-1].seq if sent else seq, c.rev]
        if len(sent) < len(mine) or i == new_edge:
            result.more = True
            break
    if not list_done:
        unnamed = Conversation.objects.filter(participating(viewer)).exclude(pk__in=list(marks))
        if list_after is not None:
            at, pk = list_after
            unnamed = unnamed.filter(Q(last_activity_at__lt=at) | Q(last_activity_at=at, pk__lt=pk))
        items, result.list_next = _conversation_items(unnamed, viewer=viewer, limit=new_limit)
        result.events += [{"type": "chat.conversation", "data": item} for item in items]
    return result


def read_markers(conversation: Conversation, *, viewer: User) -> dict[str, int]:
    """The viewer's read marker and the other participant's, by their names in a list item
    (:func:`conversation_data`)."""
    mine, other = (
        ("patient", "doctor") if viewer.pk == conversation.patient_id else ("doctor", "patient")
    )
    return {
        "read_seq": getattr(conversation, f"{mine}_read_seq"),
        "other_read_seq": getattr(conversation, f"{other}_read_seq"),
    }


def _grouped(
    rows: list[Message], limit: int, order: dict[Any, int]
) -> tuple[dict[Any, list[Message]], int]:
    """``rows`` (a query cut at ``limit + 1``) by conversation, and the index (in ``order``)
    of the conversation whose rows may go on past the cut (-1: none were cut)."""
    edge = order[rows[limit - 1].conversation_id] if len(rows) > limit else -1
    grouped: dict[Any, list[Message]] = {}
    for m in rows[:limit]:
        grouped.setdefault(m.conversation_id, []).append(m)
    return grouped, edge


def message_in(*, conversation: Conversation, seq: Any, lock: bool = False) -> Message:
    qs = Message.objects.filter(conversation=conversation)
    if lock:
        qs = qs.select_for_update()
    found = qs.filter(seq=seq).first() if isinstance(seq, int) and seq > 0 else None
    if found is None:
        raise MessageNotFound()
    return found


def _my_read_seq(viewer: User) -> Case:
    return Case(
        When(patient=viewer, then=F("patient_read_seq")),
        default=F("doctor_read_seq"),
        output_field=IntegerField(),
    )


def unread_messages(viewer_id: Any) -> QuerySet[Message]:
    """The messages ``viewer_id`` has not read: the other side's, after the viewer's read
    marker, not deleted, in the conversations the viewer may read (:func:`participating`)."""
    return Message.objects.filter(
        participating(viewer_id, prefix="conversation__"),
        Q(conversation__patient_id=viewer_id, seq__gt=F("conversation__patient_read_seq"))
        | Q(conversation__doctor_id=viewer_id, seq__gt=F("conversation__doctor_read_seq")),
        deleted_at__isnull=True,
    ).exclude(sender_id=viewer_id)


def unread_total(viewer_id: Any) -> int:
    """Unread messages over all of the viewer's conversations, in one query (the query that
    rebuilds a cached counter)."""
    return unread_messages(viewer_id).count()


def _listed(qs: QuerySet[Conversation], viewer: User) -> QuerySet[Conversation]:
    """``qs`` with what a list item shows: the viewer's unread count and last message."""
    unread = (
        Message.objects.filter(
            conversation=OuterRef("pk"), seq__gt=OuterRef("my_read_seq"), deleted_at__isnull=True
        )
        .exclude(sender=viewer)
        .values("conversation")
        .annotate(n=Count("*"))
        .values("n")
    )
    last = Message.objects.filter(conversation=OuterRef("pk")).order_by("-seq").values("pk")[:1]
    return qs.select_related("patient", "doctor").annotate(
        my_read_seq=_my_read_seq(viewer),
        unread=Coalesce(Subquery(unread, output_field=IntegerField()), 0),
        last_message_pk=Subquery(last),
    )


def _items(
    conversations: list[Conversation], viewer: User, *, presence: bool
) -> list[dict[str, Any]]:
    """List items of conversations from :func:`_listed`: one more query (their last
    messages), and with ``presence`` the other sides' presence."""
    last_messages = {
        m.pk: m
        for m in Message.objects.filter(
            pk__in=[c.last_message_pk for c in conversations if c.last_message_pk]  # type: ignore[attr-defined]
        )
    }
    # The other side's presence, as the gateway shows it: only to those in care together;
    # unknown (null) while Redis is away, rather than no list at all.
    others = [c.doctor_id if c.patient_id == viewer.pk else c.patient_id for c in conversations]
    status: dict[str, bool] = {}
    if presence:
        visible = set(audience(viewer.pk)) & {str(o) for o in others}
        status = (best_effort(online, visible, what="presence") or {}) if visible else {}
    items = []
    for c, other in zip(conversations, others, strict=True):
        message = last_messages.get(c.last_message_pk)  # type: ignore[attr-defined]
        items.append(
            conversation_data(
                c,
                viewer=viewer,
                unread=c.unread,  # type: ignore[attr-defined]
                last_message=message_data(message) if message else None,
                other_online=status.get(str(other)),
            )
        )
    return items


def _conversation_items(
    qs: QuerySet[Conversation], *, viewer: User, limit: int
) -> tuple[list[dict[str, Any]], ListPlace | None]:
    """Up to ``limit`` of these conversations as list items (without presence), most recent
    activity first (ties: the higher id first), and the place of the last one if there are
    more (None if not)."""
    found = list(_listed(qs, viewer).order_by("-last_activity_at", "-pk")[: limit + 1])
    page = found[:limit]
    more = len(found) > limit and bool(page)
    return _items(page, viewer, presence=False), (
        (page[-1].last_activity_at, page[-1].pk) if more else None
    )


def conversation_list(
    *, viewer: User, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The viewer's conversations, most recent activity first, each with its last message
    and the viewer's unread count: three queries whatever the page size."""
    qs = _listed(Conversation.objects.filter(participating(viewer)), viewer)
    conversations, next_cursor = paginate(qs, field="last_activity_at", cursor=cursor, limit=limit)
    return _items(conversations, viewer, presence=True), next_cursor


def _person(user: User) -> dict[str, Any]:
    return {"id": str(user.pk), "name": user.full_name}


def conversation_data(
    conversation: Conversation,
    *,
    viewer: User,
    unread: int | None = None,
    last_message: dict[str, Any] | None = None,
    other_online: bool | None = None,
) -> dict[str, Any]:
    if unread is None:
        unread = unread_messages(viewer.pk).filter(conversation=conversation).count()
    return {
        "id": str(conversation.pk),
        "patient": _person(conversation.patient),
        "doctor": _person(conversation.doctor),
        "closed": conversation.closed_at is not None,
        "closed_at": _iso(conversation.closed_at),
        "created_at": _iso(conversation.created_at),
        "last_activity_at": _iso(conversation.last_activity_at),
        "last_seq": conversation.last_seq,
        "rev": conversation.rev,
        **read_markers(conversation, viewer=viewer),
        "unread": unread,
        "last_message": last_message,
        "other_online": other_online,
    }


def _page_cursor(direction: str, seq: int) -> str:
    return encode_cursor([direction, seq], scope="chat.messages")


def _from_cursor(cursor: str) -> tuple[str, int]:
    direction, seq = decode_cursor(cursor, scope="chat.messages")
    if direction not in (OLDER, NEWER) or not isinstance(seq, int) or seq < 0:
        raise InvalidCursor()
    return direction, seq


def message_page(
    *,
    conversation: Conversation,
    cursor: str | None = None,
    before_seq: int | None = None,
    after_seq: int | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a conversation's messages, always in ascending ``seq`` order. Without a
    position, the latest messages; ``before_seq`` pages back (older), ``after_seq`` forward
    (newer: how a client fills a gap). ``next`` continues in the same direction, ``null``
    at the end. The caller has checked that the viewer may read ``conversation``."""
    if cursor:
        direction, seq = _from_cursor(cursor)
    elif after_seq is not None:
        direction, seq = NEWER, after_seq
    else:
        direction, seq = OLDER, before_seq if before_seq is not None else conversation.last_seq + 1
    qs = Message.objects.filter(conversation=conversation)
    if direction == NEWER:
        found = list(qs.filter(seq__gt=seq).order_by("seq")[: limit + 1])
        more = len(found) > limit
        found = found[:limit]
        next_cursor = _page_cursor(NEWER, found[-1].seq) if more else None
    else:
        found = list(qs.filter(seq__lt=seq).order_by("-seq")[: limit + 1])
        more = len(found) > limit
        found = found[:limit][::-1]
        next_cursor = _page_cursor(OLDER, found[0].seq) if more else None
    return [message_data(m) for m in found], next_cursor
