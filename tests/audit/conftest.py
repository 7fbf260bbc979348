from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import mongomock
import pymongo
import pytest

from audit import tasks
from audit.models import AuditEvent
from audit.services import record


@pytest.fixture
def make_events() -> Callable[[int], list[AuditEvent]]:
    def make(n: int) -> list[AuditEvent]:
        return [
            record(
                action="record.viewed",
                target_type="record",
                target_id=f"r-{i}",
                ip="10.0.0.1",
                data={"i": i, "nested": {"ratio": i / 3}},
            )
            for i in range(n)
        ]

    return make


MONGO_URI = "mongodb://mongo.test:27017/telemed_audit"


@pytest.fixture
def mongo(settings) -> Iterator[Any]:
    """The mirror's collection on an in-memory MongoDB (mongomock), set as ``MONGODB_URI``."""
    settings.MONGODB_URI = MONGO_URI
    tasks._client.cache_clear()
    with mongomock.patch(servers=(("mongo.test", 27017),)):
        yield pymongo.MongoClient(MONGO_URI)["telemed_audit"]["audit_events"]
    tasks._client.cache_clear()
