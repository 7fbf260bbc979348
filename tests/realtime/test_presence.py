"""Presence: shared only between users in care together, several devices per user,
recovered by the next heartbeat after Redis loses it."""

from __future__ import annotations

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
        "items": [{"user_id": str(patient.pk), "online": True}]
    }
    await phone.disconnect()  # the last device
    offline = await receive_type(doctor_ws, "presence.changed")
    assert offline["data"] == {"user_id": str(patient.pk), "online": False}
    assert await stranger_ws.receive_nothing(timeout=0.5)
    await doctor_ws.disconnect()
    await stranger_ws.disconnect()


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
