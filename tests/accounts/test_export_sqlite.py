"""The export runs on SQLite too (``make run``'s embedded defaults), where a UUID is stored
as 32 hex digits: the access log still finds the events about the user's files, in a
process of its own with a fresh database."""

from __future__ import annotations

from tests.procs import run_on_sqlite

SCRIPT = """
import json
from accounts.selectors import user_export
from records.models import MedicalRecord
from records.selectors import Origin, audit
from tests.doctors.factories import doctor
from tests.factories import make_user

doc, patient = doctor(), make_user()
mine = MedicalRecord.objects.create(patient=patient, uploaded_by=patient, category="other",
                                    title="t", file_name="f.pdf", storage_key="k")
audit(doc.user, "records.viewed", mine, Origin())
data = user_export(user=patient)
json.dumps(data)
assert [e["action"] for e in data["access_log"]] == ["records.viewed"], data["access_log"]
assert data["access_log"][0]["target_id"] == str(mine.pk)
print("sqlite ok")
"""


def test_the_export_runs_on_sqlite(tmp_path):
    run_on_sqlite(SCRIPT, tmp_path)
