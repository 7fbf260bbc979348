"""A conversation's push turn (the order of its pushes) is given back when the change that
took it does not commit: a rolled-back send, edit, deletion, close or reopen must not leave
the next one waiting ``PUSH_ORDER_SECONDS``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from django.db import DatabaseError, connection

from chat import services
from chat.models import Message
from tests.chat.conftest import in_care_with
from tests.doctors.factories import doctor
from tests.factories import make_user


def _turn(conversation: Any) -> Any:
    return cache.get(f"chat:push-order:{conversation.pk}")


def _fail_commit_once(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The next commit fails (as a commit can: the connection lost, a deferred check)."""
    failed: list[str] = []
    real = connection.commit

    def commit() -> None:
        if not failed:
            failed.append("commit")
            raise DatabaseError("the commit failed")
        real()

    monkeypatch.setattr(connection, "commit", commit)
    return failed


CHANGES: dict[str, Callable[..., Any]] = {
    "send": lambda doc, cid: services.message_send(
        user=doc, conversation_id=cid, text="lost", client_id="lost"
    ),
    "edit": lambda doc, cid: services.message_edit(
        user=doc, conversation_id=cid, seq=1, text="lost"
    ),
    "delete": lambda doc, cid: services.message_delete(user=doc, conversation_id=cid, seq=1),
    "close": lambda doc, cid: services.conversation_close(user=doc, conversation_id=cid),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", CHANGES)
def test_a_change_whose_commit_fails_gives_the_turn_back(monkeypatch, change):
    patient, doc = make_user(), doctor().user
    in_care_with(doc, patient)
    conversation = services.conversation_open(user=patient, other_id=doc.pk)[0]
    cid = str(conversation.pk)
    services.message_send(user=doc, conversation_id=cid, text="first", client_id="first")
    assert _turn(conversation) is None  # committed and pushed: given back
    failed = _fail_commit_once(monkeypatch)
    with pytest.raises(DatabaseError):
        CHANGES[change](doc, cid)
    assert failed
    assert _turn(conversation) is None
    conversation.refresh_from_db()
    assert (conversation.last_seq, conversation.rev, conversation.closed_at) == (1, 0, None)
    # the next send finds the turn free (and gets the seq the lost send gave back)
    ack = services.message_send(user=doc, conversation_id=cid, text="next", client_id="next")
    assert ack["seq"] == 2
    assert _turn(conversation) is None


def test_a_close_that_fails_after_taking_the_turn_gives_it_back(db, conversation, monkeypatch):
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the push could not be registered")

    monkeypatch.setattr(services, "_publish", refuse)
    with pytest.raises(RuntimeError):
        services.conversation_close(user=conversation.doctor, conversation_id=conversation.pk)
    assert _turn(conversation) is None


def test_an_edit_that_fails_after_its_change_gives_the_turn_back(
    db, conversation, monkeypatch, django_capture_on_commit_callbacks
):
    doc = conversation.doctor
    with django_capture_on_commit_callbacks(execute=True):
        services.message_send(user=doc, conversation_id=conversation.pk, text="a", client_id="a")
    assert _turn(conversation) is None

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the saved message could not be shown")

    monkeypatch.setattr(services.selectors, "message_data", refuse)
    with pytest.raises(RuntimeError):
        services.message_edit(user=doc, conversation_id=conversation.pk, seq=1, text="b")
    assert _turn(conversation) is None
    assert Message.objects.get(conversation=conversation, seq=1).text == "a"


def test_a_sender_that_gave_up_waiting_does_not_free_the_holders_turn(db, monkeypatch):
    """A sender that waited ``PUSH_ORDER_SECONDS`` goes on without the turn: giving back
    what it never held must leave the holder's turn taken (the next sender still waits)."""
    conversation_id = uuid.uuid4()
    key = f"chat:push-order:{conversation_id}"
    holder = services._hold_push_order(conversation_id)
    held = cache.get(key)
    assert held is not None
    monkeypatch.setattr(services, "PUSH_ORDER_SECONDS", 0.05)
    late = services._hold_push_order(conversation_id)  # waits 0.05 s, then gives up
    late()
    assert cache.get(key) == held
    holder()
    assert cache.get(key) is None


def test_a_turn_that_ran_out_and_was_taken_again_is_not_freed_by_its_first_holder(db):
    """A holder slower than ``PUSH_ORDER_SECONDS`` finds its turn taken by the next sender
    when it gives it back: it frees only its own."""
    conversation_id = uuid.uuid4()
    key = f"chat:push-order:{conversation_id}"
    slow = services._hold_push_order(conversation_id)
    cache.delete(key)  # ran out
    nxt = services._hold_push_order(conversation_id)
    taken = cache.get(key)
    slow()
    assert cache.get(key) == taken is not None
    nxt()
    assert cache.get(key) is None


def test_turns_on_the_embedded_cache_are_freed_only_by_their_holder(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    conversation_id = uuid.uuid4()
    key = f"chat:push-order:{conversation_id}"
    slow = services._hold_push_order(conversation_id)
    cache.delete(key)
    nxt = services._hold_push_order(conversation_id)
    slow()
    assert cache.get(key) is not None
    nxt()
    assert cache.get(key) is None
