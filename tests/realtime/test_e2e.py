"""End to end: real ``websockets`` clients against running Daphne processes, bookings made
over REST, events through the Redis channel layer."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests import procs
from tests.bookings.conftest import next_slot
from tests.factories import AUTH, PASSWORD, bearer, make_user
from tests.realtime.conftest import ws_open, ws_receive_type

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def server_login(http: httpx.Client, email: str) -> str:
    r = http.post(f"{AUTH}/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()["meta"]["access_token"]


def server_ticket(http: httpx.Client, token: str) -> str:
    r = http.post("/api/v1/realtime/ticket", headers=bearer(token))
    assert r.status_code == 201, r.text
    return r.json()["ticket"]


def server_book(http: httpx.Client, token: str, doctor, start) -> dict:
    r = http.post(
        "/api/v1/appointments",
        json={"doctor_id": str(doctor.id), "start": start.isoformat(), "mode": "in_person"},
        headers=bearer(token),
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_doctor_socket_gets_the_booking_alert_in_arabic_and_the_inbox_has_it(
    live_server_proc, doctor_with_hours
):
    doctor = doctor_with_hours
    doctor.user.language = "ar"
    doctor.user.save()
    patient = make_user(first_name="Mona", last_name="Aziz")
    start = next_slot()

    async def go():
        with httpx.Client(base_url=live_server_proc.info["base"], timeout=10) as http:
            doctor_token = server_login(http, doctor.user.email)
            ws = await ws_open(live_server_proc.info["ws"], server_ticket(http, doctor_token))
            try:
                booked = server_book(http, server_login(http, patient.email), doctor, start)
                event = await ws_receive_type(ws, "booking.created")
            finally:
                await ws.close()
            inbox = http.get("/api/v1/notifications", headers=bearer(doctor_token)).json()
        return booked, event, inbox

    booked, event, inbox = asyncio.run(go())
    assert event["data"]["appointment_id"] == booked["id"]
    assert event["data"]["status"] == "confirmed"
    assert event["data"]["title"] == "موعد جديد"
    assert event["data"]["body"].startswith("حجز Mona Aziz موعدًا في ")
    assert isinstance(event["id"], int)
    [item] = inbox["items"]
    assert item["id"] == event["id"]
    assert item["kind"] == "booking.created"
    assert item["title"] == "موعد جديد"
    assert item["read_at"] is None


def test_three_events_missed_while_away_are_replayed_in_order_by_resume(
    live_server_proc, doctor_with_hours
):
    patient = make_user()
    starts = [next_slot(hour=h) for h in (9, 10, 11)]

    async def go():
        with httpx.Client(base_url=live_server_proc.info["base"], timeout=10) as http:
            token = server_login(http, patient.email)
            ws = await ws_open(live_server_proc.info["ws"], server_ticket(http, token))
            server_book(http, token, doctor_with_hours, next_slot(days=4))
            seen = (await ws_receive_type(ws, "booking.created"))["id"]
            await ws.close()  # away
            booked = [server_book(http, token, doctor_with_hours, s)["id"] for s in starts]
            ws = await ws_open(live_server_proc.info["ws"], server_ticket(http, token))
            await ws.send(json.dumps({"type": "resume", "after": seen}))
            replayed = []
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if event["type"] == "resume.done":
                    break
                replayed.append(event)
            with pytest.raises(asyncio.TimeoutError):  # and nothing after it
                await asyncio.wait_for(ws.recv(), 1)
            await ws.close()
        return seen, booked, replayed, event

    seen, booked, replayed, done = asyncio.run(go())
    assert [e["type"] for e in replayed] == ["booking.created"] * 3
    assert [e["data"]["appointment_id"] for e in replayed] == booked
    assert [e["id"] for e in replayed] == [seen + 1, seen + 2, seen + 3]
    assert done["data"] == {"last": seen + 3, "more": False}


def test_an_event_raised_through_one_server_reaches_a_socket_on_the_other(
    live_server_proc, server_env, workdir, doctor_with_hours
):
    patient = make_user()
    with procs.running(procs.start_server(workdir, server_env)) as other:

        async def go():
            with (
                httpx.Client(base_url=live_server_proc.info["base"], timeout=10) as http_a,
                httpx.Client(base_url=other.info["base"], timeout=10) as http_b,
            ):
                doctor_token = server_login(http_b, doctor_with_hours.user.email)
                ws = await ws_open(other.info["ws"], server_ticket(http_b, doctor_token))
                try:
                    token = server_login(http_a, patient.email)
                    booked = server_book(http_a, token, doctor_with_hours, next_slot())
                    event = await ws_receive_type(ws, "booking.created")
                finally:
                    await ws.close()
            return booked, event

        booked, event = asyncio.run(go())
    assert other.info["port"] != live_server_proc.info["port"]
    assert event["data"]["appointment_id"] == booked["id"]


def test_uvicorn_never_logs_the_ticket(server_env, workdir):
    user = make_user()
    with procs.running(procs.start_server(workdir, server_env, kind="uvicorn")) as server:

        async def go():
            with httpx.Client(base_url=server.info["base"], timeout=10) as http:
                ticket = server_ticket(http, server_login(http, user.email))
            ws = await ws_open(server.info["ws"], ticket)
            await ws.send(json.dumps({"type": "resume", "after": 0}))
            done = await ws_receive_type(ws, "resume.done")
            await ws.close()
            return ticket, done

        ticket, done = asyncio.run(go())
        server.stop()
        log = server.output()
    assert done["type"] == "resume.done"
    # Through our JSON handler, whose redaction takes the whole query string.
    assert "WebSocket /ws/v1/?[redacted]" in log
    assert ticket not in log
