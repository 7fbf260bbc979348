import pytest
from django.db import connection

from audit.models import GENESIS_HASH, AuditEvent
from audit.selectors import verify_chain
from audit.services import record
from tests.threads import run_together

THREADS = 16
EVENTS_PER_THREAD = 10


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_linear_chain():
    assert connection.vendor == "postgresql"

    def writer(n: int) -> None:
        for i in range(EVENTS_PER_THREAD):
            record(action="record.viewed", target_id=f"{n}-{i}", data={"thread": n})

    _, errors = run_together(THREADS, writer)
    assert errors == []
    total = THREADS * EVENTS_PER_THREAD
    assert verify_chain() == (True, None, total)
    rows = list(AuditEvent.objects.order_by("id").values_list("prev_hash", "hash"))
    assert len(rows) == total
    expected_prev = GENESIS_HASH
    for prev_hash, hash_ in rows:
        assert prev_hash == expected_prev
        expected_prev = hash_
    assert (
        len({target for target in AuditEvent.objects.values_list("target_id", flat=True)}) == total
    )
