"""The personal-data export (``GET /api/v1/me/export``): every app's rows about the caller,
nothing of a third person, a fixed number of queries, and no list cut silently."""

from __future__ import annotations

import itertools
import json
from datetime import date, time, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import selectors
from accounts.models import Role, User
from audit.services import record as audit_record
from bookings.models import (
    Appointment,
    AvailabilityRule,
    BookingPolicy,
    ExtraHours,
    Review,
    Status,
    StatusChange,
    TimeOff,
)
from chat.models import Conversation, Message
from realtime.models import DeliveryPreference, Notification
from records.models import AccessGrant, BreakGlassAccess, MedicalRecord
from records.selectors import Origin
from records.selectors import audit as records_audit
from tests.doctors.factories import doctor, specialty
from tests.factories import bearer, login, make_user

pytestmark = pytest.mark.django_db

_seq = itertools.count(1)
_hour = itertools.count(1)


def _appointment(doc: Any, patient: User, reason: str, status: str = Status.COMPLETED) -> Any:
    start = timezone.now() - timedelta(days=2, hours=next(_hour))
    a = Appointment.objects.create(
        doctor=doc,
        patient=patient,
        clinic=doc.clinics.first(),
        mode="in_person",
        start=start,
        end=start + timedelta(minutes=30),
        status=status,
        reason=reason,
    )
    StatusChange.objects.create(appointment=a, status=Status.CONFIRMED, actor=patient)
    StatusChange.objects.create(appointment=a, status=status, actor=None, reason="paid")
    return a


def _file(patient: User, title: str) -> MedicalRecord:
    return MedicalRecord.objects.create(
        patient=patient,
        uploaded_by=patient,
        category="lab_result",
        title=title,
        notes=f"notes of {title}",
        file_name=f"{title}.pdf",
        storage_key=f"records/{next(_seq)}",
        record_date=date(2024, 1, 2),
        size=123,
    )


def _chat(patient: User, doc_user: User, texts: list[tuple[User, str]], **extra: Any) -> Any:
    c = Conversation.objects.create(patient=patient, doctor=doc_user)
    for seq, (sender, text) in enumerate(texts, 1):
        Message.objects.create(
            conversation=c,
            seq=seq,
            sender=sender,
            client_id=f"c{next(_seq)}",
            text=text,
            created_at=timezone.now(),
            **extra,
        )
    c.last_seq = len(texts)
    c.save(update_fields=["last_seq"])
    return c


def _notify(user: User, title: str) -> None:
    last = Notification.objects.filter(user=user).count()
    Notification.objects.create(
        user=user, seq=last + 1, kind="booking.confirmed", title=title, body="", data={}
    )


def _add_rows(w: dict[str, Any]) -> None:
    """One more row of every kind for both subjects (and for the outsiders)."""
    p, d, x = w["patient"], w["doctor"], w["other_patient"]
    n = next(_seq)
    a = _appointment(d, p, f"P reason {n}")
    Review.objects.create(appointment=a, doctor=d, patient=p, rating=4, text=f"P review {n}")
    rec = _file(p, f"P file {n}")
    AccessGrant.objects.create(record=rec, doctor=d.user, granted_by=p)
    xrec = _file(x, f"X file {n}")
    AccessGrant.objects.create(record=xrec, doctor=d.user, granted_by=x)
    BreakGlassAccess.objects.create(
        staff=w["staff"], patient=p, reason=f"emergency {n}", expires_at=timezone.now()
    )
    _notify(p, f"P note {n}")
    _notify(d.user, f"D note {n}")
    Message.objects.create(
        conversation=w["conversation"],
        seq=w["conversation"].last_seq + 1,
        sender=p,
        client_id=f"c{n}",
        text=f"P says {n}",
        created_at=timezone.now(),
    )
    w["conversation"].last_seq += 1
    w["conversation"].save(update_fields=["last_seq"])
    AvailabilityRule.objects.create(
        doctor=d, mode="video", weekday=n % 7, start=time(6), end=time(7)
    )
    ExtraHours.objects.create(
        doctor=d, mode="video", date=date(2030, 1, n % 28 + 1), start=time(6), end=time(7)
    )
    TimeOff.objects.create(
        doctor=d,
        start=timezone.now() + timedelta(days=n),
        end=timezone.now() + timedelta(days=n, hours=1),
    )
    records_audit(d.user, "records.viewed", rec, Origin(ip="10.9.9.9"))
    records_audit(
        d.user,
        "records.listed",
        None,
        Origin(),
        patient_id="",
        record_ids=[str(rec.pk), str(xrec.pk)],
    )
    audit_record(
        action="auth.login",
        actor_id=p.pk,
        actor_role="patient",
        target_type="user",
        target_id=str(p.pk),
    )


@pytest.fixture
def world() -> dict[str, Any]:
    """A patient P and a doctor D with rows in every app, another patient X of D's, and an
    outside doctor E with a patient Z that neither P nor D has anything to do with."""
    d = doctor(first_name="Dina", last_name="Doctor", specialties=(specialty(),), fee_minor=25050)
    e = doctor(first_name="Ehab", last_name="Outsider")
    p = make_user(first_name="Pia", last_name="Patient", phone="+201000000101", phone_verified=True)
    x = make_user(first_name="Xena", last_name="Other", phone="+201000000102", phone_verified=True)
    z = make_user(
        first_name="Zaki", last_name="Stranger", phone="+201000000103", phone_verified=True
    )
    staff = make_user(role=Role.ADMIN, first_name="Sara", last_name="Staff")
    BookingPolicy.objects.create(doctor=d, min_notice_minutes=90)

    ap = _appointment(d, p, "P headache")
    ax = _appointment(d, x, "X secret reason")
    az = _appointment(e, z, "Z secret reason")
    Review.objects.create(appointment=ap, doctor=d, patient=p, rating=5, text="P liked it")
    Review.objects.create(
        appointment=ax, doctor=d, patient=x, rating=1, text="X hidden text", hidden=True
    )
    Review.objects.create(appointment=az, doctor=e, patient=z, rating=3, text="Z review text")

    p_file = _file(p, "P blood test")
    x_file = _file(x, "X secret file")
    z_file = _file(z, "Z secret file")
    AccessGrant.objects.create(record=p_file, doctor=d.user, granted_by=p)
    AccessGrant.objects.create(record=x_file, doctor=d.user, granted_by=x)
    AccessGrant.objects.create(record=z_file, doctor=e.user, granted_by=z)
    BreakGlassAccess.objects.create(
        staff=staff, patient=p, reason="P unconscious", expires_at=timezone.now()
    )
    BreakGlassAccess.objects.create(
        staff=staff, patient=z, reason="Z emergency", expires_at=timezone.now()
    )

    conversation = _chat(
        p, d.user, [(p, "P asks a question"), (d.user, "D answers")], attachments=[str(p_file.pk)]
    )
    _chat(x, d.user, [(x, "X chat secret")])
    _chat(z, e.user, [(z, "Z chat secret")])

    for user, title in ((p, "P notified"), (d.user, "D notified"), (x, "X notified"), (z, "Z n")):
        _notify(user, title)
    DeliveryPreference.objects.create(user=p, kind="booking.confirmed", channels=["sms"])

    # Others acting on P's data, and on X's and Z's (which P must not see).
    records_audit(d.user, "records.viewed", p_file, Origin(ip="10.1.1.1", user_agent="Dr-UA"))
    records_audit(d.user, "records.viewed", x_file, Origin(ip="10.1.1.2"))
    records_audit(
        d.user,
        "records.listed",
        None,
        Origin(),
        patient_id="",
        record_ids=[str(p_file.pk), str(x_file.pk)],
    )
    records_audit(
        d.user, "records.listed", None, Origin(), patient_id="", record_ids=[str(x_file.pk)]
    )
    records_audit(e.user, "records.listed", None, Origin(), patient_id=str(z.pk), record_ids=[])
    records_audit(
        staff,
        "records.break_glass",
        None,
        Origin(ip="10.2.2.2"),
        patient_id=str(p.pk),
        reason="P unconscious",
        minutes=30,
    )
    audit_record(
        action="chat.break_glass_read",
        actor_id=staff.pk,
        actor_role="admin",
        target_type="conversation",
        target_id=str(conversation.pk),
        data={"patient_id": str(p.pk), "doctor_id": str(d.user.pk), "reason": "abuse"},
    )
    audit_record(
        action="doctor.verified",
        actor_id=staff.pk,
        actor_role="admin",
        target_type="doctor",
        target_id=str(d.pk),
        data={"reason": "papers ok"},
    )
    audit_record(
        action="doctor.verified",
        actor_id=staff.pk,
        actor_role="admin",
        target_type="doctor",
        target_id=str(e.pk),
        data={"reason": "E papers"},
    )
    audit_record(action="auth.login_failed", target_type="user", target_id=str(p.pk), ip="10.3.3.3")
    audit_record(
        action="auth.login",
        actor_id=x.pk,
        actor_role="patient",
        target_type="user",
        target_id=str(x.pk),
        ip="10.4.4.4",
    )
    return {
        "patient": p,
        "doctor": d,
        "other_patient": x,
        "outsider_doctor": e,
        "outsider_patient": z,
        "staff": staff,
        "conversation": conversation,
        "p_file": p_file,
        "x_file": x_file,
    }


def _export(api: Any, user: User) -> tuple[dict[str, Any], str]:
    r = api.get("/api/v1/me/export", headers=bearer(login(api, user.email)["access"]))
    assert r.status_code == 200
    return r.json(), r.content.decode()


def _absent(text: str, *needles: Any) -> None:
    for needle in needles:
        assert str(needle) not in text, needle


def test_a_patient_export_has_every_section_and_nothing_of_a_third_person(api, world):
    p, d, x = world["patient"], world["doctor"], world["other_patient"]
    data, text = _export(api, p)

    assert data["doctor"] is None
    (appointment,) = data["bookings"]["appointments"]
    assert (appointment["doctor_name"], appointment["patient_id"], appointment["reason"]) == (
        "Dina Doctor",
        str(p.pk),
        "P headache",
    )
    assert [h["status"] for h in appointment["history"]] == ["confirmed", "completed"]
    assert appointment["history"][1]["reason"] == "paid"
    assert [r["text"] for r in data["bookings"]["reviews_written"]] == ["P liked it"]
    assert data["bookings"]["reviews_received"] == []

    (conversation,) = data["chat"]["conversations"]
    assert conversation["doctor"] == {"id": str(d.user.pk), "name": "Dina Doctor"}
    assert [m["text"] for m in conversation["messages"]] == ["P asks a question", "D answers"]
    assert conversation["messages"][0]["attachments"] == [str(world["p_file"].pk)]

    (file,) = data["records"]["files"]
    assert (file["title"], file["notes"], file["file_name"]) == (
        "P blood test",
        "notes of P blood test",
        "P blood test.pdf",
    )
    assert "storage_key" not in file
    assert [(g["record_id"], g["doctor_id"]) for g in data["records"]["grants"]] == [
        (str(world["p_file"].pk), str(d.user.pk))
    ]
    (access,) = data["records"]["break_glass"]
    assert (access["staff_id"], access["reason"]) == (str(world["staff"].pk), "P unconscious")

    assert [n["title"] for n in data["realtime"]["notifications"]] == ["P notified"]
    prefs = {i["kind"]: i["channels"] for i in data["realtime"]["delivery_preferences"]}
    assert prefs["booking.confirmed"] == ["sms"]

    assert {e["action"] for e in data["activity"]} >= {"auth.login"}
    log = {(e["action"], e["actor_id"]) for e in data["access_log"]}
    assert log == {
        ("records.viewed", str(d.user.pk)),
        ("records.listed", str(d.user.pk)),
        ("records.break_glass", str(world["staff"].pk)),
        ("chat.break_glass_read", str(world["staff"].pk)),
        ("auth.login_failed", None),
    }
    (listed,) = [e for e in data["access_log"] if e["action"] == "records.listed"]
    assert listed["data"]["record_ids"] == [str(world["p_file"].pk)]  # not X's file
    assert not any(data["truncated"].values())

    # Nothing of X (D's other patient) nor of Z and E; no one else's address or device.
    _absent(text, x.pk, x.phone, x.email, "Xena", "X secret", "X hidden", "X chat", "X notified")
    _absent(text, world["x_file"].pk, world["outsider_patient"].pk, "Zaki", "Z secret", "Z chat")
    _absent(text, world["outsider_doctor"].pk, "Ehab", "E papers", "Dr-UA", "10.1.1.1", "10.2.2.2")
    _absent(text, d.user.email, world["staff"].email, "Sara")


def test_a_doctor_export_has_their_practice_and_nothing_of_an_outsider(api, world):
    p, d, x = world["patient"], world["doctor"], world["other_patient"]
    data, text = _export(api, d.user)

    profile = data["doctor"]["profile"]
    assert (profile["id"], profile["name"], profile["fee"]) == (
        str(d.pk),
        "Dina Doctor",
        {"amount": "250.50", "currency": "EGP"},
    )
    assert [s["code"] for s in profile["specialties"]] == ["cardiology"]
    assert [c["id"] for c in data["doctor"]["clinics"]] == [str(d.clinics.get().pk)]
    assert data["doctor"]["booking_policy"]["min_notice_minutes"] == 90
    for key in ("availability_rules", "extra_hours", "time_off"):
        assert data["doctor"][key] == []

    appointments = data["bookings"]["appointments"]
    assert {(a["patient_name"], a["reason"]) for a in appointments} == {
        ("Pia Patient", "P headache"),
        ("Xena Other", "X secret reason"),
    }
    assert data["bookings"]["reviews_written"] == []
    (review,) = data["bookings"]["reviews_received"]  # X's hidden review: not shown to D
    assert review["text"] == "P liked it" and "patient_id" not in review

    texts = {m["text"] for c in data["chat"]["conversations"] for m in c["messages"]}
    assert texts == {"P asks a question", "D answers", "X chat secret"}
    assert data["records"]["files"] == []
    assert {(g["patient_id"], g["doctor_id"]) for g in data["records"]["grants"]} == {
        (str(p.pk), str(d.user.pk)),
        (str(x.pk), str(d.user.pk)),
    }
    assert data["records"]["break_glass"] == []
    assert [n["title"] for n in data["realtime"]["notifications"]] == ["D notified"]
    assert {e["action"] for e in data["activity"]} >= {"records.viewed", "records.listed"}
    assert {(e["action"], e["target_type"]) for e in data["access_log"]} == {
        ("doctor.verified", "doctor"),
        ("chat.break_glass_read", "conversation"),
    }

    # Neither the patients' files nor anything of the outsiders; no contact details.
    _absent(text, "P blood test", "X secret file", "X hidden text", p.email, p.phone, x.phone)
    _absent(text, world["outsider_patient"].pk, "Zaki", "Z secret", "Z chat", "Z review")
    _absent(text, world["outsider_doctor"].pk, "Ehab", "E papers", "P unconscious")


@pytest.mark.parametrize("subject", ["patient", "doctor"])
def test_the_export_takes_a_fixed_number_of_queries_whatever_the_rows(world, subject):
    user = world[subject] if subject == "patient" else world[subject].user

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            json.dumps(selectors.user_export(user=User.objects.get(pk=user.pk)))
        return len(ctx.captured_queries)

    _add_rows(world)
    few = queries()
    for _ in range(3):
        _add_rows(world)
    assert queries() == few
    assert few <= 25  # 19 (patient) or 24 (doctor), and the user read here


def test_a_list_past_the_bound_is_cut_and_said_to_be(world, monkeypatch):
    p = world["patient"]
    for _ in range(2):
        _add_rows(world)
    monkeypatch.setattr(selectors, "EXPORT_MAX_ROWS", 2)
    data = selectors.user_export(user=p)
    assert data["row_limit"] == 2
    assert len(data["realtime"]["notifications"]) == 2
    assert len(data["bookings"]["appointments"]) == 2
    assert data["truncated"]["realtime.notifications"] is True
    assert data["truncated"]["bookings.appointments"] is True
    assert data["truncated"]["chat.conversations"] is False
    assert data["truncated"]["access_log"] is True
