"""run_once: one answer per key for 24 h, then the key is free again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.idempotency import IdempotencyMismatch, run_once
from core.models import IdempotencyRecord
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_a_key_answers_once_then_expires():
    user = make_user()
    calls: list[int] = []

    def action() -> tuple[int, dict]:
        calls.append(1)
        return 201, {"n": len(calls)}

    assert run_once(user=user, key="k", payload={"a": 1}, action=action)[:2] == (201, {"n": 1})
    assert run_once(user=user, key="k", payload={"a": 1}, action=action)[:2] == (201, {"n": 1})
    with pytest.raises(IdempotencyMismatch):
        run_once(user=user, key="k", payload={"a": 2}, action=action)
    assert run_once(user=make_user(), key="k", payload={"a": 1}, action=action)[:2] == (
        201,
        {"n": 2},
    )
    IdempotencyRecord.objects.filter(user=user).update(
        created_at=timezone.now() - timedelta(hours=25)
    )
    assert run_once(user=user, key="k", payload={"a": 2}, action=action)[:2] == (201, {"n": 3})
    assert IdempotencyRecord.objects.filter(user=user).count() == 1


def test_the_stored_answer_is_encrypted_and_replayed_exactly():
    """An answer can carry protected health information (a booking's reason)."""
    from django.db import connection

    user = make_user()
    answer = {"reason": "Chest pain since Tuesday", "ar": "ألم في الصدر", "n": [1, 2.5, None]}
    assert run_once(user=user, key="phi", payload={}, action=lambda: (201, answer))[:2] == (
        201,
        answer,
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT body FROM core_idempotencyrecord WHERE key = %s", ["phi"])
        (raw,) = cursor.fetchone()
    assert raw.startswith("enc1:") and "Chest" not in raw and "pain" not in raw
    assert run_once(user=user, key="phi", payload={}, action=lambda: (500, {}))[:2] == (201, answer)


def test_the_migrations_encrypt_the_values_already_stored(tmp_path):
    """Answers stored in plain JSON, and history reasons in plain text, before their
    migrations are encrypted in place and still read (on SQLite, in a process of its own: a
    migration test of the real schema)."""
    from tests.procs import run_on_sqlite

    run_on_sqlite(
        """
from django.core.management import call_command
from django.db import connection
call_command("migrate", "core", "0001", verbosity=0)
from tests.factories import make_user
user = make_user()
with connection.cursor() as cursor:
    cursor.execute(
        "INSERT INTO core_idempotencyrecord (user_id, key, request_hash, status, body, created_at)"
        " VALUES (%s, 'old', %s, 201, %s, CURRENT_TIMESTAMP)",
        [user.pk.hex, __import__("hashlib").sha256(b"{}").hexdigest(), '{"reason": "migraine"}'],
    )
call_command("migrate", "core", verbosity=0)
with connection.cursor() as cursor:
    cursor.execute("SELECT body FROM core_idempotencyrecord")
    (raw,) = cursor.fetchone()
assert raw.startswith("enc1:") and "migraine" not in raw, raw
from core.idempotency import run_once
assert run_once(user=user, key="old", payload={}, action=lambda: (500, {}))[:2] == (
    201, {"reason": "migraine"}
)
from datetime import timedelta
from django.utils import timezone
from django.db.migrations.executor import MigrationExecutor
from bookings.models import StatusChange
from tests.doctors.factories import doctor
call_command("migrate", "bookings", "0005", verbosity=0)
# The appointment as the schema of then has it (the model has gained columns since).
then = MigrationExecutor(connection).loader.project_state(("bookings", "0005_clinic_protect_upcoming")).apps
Appointment = then.get_model("bookings", "Appointment")
start = timezone.now() + timedelta(days=2)
appointment = Appointment.objects.create(
    doctor_id=doctor().pk, patient_id=user.pk, mode="video", status="cancelled", start=start,
    end=start + timedelta(minutes=30),
)
with connection.cursor() as cursor:
    for reason in ("", "suspected fracture"):  # most rows had no reason
        cursor.execute(
            "INSERT INTO bookings_statuschange (appointment_id, status, reason, at)"
            " VALUES (%s, 'cancelled', %s, CURRENT_TIMESTAMP)",
            [appointment.pk.hex, reason],
        )
call_command("migrate", "bookings", verbosity=0)
with connection.cursor() as cursor:
    cursor.execute("SELECT reason FROM bookings_statuschange ORDER BY id")
    raw = [r for (r,) in cursor.fetchall()]
assert raw[0] == "" and raw[1].startswith("enc1:") and "fracture" not in raw[1], raw
assert [h.reason for h in StatusChange.objects.order_by("id")] == ["", "suspected fracture"]
call_command("rotate_field_keys", verbosity=0)  # an empty value stored before is no trouble
assert [h.reason for h in StatusChange.objects.order_by("id")] == ["", "suspected fracture"]
print("sqlite ok")
""",
        tmp_path,
    )


@pytest.mark.django_db(transaction=True)
def test_an_expired_key_purged_while_it_comes_back_runs_afresh(monkeypatch):
    """The key's expired record, deleted by the housekeeping purge between this request's
    failed claim and its own delete, leaves the key free: not a 500 (no record to replay)."""
    import threading

    from django.db import connection

    from core import idempotency

    user = make_user()
    run_once(user=user, key="k", payload={}, action=lambda: (201, {"n": 1}))
    IdempotencyRecord.objects.filter(user=user).update(
        created_at=timezone.now() - timedelta(hours=25)
    )
    real, purged = idempotency.db.insert, list[int]()

    def insert(obj, **kwargs):
        stored = real(obj, **kwargs)
        if not purged:
            purged.append(1)

            def purge() -> None:
                idempotency.purge_expired()
                connection.close()

            thread = threading.Thread(target=purge)
            thread.start()
            thread.join()
        return stored

    monkeypatch.setattr(idempotency.db, "insert", insert)
    assert run_once(user=user, key="k", payload={}, action=lambda: (201, {"n": 2}))[:2] == (
        201,
        {"n": 2},
    )
    assert IdempotencyRecord.objects.get(user=user).body == {"n": 2}
