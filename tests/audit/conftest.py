from __future__ import annotations

from collections.abc import Callable

import pytest

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
