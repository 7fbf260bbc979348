"""The hand-written statements of the chat and care paths (``bookings.selectors.in_care``,
``chat.selectors.conversation_for(people=False)``, the message insert that ignores a client
id used before) run on SQLite too: ``make run``'s embedded defaults, in a process of their own
with a fresh database."""

from __future__ import annotations

from tests.procs import run_on_sqlite

SCRIPT = """
from datetime import timedelta
from django.utils import timezone
from bookings.models import Appointment
from bookings.selectors import in_care
from chat import selectors, services
from chat.errors import ConversationNotFound
from tests.doctors.factories import doctor
from tests.factories import make_user

doc, patient, stranger = doctor(), make_user(), make_user()
start = timezone.now() - timedelta(hours=2)
Appointment.objects.create(doctor=doc, patient=patient, mode="video", status="confirmed",
                           start=start, end=start + timedelta(minutes=30))
assert in_care(doctor_user=doc.user, patient=patient)
assert in_care(doctor_user=doc.user_id, patient=patient.pk)
assert not in_care(doctor_user=doc.user, patient=stranger)
assert not in_care(doctor_user=doc.user, patient=patient, now=timezone.now() + timedelta(days=91))

conversation, _ = services.conversation_open(user=patient, other_id=str(doc.user_id))
cid = str(conversation.pk)
first = services.message_send(user=patient, conversation_id=cid, text="hello", client_id="a")
again = services.message_send(user=patient, conversation_id=cid, text="hello", client_id="a")
second = services.message_send(user=doc.user, conversation_id=cid, text="hi", client_id="a")
assert first == again and first["seq"] == 1 and second["seq"] == 2, (first, again, second)
assert first["created_at"].endswith("+00:00"), first  # the values were converted as the ORM does
from chat.models import Message
stored = list(Message.objects.filter(conversation=conversation).order_by("seq"))
assert [(m.seq, m.text) for m in stored] == [(1, "hello"), (2, "hi")], stored  # core.db.insert
from core import db
taken = Message(conversation=conversation, seq=1, sender=patient, client_id="b",
                created_at=timezone.now())
assert db.insert(taken, ignore_conflicts=True) is False and taken.pk is None  # INSERT OR IGNORE
found = selectors.conversation_for(viewer=patient, conversation_id=cid, people=False)
assert found.last_seq == 2 and found.patient_id == patient.pk and found.created_at.tzinfo
assert services.read_up_to(user=doc.user, conversation_id=cid, seq=1)["seq"] == 1
assert services.read_up_to(user=doc.user, conversation_id=cid, seq=0)["seq"] == 1
services.typing(user=patient, conversation_id=cid)
for viewer, conversation_id in ((stranger, cid), (patient, "not-a-uuid")):
    try:
        selectors.conversation_for(viewer=viewer, conversation_id=conversation_id, people=False)
    except ConversationNotFound:
        pass
    else:
        raise AssertionError(viewer)
print("sqlite ok")
"""


def test_hand_written_statements_run_on_sqlite(tmp_path):
    run_on_sqlite(SCRIPT, tmp_path)
