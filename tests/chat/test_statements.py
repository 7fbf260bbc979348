"""``core.db.insert``, ``update`` and ``fetch``: the statements ``save()`` would send and a
row read, built once per model (chat sends them for every message). What they store is what
the ORM reads back, and what ``fetch`` reads is what the ORM reads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Conversation, Message
from core import db

pytestmark = pytest.mark.django_db


def _stored(conversation, patient, seq: int, text: str, attachments: list, at) -> Message:
    message = Message(
        conversation=conversation,
        seq=seq,
        sender=patient,
        client_id=f"c-{seq}",
        text=text,  # encrypted at rest by its field
        attachments=attachments,
        created_at=at,
    )
    assert db.insert(message)
    return message


def test_insert_stores_what_save_would_and_reads_back_the_generated_key(conversation, patient):
    at = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    message = _stored(conversation, patient, 1, "صداع منذ يومين", ["a", {"b": 1}], at)
    assert message.pk is not None and not message._state.adding
    stored = Message.objects.get(pk=message.pk)
    assert (stored.seq, stored.sender_id, stored.client_id) == (1, patient.pk, "c-1")
    assert stored.text == "صداع منذ يومين" and stored.attachments == ["a", {"b": 1}]
    assert stored.created_at == at and stored.edited_at is None
    with connection.cursor() as cursor:  # the column holds ciphertext, not the text
        cursor.execute("SELECT text FROM chat_message WHERE id = %s", [message.pk])
        assert "صداع" not in cursor.fetchone()[0]
    db.insert(
        Message(conversation=conversation, seq=2, sender=patient, client_id="c-2", created_at=at)
    )
    assert Message.objects.filter(conversation=conversation).count() == 2


def test_update_changes_only_the_named_fields_in_one_statement(conversation):
    at = datetime(2026, 5, 2, tzinfo=UTC)
    Conversation.objects.filter(pk=conversation.pk).update(doctor_read_seq=7)
    conversation.last_seq, conversation.last_activity_at = 42, at
    conversation.doctor_read_seq = 0  # stale in memory: not named, so not written
    with CaptureQueriesContext(connection) as queries:
        db.update(conversation, ["last_seq", "last_activity_at"])
    assert len(queries.captured_queries) == 1
    stored = Conversation.objects.get(pk=conversation.pk)
    assert (stored.last_seq, stored.last_activity_at, stored.doctor_read_seq) == (42, at, 7)


def test_insert_ignoring_conflicts_answers_false_and_stores_nothing(conversation, patient):
    at = datetime(2026, 5, 3, tzinfo=UTC)
    first = Message(conversation=conversation, seq=5, sender=patient, client_id="x", created_at=at)
    assert db.insert(first, ignore_conflicts=True) and first.pk is not None
    again = Message(conversation=conversation, seq=5, sender=patient, client_id="y", created_at=at)
    assert db.insert(again, ignore_conflicts=True) is False  # (conversation, seq) is taken
    assert again.pk is None and again._state.adding
    assert list(Message.objects.values_list("client_id", flat=True)) == ["x"]


def test_fetch_reads_rows_as_the_orm_does(conversation, patient):
    at = datetime(2026, 5, 4, 9, 15, tzinfo=UTC)
    message = _stored(conversation, patient, 9, "ألم في الصدر", [{"id": "r1"}], at)
    _, pk = db.names(Message, "id")
    (found,) = db.fetch(Message, db.select_sql(Message, f"{pk} = %s"), [message.pk])
    orm = Message.objects.get(pk=message.pk)
    fields = [f.attname for f in Message._meta.concrete_fields]
    assert [getattr(found, f) for f in fields] == [getattr(orm, f) for f in fields]
    assert found.text == "ألم في الصدر" and found.created_at == at and not found._state.adding
    assert db.fetch(Message, db.select_sql(Message, f"{pk} = %s"), [-1]) == []
