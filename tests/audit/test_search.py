import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from audit.selectors import event_search
from audit.services import record


@pytest.fixture
def trail():
    alice, bob = uuid.uuid4(), uuid.uuid4()
    events = {
        "a_login": record(action="auth.login", actor_id=alice),
        "b_login": record(action="auth.login", actor_id=bob),
        "a_view": record(
            action="record.viewed", actor_id=alice, target_type="record", target_id="r1"
        ),
        "b_view": record(
            action="record.viewed", actor_id=bob, target_type="record", target_id="r2"
        ),
        "verify": record(
            action="doctor.verified", actor_id=alice, target_type="doctor", target_id="r1"
        ),
    }
    return alice, bob, events


def ids(qs):
    return [e.id for e in qs]


@pytest.mark.django_db
def test_search_without_filters_is_newest_first(trail):
    _, _, events = trail
    assert ids(event_search()) == [e.id for e in reversed(events.values())]


@pytest.mark.django_db
def test_search_filters_combine(trail):
    alice, bob, e = trail
    assert ids(event_search(actor_id=alice)) == [e["verify"].id, e["a_view"].id, e["a_login"].id]
    assert ids(event_search(actor_id=str(bob), action="auth.login")) == [e["b_login"].id]
    assert ids(event_search(action="auth.")) == [e["b_login"].id, e["a_login"].id]
    assert ids(event_search(target_id="r1")) == [e["verify"].id, e["a_view"].id]
    assert ids(event_search(target_type="record", target_id="r1")) == [e["a_view"].id]
    assert ids(event_search(action="auth.logout")) == []


@pytest.mark.django_db
def test_search_by_time_window(trail):
    _, _, e = trail
    assert ids(event_search(since=e["b_view"].created_at)) == [e["verify"].id, e["b_view"].id]
    assert ids(event_search(until=e["b_login"].created_at)) == [e["a_login"].id]
    later = timezone.now() + timedelta(minutes=1)
    assert ids(event_search(since=later)) == []
    assert event_search(until=later).count() == AuditEvent.objects.count() == 5
