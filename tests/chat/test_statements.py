"""``core.db.insert`` and ``core.db.update``: the statements ``save()`` would send, built once
per model (chat sends them for every message). What they store is what the ORM reads back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Conversation, Message
from core import db

pytestmark = pytest.mark.django_db


def test_insert_stores_what_save_would_and_reads_back_the_generated_key(conversation, patient):
    at = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    message = Message(
        conversation=conversation,
        seq=1,
        sender=patient,
        client_id="c-1",
        text="صداع منذ يومين",  # encrypted at rest by its field
        attachments=["a", {"b": 1}],
        created_at=at,
    )
    db.insert(message)
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
