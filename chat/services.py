"""Writes of chat. REST views call these and so will the socket handlers (``chat.send``,
``chat.read``): each takes the user and plain values and returns the plain dict that answers
the client (the acknowledgement), so that both transports say the same thing.

Ordering: a message's ``seq`` is taken from its conversation's counter while the
conversation row is locked, and the lock is held until commit, so sequence numbers are
gap-free (a rolled-back send gives its number back) and messages commit, and are pushed,
in ``seq`` order.
"""

from __future__ import annotations

import secrets
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from accounts.errors import RoleRequired
from accounts.models import Role, User
from accounts.services import ErasedPerson
from audit.services import record as audit_record
from audit.services import seal
from bookings.selectors import in_care
from chat import selectors
from chat.errors import (
    AttachmentNotAllowed,
    ConversationClosed,
    ConversationNotFound,
    DoctorOnly,
    EditWindowPassed,
    EmptyText,
    MessageDeleted,
    NotInCare,
    NotSender,
    ReasonRequired,
    SendRateLimited,
    SeqOutOfRange,
    TextTooLong,
)
from chat.models import MAX_ATTACHMENTS, MAX_TEXT_CHARS, Conversation, Message
from core import db, ratelimit
from core.cache import best_effort, default_redis
from core.errors import ApplicationError, InvalidRequest
from core.ids import is_uuid
from realtime.presence import online
from realtime.services import notifications_unname, notify, publish_on_commit
from realtime.unread import unread_adjust_on_commit, unread_forget_on_commit

# Wired at the composition root (chat does not import records): of these record ids, those
# that are clean files of ``patient`` that ``doctor`` may see.
ATTACHABLE: Callable[..., set[str]] | None = None


# --- Conversations ---------------------------------------------------------------------


def conversation_open(*, user: User, other_id: Any) -> tuple[Conversation, bool]:
    """The conversation between the caller and a doctor (for a patient) or a patient (for a
    doctor) they are in care with, created if it does not exist yet."""
    others: dict[str, str] = {Role.PATIENT: Role.DOCTOR, Role.DOCTOR: Role.PATIENT}
    other_role = others.get(user.role)
    if other_role is None:
        raise RoleRequired()
    other = None
    if is_uuid(other_id):
        other = User.objects.filter(pk=other_id, role=other_role, is_active=True).first()
    if other is None:
        raise NotInCare()
    patient, doctor = (user, other) if user.role == Role.PATIENT else (other, user)
    if not in_care(doctor_user=doctor, patient=patient):
        raise NotInCare()
    conversation, created = Conversation.objects.get_or_create(patient=patient, doctor=doctor)
    return conversation, created


def _set_closed(*, user: User, conversation_id: Any, closed: bool) -> dict[str, Any]:
    with _pushing() as turn:
        conversation = selectors.conversation_for(
            viewer=user, conversation_id=conversation_id, lock=True
        )
        if user.pk != conversation.doctor_id:
            raise DoctorOnly()
        if (conversation.closed_at is not None) != closed:
            turn.take(conversation.pk)
            conversation.closed_at = timezone.now() if closed else None
            conversation.rev += 1  # a change a resume replays (the row is locked)
            conversation.state_rev = conversation.rev
            conversation.save(update_fields=["closed_at", "rev", "state_rev"])
            _publish(conversation, selectors.state_event(conversation))
            turn.give_back_after_push()
    return selectors.conversation_data(conversation, viewer=user)


def conversation_close(*, user: User, conversation_id: Any) -> dict[str, Any]:
    """The doctor closes the conversation: nobody can send until it is reopened."""
    return _set_closed(user=user, conversation_id=conversation_id, closed=True)


def conversation_reopen(*, user: User, conversation_id: Any) -> dict[str, Any]:
    return _set_closed(user=user, conversation_id=conversation_id, closed=False)


# --- Messages --------------------------------------------------------------------------


def _storable(text: str) -> bool:
    """Whether ``text`` can be stored: a lone surrogate (``"\\ud800"`` is valid JSON) is not
    UTF-8, which encryption and PostgreSQL need, and PostgreSQL text holds no NUL. REST refuses
    both at its edge; the socket brings them here."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _unstorable(field: str) -> InvalidRequest:
    return InvalidRequest(
        fields={field: _("Remove the characters that cannot be stored from this text.")}
    )


# What a text may hold and still show nothing: format characters (zero-width spaces and
# joiners, direction marks, the byte-order mark) and combining marks with nothing to mark.
_UNSEEN = frozenset({"Cf", "Mn", "Me"})


def _blank(text: str) -> bool:
    """Whether ``text`` shows nothing: only whitespace, format characters and combining
    marks (a right-to-left mark inside Arabic words is fine: the words show)."""
    return all(c.isspace() or unicodedata.category(c) in _UNSEEN for c in text)


def _checked_text(text: Any, *, has_attachments: bool) -> str:
    if not isinstance(text, str):
        raise InvalidRequest(fields={"text": _("Send the message as text.")})
    if not _storable(text):
        raise _unstorable("text")
    if len(text) > MAX_TEXT_CHARS:
        raise TextTooLong(fields={"text": str(MAX_TEXT_CHARS)})
    if _blank(text) and not has_attachments:
        raise EmptyText()
    return text


def _checked_client_id(client_id: Any) -> str:
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 64 or not client_id.strip():
        raise InvalidRequest(fields={"client_id": _("Send a client id of 1 to 64 characters.")})
    # Control characters (NUL: PostgreSQL refuses it), lone surrogates (not UTF-8) and
    # format characters (invisible: a zero-width space, a direction mark).
    if any(unicodedata.category(c) in ("Cc", "Cs", "Cf") for c in client_id):
        raise InvalidRequest(
            fields={"client_id": _("The client id may hold only printable characters.")}
        )
    return client_id


def _checked_attachments(attachments: Any) -> list[str]:
    if not isinstance(attachments, list | tuple) or len(attachments) > MAX_ATTACHMENTS:
        raise InvalidRequest(
            fields={"attachments": _("Attach at most %(n)d files.") % {"n": MAX_ATTACHMENTS}}
        )
    # Ids as text (the socket's) or UUIDs (REST's): a number is no record id.
    if not all(is_uuid(a) for a in attachments):
        raise AttachmentNotAllowed()
    return list(dict.fromkeys(str(uuid.UUID(str(a))) for a in attachments))


def _consume_send_quota(user: User) -> None:
    """Per-user send rate, configured as ``ACCOUNT_RATE_LIMITS["chat_send"]`` (allauth's
    syntax, :mod:`core.ratelimit`). Its counters live in Redis: while Redis is away the quota
    is not kept (messages are rows; refusing every one would stop chat for a flood guard)."""
    rates = settings.ACCOUNT_RATE_LIMITS.get("chat_send")
    wait = best_effort(ratelimit.consume, "chat_send", user.pk, rates, what="chat send quota")
    if wait:
        raise SendRateLimited(retry_after=wait)


def _earlier_ack(conversation: Conversation, user: User, client_id: str) -> dict[str, Any] | None:
    """The acknowledgement of the message this sender already sent with this client id (at
    most one: a unique key), or None."""
    earlier = Message.objects.filter(
        conversation=conversation, sender=user, client_id=client_id
    ).first()
    return selectors.message_data(earlier) if earlier is not None else None


def message_send(
    *,
    user: User,
    conversation_id: Any,
    text: Any,
    client_id: Any,
    attachments: Sequence[Any] = (),
) -> dict[str, Any]:
    """Send a message; the answer is the stored message (the acknowledgement, with its
    ``seq``). The same ``client_id`` sent again by the same sender in the same conversation
    stores nothing and answers the first acknowledgement again, even once the conversation
    is closed or the care has ended, and costs no send quota."""
    record_ids = _checked_attachments(attachments)
    text = _checked_text(text, has_attachments=bool(record_ids))
    client_id = _checked_client_id(client_id)
    with _pushing() as turn:
        # Under the conversation's row lock: a retry that raced its first send finds it here.
        conversation = selectors.conversation_for(
            viewer=user, conversation_id=conversation_id, lock=True, people=False
        )
        try:
            if conversation.closed_at is not None:
                raise ConversationClosed()
            if not in_care(doctor_user=conversation.doctor_id, patient=conversation.patient_id):
                raise NotInCare()
            if record_ids:
                _check_attachable(conversation, record_ids)
        except ApplicationError:
            ack = _earlier_ack(conversation, user, client_id)
            if ack is None:
                raise
            return ack
        turn.take(conversation.pk)
        data = _append(user, conversation, text, client_id, record_ids)
        if data is None:  # sent before: its client id is taken
            turn.give_back()
            data = _earlier_ack(conversation, user, client_id)
            if data is None:  # SQLite's INSERT OR IGNORE skips other violations too
                raise RuntimeError("a chat message insert was refused, not by its client id")
            return data
        turn.give_back_after_push()
    return data


def _append(
    user: User, conversation: Conversation, text: str, client_id: str, record_ids: list[str]
) -> dict[str, Any] | None:
    """The insert of :func:`message_send`, under the conversation's row lock: the next
    ``seq``, the recipient's notice and unread counter, the push to both participants.
    None, and nothing changed, if this sender already used ``client_id`` here: the insert
    is tried first (``ON CONFLICT DO NOTHING`` on the client-id key), so that a first send,
    nearly every send, asks the database nothing more."""
    now = timezone.now()
    message = Message(
        conversation=conversation,
        seq=conversation.last_seq + 1,
        sender=user,
        client_id=client_id,
        text=text,
        attachments=record_ids,
        created_at=now,
    )
    if not db.insert(message, ignore_conflicts=True):
        return None
    # After the insert, so that a retry costs no quota; a refusal rolls the insert back.
    _consume_send_quota(user)
    conversation.last_seq = message.seq
    conversation.last_activity_at = now
    changed = ["last_seq", "last_activity_at"]
    changed += _tell_recipient(conversation, message, now)
    db.update(conversation, changed)
    data = selectors.message_data(message)
    _publish(conversation, {"type": "chat.message", "data": data})
    recipient = (
        conversation.doctor_id if user.pk == conversation.patient_id else conversation.patient_id
    )
    unread_adjust_on_commit(user_ids=[recipient], name="chat", delta=1)
    return data


PUSH_ORDER_SECONDS = 2.0

# Delete the turn only if it still holds this sender's token: a turn that ran out may have
# been taken by another sender since.
_GIVE_BACK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _hold_push_order(conversation_id: Any) -> Callable[[], None]:
    """Pushes of one conversation leave in ``seq`` order. Commits already come in that order
    (the row lock), but each sender pushes after its own commit, and the next sender, let in
    by that commit, could push first (a test saw it). So a sender takes the conversation's
    push turn (a cache key holding a token of its own) before its commit and gives it back
    after its push; the next sender waits for it (about one push, only when two send at
    once). A holder that died frees it after ``PUSH_ORDER_SECONDS``; a sender that waited
    that long goes on without the turn. Answers the function that gives the turn back: only
    a turn still holding this sender's token (one that ran out and was taken by another
    sender, or that this sender never got, is not its own to free). Without Redis there is
    no turn to take (and no push leaves): the send goes on."""
    key = f"chat:push-order:{conversation_id}"
    token = secrets.randbits(62)
    deadline = time.monotonic() + PUSH_ORDER_SECONDS
    while True:
        taken = best_effort(cache.add, key, token, PUSH_ORDER_SECONDS, what="chat push order")
        if taken is None:
            return lambda: None
        if taken:
            break
        if time.monotonic() >= deadline:
            return lambda: None  # gave up waiting: the turn is still another's
        time.sleep(0.001)

    def release() -> None:  # after commit too: it must not fail the committed send
        best_effort(_give_turn_back, key, token, what="chat push order")

    return release


def _give_turn_back(key: str, token: int) -> None:
    """Delete the push turn ``key`` if it holds ``token``: one script on Redis (the cache
    keeps an int as its digits); with the embedded cache (one process) a read, then the
    delete."""
    redis = default_redis()
    if redis is not None:
        client, make_key = redis
        client.eval(_GIVE_BACK, 1, make_key(key), token)
    elif cache.get(key) == token:
        cache.delete(key)


class _Turn:
    """The push turn of one change (:func:`_pushing`): taken at most once, given back once."""

    def __init__(self) -> None:
        self._release: Callable[[], None] | None = None

    def take(self, conversation_id: Any) -> None:
        self._release = _hold_push_order(conversation_id)

    def give_back(self) -> None:
        # Once: a second delete could free the turn another change has taken since.
        release, self._release = self._release, None
        if release is not None:
            release()

    def give_back_after_push(self) -> None:
        """After commit, once the change's push has left: call it after :func:`_publish`
        (commit callbacks run in the order they were registered)."""
        transaction.on_commit(self.give_back)


@contextmanager
def _pushing() -> Iterator[_Turn]:
    """The atomic block of a change that pushes in the conversation's turn. The turn is given
    back after the push when the block commits, and at once when it does not: an error inside
    it or a failed commit (commit callbacks are dropped with a rollback, so a turn given back
    only by one would be held until it expires, and every later change of the conversation
    would wait ``PUSH_ORDER_SECONDS`` for it). Inside an outer transaction (none of chat's
    callers opens one), that transaction's own rollback is not seen here: the turn then
    expires."""
    turn = _Turn()
    try:
        with transaction.atomic():
            yield turn
    except BaseException:
        turn.give_back()
        raise


def _check_attachable(conversation: Conversation, record_ids: list[str]) -> None:
    if ATTACHABLE is None:
        raise RuntimeError("chat.services.ATTACHABLE is wired in telemed/apps.py")
    allowed = ATTACHABLE(
        doctor=conversation.doctor, patient=conversation.patient, record_ids=record_ids
    )
    if not set(record_ids) <= allowed:
        raise AttachmentNotAllowed()


def _publish(conversation: Conversation, event: dict[str, Any]) -> None:
    publish_on_commit(user_ids=[conversation.patient_id, conversation.doctor_id], event=event)


def _render_unread(conversation: Conversation, sender: User) -> Callable[[User], tuple[str, str]]:
    def render(user: User) -> tuple[str, str]:
        name = sender.full_name
        title = _("New message from %(name)s") % {"name": name} if name else _("New message")
        return title[:200], _("Open the conversation to read your new messages.")

    return render


def _tell_recipient(conversation: Conversation, message: Message, now: Any) -> list[str]:
    """A notification for the other participant when they have no open socket (an online
    device gets the message live), batched: only if they were not told of this conversation
    in the last ``CHAT_NOTIFY_INTERVAL_SECONDS``, or have read up to what they were last told
    of. The message text never goes into a notification. Returns the conversation fields it
    changed."""
    recipient_id = (
        conversation.doctor_id
        if message.sender_id == conversation.patient_id
        else conversation.patient_id
    )
    # Presence unknown (Redis away): told by a notification, rather than maybe not at all.
    status = best_effort(online, [recipient_id], what="presence")
    if status and status.get(str(recipient_id)):
        return []
    side = conversation.side(recipient_id)
    told_at = getattr(conversation, f"{side}_notified_at")
    told_seq = getattr(conversation, f"{side}_notified_seq")
    read_seq = getattr(conversation, f"{side}_read_seq")
    interval = timedelta(seconds=settings.CHAT_NOTIFY_INTERVAL_SECONDS)
    if told_at is not None and told_seq > read_seq and told_at > now - interval:
        return []
    recipient = conversation.doctor if side == "doctor" else conversation.patient
    notify(
        users=[recipient],
        kind="chat.unread",
        data={"conversation_id": str(conversation.pk), "seq": message.seq},
        render=_render_unread(conversation, message.sender),  # type: ignore[arg-type]
    )
    setattr(conversation, f"{side}_notified_at", now)
    setattr(conversation, f"{side}_notified_seq", message.seq)
    return [f"{side}_notified_at", f"{side}_notified_seq"]


def _own_message(user: User, conversation_id: Any, seq: Any) -> tuple[Conversation, Message]:
    """Inside a transaction: the caller's message, and its conversation locked (its ``rev``
    is taken by :func:`_changed`)."""
    conversation = selectors.conversation_for(
        viewer=user, conversation_id=conversation_id, lock=True
    )
    message = selectors.message_in(conversation=conversation, seq=seq, lock=True)
    if message.sender_id != user.pk:
        raise NotSender()
    return conversation, message


def _changed(
    turn: _Turn, conversation: Conversation, message: Message, fields: list[str]
) -> dict[str, Any]:
    """Save an edit or a deletion under the next ``rev`` of the conversation (locked), so a
    resume replays it to a device that had already seen the message, and push it after
    commit in ``rev`` order (the push turn, as for sends: an edit then a deletion must not
    arrive swapped). Answers the message's data."""
    turn.take(conversation.pk)
    conversation.rev += 1
    db.update(conversation, ["rev"])
    message.changed_rev = conversation.rev
    message.save(update_fields=[*fields, "changed_rev"])
    data = selectors.message_data(message)
    _publish(conversation, {"type": "chat.message", "data": data})
    turn.give_back_after_push()
    return data


def message_edit(*, user: User, conversation_id: Any, seq: Any, text: Any) -> dict[str, Any]:
    """The sender changes a message's text within ``CHAT_EDIT_WINDOW_SECONDS`` of sending it;
    both sides see the new version live (``chat.message`` with ``edited_at``). An edit says
    something new, so it needs care as sending does; deleting one's message does not."""
    with _pushing() as turn:
        conversation, message = _own_message(user, conversation_id, seq)
        if message.deleted_at is not None:
            raise MessageDeleted()
        if conversation.closed_at is not None:
            raise ConversationClosed()
        if not in_care(doctor_user=conversation.doctor_id, patient=conversation.patient_id):
            raise NotInCare()
        now = timezone.now()
        if now - message.created_at > timedelta(seconds=settings.CHAT_EDIT_WINDOW_SECONDS):
            raise EditWindowPassed()
        message.text = _checked_text(text, has_attachments=bool(message.attachments))
        message.edited_at = now
        return _changed(turn, conversation, message, ["text", "edited_at"])


def message_delete(*, user: User, conversation_id: Any, seq: Any) -> dict[str, Any]:
    """The sender deletes a message: it stays as a tombstone (its ``seq``, sender and times;
    no text, no attachments), so the sequence keeps no hole."""
    with _pushing() as turn:
        conversation, message = _own_message(user, conversation_id, seq)
        if message.deleted_at is None:
            message.text, message.attachments, message.deleted_at = "", [], timezone.now()
            for participant in (conversation.patient_id, conversation.doctor_id):  # on read
                unread_forget_on_commit(user_id=participant, name="chat")
            return _changed(turn, conversation, message, ["text", "attachments", "deleted_at"])
        return selectors.message_data(message)


# --- Read markers ----------------------------------------------------------------------


def read_up_to(*, user: User, conversation_id: Any, seq: Any) -> dict[str, Any]:
    """Move the caller's read marker forward to ``seq`` (never back: an older ``seq`` changes
    nothing). The caller's devices are told live (``chat.read``), and the other participant's
    while the two are in care: once care has ended the history stays readable (and the
    marker moves, for the caller's own unread counts), but nothing more is pushed to the other
    side live, as with typing and presence."""
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise InvalidRequest(fields={"seq": _("Send a whole number, 0 or more.")})
    with transaction.atomic():
        conversation = selectors.conversation_for(
            viewer=user, conversation_id=conversation_id, people=False
        )
        field = f"{conversation.side(user.pk)}_read_seq"
        moved = Conversation.objects.filter(
            pk=conversation.pk, last_seq__gte=seq, **{f"{field}__lt": seq}
        ).update(**{field: seq})
        if not moved:
            conversation.refresh_from_db(fields=["last_seq", field])
            if seq > conversation.last_seq:
                raise SeqOutOfRange(fields={"seq": str(conversation.last_seq)})
        marker = seq if moved else getattr(conversation, field)
        data = {
            "conversation_id": str(conversation.pk),
            "user_id": str(user.pk),
            "seq": marker,
        }
        if moved:
            told: list[Any] = [user.pk]
            if in_care(doctor_user=conversation.doctor_id, patient=conversation.patient_id):
                told.append(conversation.other_id(user.pk))
            publish_on_commit(user_ids=told, event={"type": "chat.read", "data": data})
            unread_forget_on_commit(user_id=user.pk, name="chat")
        unread = selectors.unread_messages(user.pk).filter(conversation=conversation).count()
    return {**data, "unread": unread}


# --- Typing --------------------------------------------------------------------------

TYPING_SECONDS = 3


def typing(*, user: User, conversation_id: Any) -> None:
    """Tell the other participant that ``user`` is typing (``chat.typing``): ephemeral,
    nothing stored, at most once every ``TYPING_SECONDS`` per user and conversation, and only
    where a message could be sent (open, in care). The throttle comes before the care query,
    so a burst of keystrokes costs one; without Redis nothing is told (no push could leave)."""
    conversation = selectors.conversation_for(
        viewer=user, conversation_id=conversation_id, people=False
    )
    if conversation.closed_at is not None:
        raise ConversationClosed()
    key = f"chat:typing:{conversation.pk}:{user.pk}"
    if not best_effort(cache.add, key, 1, TYPING_SECONDS, what="chat typing"):
        return  # throttled, or Redis away
    if not in_care(doctor_user=conversation.doctor_id, patient=conversation.patient_id):
        raise NotInCare()
    other = (
        conversation.doctor_id if user.pk == conversation.patient_id else conversation.patient_id
    )
    publish_on_commit(
        user_ids=[other],
        event={
            "type": "chat.typing",
            "data": {"conversation_id": str(conversation.pk), "user_id": str(user.pk)},
        },
    )


# --- Staff -----------------------------------------------------------------------------


def break_glass_read(
    *,
    staff: User,
    conversation_id: Any,
    reason: str,
    before_seq: int | None = None,
    limit: int = 50,
    ip: str | None = None,
    user_agent: str = "",
) -> dict[str, Any]:
    """An admin reads a conversation in an emergency, with a reason: every page read is in
    the audit trail (ids, seq range and the reason; never the text). Nobody else may."""
    if staff.role != Role.ADMIN:
        raise RoleRequired()
    reason = (reason or "").strip()
    if not _storable(reason):  # it goes into the audit trail (PostgreSQL JSON)
        raise _unstorable("reason")
    if len(reason) < 10:
        raise ReasonRequired()
    conversation = None
    if is_uuid(conversation_id):
        conversation = (
            Conversation.objects.select_related("patient", "doctor")
            .filter(pk=conversation_id)
            .first()
        )
    if conversation is None:
        raise ConversationNotFound()
    items, next_cursor = selectors.message_page(
        conversation=conversation, before_seq=before_seq, limit=limit
    )
    audit_record(
        action="chat.break_glass_read",
        actor_id=staff.pk,
        actor_role=staff.role,
        target_type="conversation",
        target_id=str(conversation.pk),
        ip=ip,
        user_agent=user_agent,
        data={
            "patient_id": str(conversation.patient_id),
            "doctor_id": str(conversation.doctor_id),
            "reason_sealed": seal(reason),  # may tell of the patient's health: admins read it
            "seqs": [m["seq"] for m in items],
        },
    )
    return {"items": items, "next": next_cursor}


# The msgid of the chat.unread notification that names the sender (_render_unread).
_MESSAGE_FROM = gettext_noop("New message from %(name)s")


def account_erased(user: User, person: ErasedPerson) -> None:
    """Erasure of ``user``'s account (``accounts.services.ERASURE_HOOKS``, wired at the root):
    the other side of each of their conversations, told "New message from <name>", is told
    "New message" (what chat says of a sender with no name)."""
    others, conversations = set(), set()
    for conversation_id, patient_id, doctor_id in Conversation.objects.filter(
        selectors.participant(user)
    ).values_list("id", "patient_id", "doctor_id"):
        others.add(doctor_id if patient_id == user.pk else patient_id)
        conversations.add(str(conversation_id))
    notifications_unname(
        kind="chat.unread",
        key="conversation_id",
        recipient_ids=others,
        ids=conversations,
        name=person.full_name,
        template=_MESSAGE_FROM,
        unnamed=lambda found: _("New message"),
    )
