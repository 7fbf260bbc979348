"""Presence: shared only between users in care together, several devices per user,
recovered by the next heartbeat after Redis loses it."""

from __future__ import annotations

import logging

import pytest
import redis
from channels.db import database_sync_to_async
from django.test import Client

from bookings.services import appointment_book
from realtime import presence
from tests.bookings.conftest import next_slot
from tests.factories import bearer, login, make_user
from tests.realtime.conftest import open_socket, receive_type

pytestmark = pytest.mark.django_db(transaction=True)


def in_care(doctor_profile):
    patient = make_user()
    appointment_book(
        patient=patient, doctor_id=doctor_profile.id, start=next_slot(), mode="in_person"
    )
    return patient


async def test_presence_changes_reach_only_those_in_care(doctor_with_hours):
    patient = await database_sync_to_async(in_care)(doctor_with_hours)
    stranger = await database_sync_to_async(make_user)()
    doctor_ws = await open_socket(doctor_with_hours.user)
    stranger_ws = await open_socket(stranger)
    phone = await open_socket(patient)
    assert await receive_type(doctor_ws, "presence.changed") == {
        "type": "presence.changed",
        "data": {"user_id": str(patient.pk), "online": True},
    }
    laptop = await open_socket(patient)  # a second device: no change
    await laptop.disconnect()
    assert await doctor_ws.receive_nothing(timeout=0.5)

    def rest_presence():
        token = login(Client(), doctor_with_hours.user.email)["access"]
        return Client().get("/api/v1/presence", headers=bearer(token)).json()

    assert await database_sync_to_async(rest_presence)() == {
        "items": [{"user_id": str(patient.pk), "online": True}],
        "next": None,
    }
    await phone.disconnect()  # the last device
    offline = await receive_type(doctor_ws, "presence.changed")
    assert offline["data"] == {"user_id": str(patient.pk), "online": False}
    assert await stranger_ws.receive_nothing(timeout=0.5)
    await doctor_ws.disconnect()
    await stranger_ws.disconnect()


async def test_a_device_that_runs_out_without_closing_is_told_offline_once(
    doctor_with_hours, settings
):
    """A device whose process died (its socket never closed) runs out: the sweep of a
    server that is still up tells those in care that the user went offline, once."""
    settings.PRESENCE_TTL_SECONDS = 1
    settings.PRESENCE_SWEEP_SECONDS = 0.2
    patient = await database_sync_to_async(in_care)(doctor_with_hours)
    doctor_ws = await open_socket(doctor_with_hours.user)
    # A heartbeat from a device on another process that then died without a word.
    await database_sync_to_async(presence.heartbeat)(user_id=str(patient.pk), device="dead")
    offline = await receive_type(doctor_ws, "presence.changed", timeout=5)
    assert offline["data"] == {"user_id": str(patient.pk), "online": False}
    assert await doctor_ws.receive_nothing(timeout=1.0)  # told once
    await doctor_ws.disconnect()


async def test_presence_recovers_with_the_next_heartbeat_after_a_redis_flush(
    doctor_with_hours, private_redis, settings
):
    settings.REDIS_URL = private_redis.info["url"]  # presence on a Redis we may flush
    patient = await database_sync_to_async(in_care)(doctor_with_hours)
    doctor_ws = await open_socket(doctor_with_hours.user)
    patient_ws = await open_socket(patient)
    await receive_type(doctor_ws, "presence.changed")
    assert presence.online([patient.pk]) == {str(patient.pk): True}

    redis.Redis.from_url(private_redis.info["url"]).flushall()
    assert presence.online([patient.pk]) == {str(patient.pk): False}

    await patient_ws.send_json_to({"type": "presence.ping"})
    back = await receive_type(doctor_ws, "presence.changed")
    assert back["data"] == {"user_id": str(patient.pk), "online": True}
    assert presence.online([patient.pk]) == {str(patient.pk): True}
    await patient_ws.disconnect()
    await doctor_ws.disconnect()


@pytest.mark.parametrize("backend", ["redis", "memory"])
def test_a_user_whose_last_device_ran_out_is_reported_once(backend, settings, monkeypatch):
    """Devices that stop without closing run out: ``expired`` names their user once (to one
    caller), and only when no device is left; a user who left cleanly (already told) or
    still has a live device is not named."""
    if backend == "memory":
        settings.REDIS_URL = ""
    clock = [1_000_000.0]
    monkeypatch.setattr(presence.time, "time", lambda: clock[0])
    settings.PRESENCE_TTL_SECONDS = 60
    presence.heartbeat(user_id="gone", device="phone")
    presence.heartbeat(user_id="gone", device="laptop")
    presence.heartbeat(user_id="left", device="phone")
    presence.heartbeat(user_id="stays", device="phone")
    clock[0] += 30
    presence.heartbeat(user_id="stays", device="laptop")  # renewed: lives until +90
    assert presence.leave(user_id="left", device="phone") is True  # told by its socket
    assert presence.expired() == []
    clock[0] += 31  # +61: the first heartbeats ran out
    assert sorted(presence.expired()) == ["gone"]
    assert presence.expired() == []
    assert presence.online(["gone", "left", "stays"]) == {
        "gone": False,
        "left": False,
        "stays": True,
    }
    clock[0] += 30  # +91: the renewed device ran out too
    assert presence.expired() == ["stays"]
    assert presence.expired() == []
    # Back online, then gone again: named again.
    presence.heartbeat(user_id="gone", device="phone")
    clock[0] += 61
    assert presence.expired() == ["gone"]


async def test_presence_that_fails_neither_refuses_nor_closes_a_socket(monkeypatch, caplog):
    """Presence is best effort: with its Redis failing, a socket still opens (connecting
    beats), a ``presence.ping`` is no crash, and the failure is logged without the user."""
    user = await database_sync_to_async(make_user)()

    def failing(*, user_id, device):
        raise redis.exceptions.ConnectionError(f"presence:{user_id} unreachable")

    monkeypatch.setattr(presence, "heartbeat", failing)
    with caplog.at_level(logging.WARNING, logger="realtime.consumers"):
        ws = await open_socket(user)
        try:
            await ws.send_json_to({"type": "presence.ping"})
            await ws.send_json_to({"type": "resume", "after": 0})
            done = await receive_type(ws, "resume.done")
            assert done["data"] == {"last": 0, "more": False}
        finally:
            await ws.disconnect()
    failures = [r for r in caplog.records if r.name == "realtime.consumers"]
    assert [r.getMessage() for r in failures] == ["presence heartbeat failed (ConnectionError)"] * 2
    assert str(user.pk) not in caplog.text and user.email not in caplog.text
