"""A chat resume always ends: the conversations a client cannot name come page after page
behind a cursor, a bare seq (the first protocol) replays no old changes, and nothing is
replayed twice across the rounds of a cut resume."""

from __future__ import annotations

import asyncio
import copy
import threading
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import connection, connections
from django.utils import timezone

from chat import consumers, services
from chat.models import Conversation
from core.pagination import InvalidCursor, encode_cursor
from tests.chat.conftest import in_care_with
from tests.chat.test_live import _setup, _socket
from tests.doctors.factories import doctor
from tests.factories import make_user


def _resume(user: Any, chat: Any, **extra: Any) -> list[dict[str, Any]]:
    return consumers.resume(user=user, content={"type": "resume", "chat": chat, **extra})


def _now(capture: Any, fn: Any, **kwargs: Any) -> Any:
    """``fn`` with its after-commit work (the push, the push turn given back) run at once, as
    a commit would: the test's transaction never commits."""
    with capture(execute=True):
        return fn(**kwargs)


def _send(capture: Any, user: Any, conversation: Any, text: str) -> dict[str, Any]:
    return _now(
        capture,
        services.message_send,
        user=user,
        conversation_id=conversation.pk,
        text=text,
        client_id=text,
    )


def _three_messages(capture: Any, patient: Any, doc: Any) -> Conversation:
    """A conversation of ``patient`` and ``doc`` in care, with the doctor's messages 1-3."""
    in_care_with(doc, patient)
    conversation = services.conversation_open(user=patient, other_id=doc.pk)[0]
    for text in ("one", "two", "three"):
        _send(capture, doc, conversation, text)
    return conversation


def _many(doc: Any, n: int) -> list[Conversation]:
    """``n`` conversations of ``doc``, most recent first; three share each activity time
    (the cursor must break the ties)."""
    base = timezone.now()
    made = [
        Conversation.objects.create(
            patient=make_user(), doctor=doc, last_activity_at=base - timedelta(minutes=i // 3)
        )
        for i in range(n)
    ]
    return sorted(made, key=lambda c: (c.last_activity_at, str(c.pk)), reverse=True)


def test_a_doctor_with_more_conversations_than_a_resume_may_name_gets_every_one_once(
    db, doc, django_assert_max_num_queries
):
    """The review's case: 260 conversations, 200 named (the most a resume may name). The 60
    others come 50 then 10, each once, most recent first; then ``more`` is false."""
    conversations = _many(doc, 260)
    named = {str(c.pk): [0, 0] for c in conversations[60:]}
    cursor = None
    seen: list[str] = []
    for _ in range(5):
        with django_assert_max_num_queries(5):
            events = _resume(doc, named, chat_cursor=cursor)
        done = events[-1]
        assert done["type"] == "chat.resume.done"
        seen += [e["data"]["id"] for e in events if e["type"] == "chat.conversation"]
        assert done["data"]["marks"] == {}
        if not done["data"]["more"]:
            assert done["data"]["cursor"] is None
            break
        cursor = done["data"]["cursor"]
        assert isinstance(cursor, str)
    else:
        pytest.fail("the resume never ended")
    assert seen == [str(c.pk) for c in conversations[:60]]


def test_the_cursor_goes_on_past_a_cut_of_the_messages_without_sending_the_list_again(
    db, patient, doc, settings, django_capture_on_commit_callbacks
):
    """``more`` from the messages (the limit) and from the list are one: the cursor keeps the
    list's place, and once the list is all sent, the next rounds send none of it again."""
    settings.REALTIME_RESUME_LIMIT = 1
    in_care_with(doc, patient)
    known = services.conversation_open(user=patient, other_id=doc.pk)[0]
    for text in ("a", "b", "c"):
        _send(django_capture_on_commit_callbacks, doc, known, text)
    others = [Conversation.objects.create(patient=patient, doctor=doctor().user) for _ in range(2)]
    marks: dict[str, Any] = {str(known.pk): [0, 0]}
    cursor, got = None, []
    for _ in range(6):
        events = _resume(patient, marks, chat_cursor=cursor)
        got += [(e["type"], e["data"].get("seq") or e["data"]["id"]) for e in events[:-1]]
        done = events[-1]["data"]
        marks = {**marks, **done["marks"]}
        if not done["more"]:
            break
        cursor = done["cursor"]
    expected_items = [("chat.conversation", str(c.pk)) for c in reversed(others)]
    assert got == [("chat.message", 1), *expected_items, ("chat.message", 2), ("chat.message", 3)]
    assert marks == {str(known.pk): [3, 0]}


def test_without_a_cursor_the_first_protocol_moves_on_by_naming_until_it_may_name_no_more(
    db, doc, monkeypatch
):
    """A client of the earlier protocol (no ``chat_cursor``) gets the most recent page of the
    conversations it did not name, and moves on by naming them; ``more`` counts the rest only
    while it may still name a page, or it would resume for ever (past that, it pages the
    list). Its answer keeps its earlier shape."""
    monkeypatch.setattr(consumers, "MAX_NEW_CONVERSATIONS", 2)
    conversations = _many(doc, 5)
    ids = [str(c.pk) for c in conversations]
    events = _resume(doc, {})
    assert [e["data"]["id"] for e in events[:-1]] == ids[:2]
    assert events[-1] == {
        "type": "chat.resume.done",
        "data": {"more": True, "marks": {}, "reads": {}},
    }

    events = _resume(doc, {i: [0, 0] for i in ids[:2]})
    assert [e["data"]["id"] for e in events if e["type"] == "chat.conversation"] == ids[2:4]
    assert events[-1]["data"]["more"] is True

    # Naming 4, it may name 2 more at most: this page is the last one it can reach.
    monkeypatch.setattr(consumers, "MAX_RESUMED_CONVERSATIONS", 5)
    events = _resume(doc, {i: [0, 0] for i in ids[:4]})
    assert [e["data"]["id"] for e in events if e["type"] == "chat.conversation"] == ids[4:]
    assert events[-1]["data"]["more"] is False
    monkeypatch.setattr(consumers, "MAX_RESUMED_CONVERSATIONS", 3)
    events = _resume(doc, {i: [0, 0] for i in ids[:2]})
    assert [e["data"]["id"] for e in events if e["type"] == "chat.conversation"] == ids[2:4]
    assert events[-1]["data"]["more"] is False  # it could not name 2 + 2: it stops


def _signed(values: list[Any], scope: str = "chat.resume") -> str:
    return encode_cursor(values, scope=scope)


@pytest.mark.parametrize(
    "forge",
    [
        lambda me, c: "forged",
        lambda me, c: 5,
        lambda me, c: ["x"],
        lambda me, c: _signed([str(c.patient_id), None]),  # another user's
        lambda me, c: _signed([me, None], scope="chat.messages"),  # another list's
        lambda me, c: _signed([me, ["yesterday", str(c.pk)]]),
        lambda me, c: _signed([me, [c.last_activity_at.isoformat(), "not a uuid"]]),
        lambda me, c: _signed([me, ["2024-01-01T00:00:00", str(c.pk)]]),  # naive
        lambda me, c: _signed([me, [c.last_activity_at.isoformat(), str(c.pk), 1]]),
        lambda me, c: _signed([me, "end"]),
    ],
)
def test_a_forged_cursor_is_refused_before_anything_is_sent(db, doc, forge):
    (conversation,) = _many(doc, 1)
    with pytest.raises(InvalidCursor):
        _resume(doc, {}, chat_cursor=forge(str(doc.pk), conversation))


def test_a_cursor_of_the_caller_is_taken(db, doc):
    done = encode_cursor([str(doc.pk), None], scope="chat.resume")
    _many(doc, 1)
    # "everything of the list was sent": nothing of it again, and nothing more to come
    assert _resume(doc, {}, chat_cursor=done) == [
        {
            "type": "chat.resume.done",
            "data": {"more": False, "marks": {}, "reads": {}, "cursor": None},
        }
    ]


@pytest.mark.django_db(transaction=True)
async def test_a_forged_cursor_over_the_socket_is_an_error_event_and_the_socket_stays_open():
    patient, doc, conversation, patient_token, _ = await database_sync_to_async(_setup)()
    ws = _socket(patient_token)
    assert (await ws.connect())[0]
    await asyncio.sleep(0.2)
    try:
        await ws.send_json_to({"type": "resume", "after": 0, "chat": {}, "chat_cursor": "x.y.z"})
        event = await ws.receive_json_from(timeout=5)
        while event["type"] == "presence.changed":
            event = await ws.receive_json_from(timeout=5)
        assert event["type"] == "error"
        assert event["error"]["code"] == "request.invalid_cursor"
        await ws.send_json_to({"type": "resume", "after": 0, "chat": {}, "chat_cursor": None})
        got = []
        while True:
            event = await ws.receive_json_from(timeout=5)
            if event["type"] == "resume.done":
                break
            got.append(event)
        assert [e["data"]["id"] for e in got if e["type"] == "chat.conversation"] == [
            str(conversation.pk)
        ]
        assert got[-1] == {
            "type": "chat.resume.done",
            "data": {"more": False, "marks": {}, "reads": {}, "cursor": None},
        }
    finally:
        await ws.disconnect()


# --- a bare seq (the first protocol) -------------------------------------------------------


def test_a_bare_seq_replays_no_earlier_change_only_the_new_messages_and_the_state(
    db, patient, doc, settings, django_capture_on_commit_callbacks
):
    """A bare seq comes from a client that knows nothing of ``rev``: it counts as the
    conversation's ``rev`` at the resume, so however many edits and deletions came before,
    the new messages come at once (they used to wait behind every change ever made). A
    close or reopen reaches it only live, and it cannot say which state it saw: a
    conversation ever closed comes with its state (closed while it was away, it would still
    show it open)."""
    settings.REALTIME_RESUME_LIMIT = 2
    capture = django_capture_on_commit_callbacks
    conversation = _three_messages(capture, patient, doc)
    cid = str(conversation.pk)
    reads = {cid: {"read_seq": 0, "other_read_seq": 0}}
    # caught up, never closed: nothing
    assert _resume(patient, {cid: 3}) == [
        {"type": "chat.resume.done", "data": {"more": False, "marks": {}, "reads": reads}}
    ]
    for seq in (1, 2, 3):
        _now(capture, services.message_edit, user=doc, conversation_id=cid, seq=seq, text="x")
    _now(capture, services.conversation_close, user=doc, conversation_id=cid)
    closed = {"type": "chat.closed", "data": {"conversation_id": cid, "rev": 4}}
    assert _resume(patient, {cid: 3}) == [
        closed,
        {
            "type": "chat.resume.done",
            "data": {"more": False, "marks": {cid: [3, 4]}, "reads": reads},
        },
    ]
    _now(capture, services.conversation_reopen, user=doc, conversation_id=cid)
    new = _send(capture, doc, conversation, "four")
    reopened = {"type": "chat.reopened", "data": {"conversation_id": cid, "rev": 5}}
    assert _resume(patient, {cid: 3}) == [
        reopened,
        {"type": "chat.message", "data": new},
        {
            "type": "chat.resume.done",
            "data": {"more": False, "marks": {cid: [4, 5]}, "reads": reads},
        },
    ]
    # caught up, the same bare seq again: the state alone (no edit, no message)
    assert _resume(patient, {cid: 4}) == [
        reopened,
        {
            "type": "chat.resume.done",
            "data": {"more": False, "marks": {cid: [4, 5]}, "reads": reads},
        },
    ]
    # a client that sends its rev gets nothing once caught up
    assert _resume(patient, {cid: [4, 5]}) == [
        {"type": "chat.resume.done", "data": {"more": False, "marks": {}, "reads": reads}}
    ]


# --- nothing twice --------------------------------------------------------------------------


def test_a_resume_cut_among_the_changes_sends_the_close_once(
    db, patient, doc, settings, django_capture_on_commit_callbacks
):
    """The close (rev 4) came after three edits (revs 1-3); cut after two of them, the marks
    say rev 2: the close is not sent in that round (it would come again in the next), but in
    the round that passes its rev."""
    settings.REALTIME_RESUME_LIMIT = 2
    capture = django_capture_on_commit_callbacks
    conversation = _three_messages(capture, patient, doc)
    cid = str(conversation.pk)
    for seq in (1, 2, 3):
        _now(capture, services.message_edit, user=doc, conversation_id=cid, seq=seq, text="x")
    _now(capture, services.conversation_close, user=doc, conversation_id=cid)
    marks: dict[str, Any] = {cid: [3, 0]}
    rounds = []
    for _ in range(5):
        events = _resume(patient, marks)
        rounds.append([(e["type"], e["data"]["rev"]) for e in events[:-1]])
        marks = {**marks, **events[-1]["data"]["marks"]}
        if not events[-1]["data"]["more"]:
            break
    assert rounds == [
        [("chat.message", 1), ("chat.message", 2)],
        [("chat.closed", 4), ("chat.message", 3)],
    ]
    assert marks == {cid: [3, 4]}


@pytest.mark.django_db(transaction=True)
def test_an_edit_committed_while_a_resume_reads_is_sent_once():
    """An edit that commits between the resume's read of the conversation and its read of the
    messages: the resume reads one snapshot, so the edit comes in the next resume, once (it
    came in both: with the new messages, then again as a change past the marks)."""
    patient, doc = make_user(), doctor().user
    in_care_with(doc, patient)
    conversation = services.conversation_open(user=patient, other_id=doc.pk)[0]
    cid = str(conversation.pk)
    for text in ("seen", "unseen"):
        services.message_send(user=doc, conversation_id=cid, text=text, client_id=text)
    fired: list[str] = []

    def edit() -> None:
        try:
            services.message_edit(user=doc, conversation_id=cid, seq=2, text="unseen, edited")
        finally:
            connection.close()

    def meanwhile(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if not fired and '"chat_message"' in sql:
            fired.append(sql)
            thread = threading.Thread(target=edit)
            thread.start()
            thread.join()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(meanwhile):
        first = _resume(patient, {cid: [1, 0]})
    assert fired
    second = _resume(patient, {cid: first[-1]["data"]["marks"][cid]})
    sent = [(e["data"]["seq"], e["data"]["rev"]) for e in first[:-1] + second[:-1]]
    assert sent == [(2, 0), (2, 1)]
    assert second[0]["data"]["text"] == "unseen, edited"
    assert second[-1]["data"]["marks"] == {cid: [2, 1]}


def _persistent_connection() -> Any:
    """In this thread, the test database's connection as production has it with the pool off
    (``DB_POOL_MAX_SIZE=0``, ``DB_CONN_MAX_AGE`` > 0): kept open across calls, health checks
    on. Answers the connection it replaces, to put back."""
    original = connections["default"]
    settings_dict = copy.deepcopy(original.settings_dict)
    settings_dict["OPTIONS"].pop("pool", None)
    settings_dict.update(CONN_MAX_AGE=None, CONN_HEALTH_CHECKS=True)
    connections["default"] = original.__class__(settings_dict, alias="default")
    return original


@pytest.mark.django_db(transaction=True)
async def test_a_resume_on_a_reused_connection_with_health_checks_reads_its_snapshot():
    """``database_sync_to_async`` sets a kept connection's health check due again before each
    call: its ``SELECT 1`` must not start the snapshot's transaction, or ``SET TRANSACTION``
    (which must come first) fails and every resume on a reused connection is an error."""
    if connection.vendor != "postgresql":
        pytest.skip("the snapshot is PostgreSQL's")
    state: dict[str, Any] = {}

    def setup() -> None:
        state["original"] = _persistent_connection()
        patient, doc = make_user(), doctor().user
        in_care_with(doc, patient)
        conversation = services.conversation_open(user=patient, other_id=doc.pk)[0]
        services.message_send(user=doc, conversation_id=conversation.pk, text="a", client_id="a")
        services.conversation_close(user=doc, conversation_id=conversation.pk)
        state.update(patient=patient, cid=str(conversation.pk))

    def resume() -> tuple[bool, list[str], list[dict[str, Any]]]:
        reused, statements = connection.connection is not None, []
        db: Any = connection  # its health-check flags are not in django-stubs
        due = db.health_check_enabled and not db.health_check_done

        def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            statements.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(record):
            events = _resume(state["patient"], {state["cid"]: [0, 0]})
        return reused and due, statements, events

    def teardown() -> None:
        connection.close()
        connections["default"] = state["original"]

    await database_sync_to_async(setup)()
    try:
        for _ in range(3):
            checked, statements, events = await database_sync_to_async(resume)()
            assert checked  # the connection was reused, its health check due
            assert statements[0] == "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
            assert [e["type"] for e in events] == [
                "chat.closed",
                "chat.message",
                "chat.resume.done",
            ]
    finally:
        await database_sync_to_async(teardown)()
