import mongomock
import pytest
from django.db import transaction
from django_tasks_db.models import DBTaskResult

from audit import tasks
from audit.services import record
from tests.platform.test_tasks import run_worker_batch


@pytest.mark.django_db
def test_no_mirror_task_without_a_mongodb_uri(settings):
    settings.MONGODB_URI = ""
    record(action="auth.login")
    assert DBTaskResult.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_events_are_mirrored_by_the_worker_not_on_the_request_path(mongo):
    with transaction.atomic():
        first = record(action="auth.login", ip="192.0.2.1", data={"token": "secret"})
        second = record(action="auth.logout")
    assert DBTaskResult.objects.count() == 2
    assert mongo.count_documents({}) == 0  # nothing leaves until the worker runs

    run_worker_batch()

    assert DBTaskResult.objects.filter(status="SUCCESSFUL").count() == 2
    doc = mongo.find_one({"_id": first.id})
    assert doc is not None
    assert doc["action"] == "auth.login"
    assert doc["ip"] == "192.0.2.1"
    assert doc["data"] == {"token": "[redacted]"}
    assert (doc["prev_hash"], doc["hash"]) == (first.prev_hash, first.hash)
    assert doc["created_at_iso"] == first.created_at.isoformat(timespec="microseconds")
    assert mongo.find_one({"_id": second.id})["prev_hash"] == first.hash


@pytest.mark.django_db(transaction=True)
def test_mirroring_twice_keeps_one_document(mongo):
    event = record(action="doctor.verified", target_type="doctor", target_id="d1")
    run_worker_batch()
    tasks.mirror_event.enqueue(event.id)
    run_worker_batch()
    assert mongo.count_documents({}) == 1
    assert mongo.find_one({"_id": event.id})["target_id"] == "d1"


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_event_is_never_mirrored(mongo):
    with pytest.raises(RuntimeError), transaction.atomic():
        record(action="auth.login")
        raise RuntimeError("roll back")
    assert DBTaskResult.objects.count() == 0
    run_worker_batch()
    assert mongo.count_documents({}) == 0


@pytest.mark.django_db
def test_database_name_falls_back_to_the_setting(settings):
    settings.MONGODB_URI = "mongodb://mongo.test:27017"
    settings.MONGODB_DB = "fallback_db"
    tasks._client.cache_clear()
    try:
        with mongomock.patch(servers=(("mongo.test", 27017),)):
            assert tasks.collection().full_name == "fallback_db.audit_events"
    finally:
        tasks._client.cache_clear()
