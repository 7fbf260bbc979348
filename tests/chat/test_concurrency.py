"""Concurrent senders on real PostgreSQL: sequence numbers stay gap-free and ordered, and a
client id raced by its own retries is still one message."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from chat import services
from chat.models import Conversation, Message
from tests.chat.conftest import in_care_with
from tests.doctors.factories import doctor
from tests.factories import make_user
from tests.threads import run_together

THREADS = 8
PER_THREAD = 10


@pytest.fixture
def open_conversation(transactional_db: None, settings: Any) -> Conversation:
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "chat_send": "10000/m/user"}
    patient, doc = make_user(), doctor().user
    in_care_with(doc, patient)
    return services.conversation_open(user=patient, other_id=doc.pk)[0]


def test_concurrent_senders_get_gap_free_increasing_seqs(open_conversation):
    assert connection.vendor == "postgresql"
    conversation = open_conversation
    people = [conversation.patient, conversation.doctor]

    def sender(n: int) -> list[int]:
        user = people[n % 2]
        return [
            services.message_send(
                user=user,
                conversation_id=conversation.pk,
                text=f"t{n}-{i}",
                client_id=f"t{n}-{i}",
            )["seq"]
            for i in range(PER_THREAD)
        ]

    results, errors = run_together(THREADS, sender)
    assert errors == []
    total = THREADS * PER_THREAD
    for seqs in results:  # each sender's messages in the order it sent them
        assert seqs == sorted(seqs)
    assert sorted(s for seqs in results for s in seqs) == list(range(1, total + 1))
    stored = list(Message.objects.filter(conversation=conversation).order_by("seq"))
    assert [m.seq for m in stored] == list(range(1, total + 1))
    assert all(m.text == m.client_id for m in stored)  # no message got another's number
    conversation.refresh_from_db()
    assert conversation.last_seq == total


def test_one_client_id_raced_by_its_retries_is_one_message(open_conversation):
    conversation = open_conversation

    def retry(n: int) -> dict[str, Any]:
        return services.message_send(
            user=conversation.patient,
            conversation_id=conversation.pk,
            text="same",
            client_id="retry-me",
        )

    acks, errors = run_together(THREADS, retry)
    assert errors == []
    assert Message.objects.filter(conversation=conversation).count() == 1
    assert len({(a["seq"], a["created_at"]) for a in acks}) == 1 and len(acks) == THREADS
