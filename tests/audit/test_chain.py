import io
import json
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit.models import GENESIS_HASH, AppendOnlyError, AuditEvent
from audit.selectors import chain_check, verify_chain
from audit.services import record


@pytest.mark.django_db
def test_empty_chain_verifies():
    assert verify_chain() == (True, None, 0)


@pytest.mark.django_db
def test_first_event_links_to_genesis_and_each_next_to_its_predecessor(make_events):
    events = make_events(3)
    assert events[0].prev_hash == GENESIS_HASH
    assert events[1].prev_hash == events[0].hash
    assert events[2].prev_hash == events[1].hash
    assert all(len(e.hash) == 64 and int(e.hash, 16) >= 0 for e in events)


@pytest.mark.django_db
def test_chain_of_many_events_verifies_after_a_database_round_trip(make_events):
    make_events(250)
    record(
        action="auth.login",
        actor_id=uuid.uuid4(),
        actor_role="doctor",
        ip="::ffff:192.0.2.7",
        user_agent="Mozilla/5.0",
        data={"big": 1e20, "small": 1.5e-7, "whole": 2.0, "list": [1, "a", None], "ar": "مرحبا"},
    )
    assert verify_chain() == (True, None, 251)


@pytest.mark.django_db
def test_edited_row_is_reported_by_its_id(make_events):
    events = make_events(20)
    victim = events[12]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET data = %s::jsonb WHERE id = %s",
            [json.dumps({"i": 999}), victim.id],
        )
    ok, broken, checked = verify_chain()
    assert (ok, broken, checked) == (False, victim.id, 13)
    assert chain_check().reason == "content does not match its hash"


@pytest.mark.django_db
def test_edit_that_also_recomputes_the_hash_breaks_the_next_link(make_events):
    events = make_events(5)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET action = 'auth.logout', hash = %s WHERE id = %s",
            ["f" * 64, events[2].id],
        )
    assert verify_chain()[:2] == (False, events[2].id)


@pytest.mark.django_db
def test_deleted_row_is_reported_at_the_event_after_it(make_events):
    events = make_events(10)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [events[4].id])
    assert verify_chain() == (False, events[5].id, 5)
    assert chain_check().reason == "prev_hash does not match the previous event's hash"


@pytest.mark.django_db
def test_deleting_the_first_row_is_reported(make_events):
    events = make_events(3)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [events[0].id])
    assert verify_chain() == (False, events[1].id, 1)


@pytest.mark.django_db
def test_python_update_and_delete_are_refused(make_events):
    event = make_events(2)[0]
    event.data = {"changed": True}
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(id=event.id).update(action="auth.logout")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([event], ["data"])
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_create([AuditEvent(action="auth.login")])
    assert AuditEvent.objects.count() == 2
    assert verify_chain() == (True, None, 2)


@pytest.mark.django_db
def test_a_new_instance_with_an_existing_id_cannot_overwrite_it(make_events):
    from django.db import IntegrityError, transaction

    event = make_events(1)[0]
    forged = AuditEvent(id=event.id, action="auth.logout", prev_hash="1" * 64, hash="2" * 64)
    with pytest.raises(IntegrityError), transaction.atomic():
        forged.save()
    assert AuditEvent.objects.get(id=event.id).action == "record.viewed"


@pytest.mark.django_db
def test_verify_command_reports_ok():
    record(action="auth.login")
    record(action="auth.logout")
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    assert out.getvalue().strip() == "audit chain OK: 2 events"


@pytest.mark.django_db
def test_verify_command_names_the_broken_event_and_exits_1(make_events):
    events = make_events(4)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET target_id = 'other' WHERE id = %s", [events[1].id]
        )
    with pytest.raises(CommandError) as exc:
        call_command("audit_verify", stdout=io.StringIO())
    assert exc.value.returncode == 1
    assert str(exc.value).startswith(f"audit chain BROKEN at event id {events[1].id} (")
