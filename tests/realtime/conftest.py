"""Helpers for the gateway's tests: sockets through Channels' communicator (in process) or a
real ``websockets`` client against a server process."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.models import User
from telemed.asgi import application
from tests.accounts.test_twilio import twilio  # noqa: F401 (a fixture for these tests)
from tests.bookings.conftest import doctor_with_hours  # noqa: F401 (a fixture)
from tests.factories import bearer, login, post


def access_token(user: User) -> str:
    return login(Client(), user.email)["access"]


def ticket_for(user: User, client: Any = None) -> str:
    """A one-time ticket, asked for over REST (``client``: a Django test client, or an
    ``httpx`` client of a server process)."""
    token = access_token(user)
    if client is None:
        r = post(Client(), "/api/v1/realtime/ticket", **bearer(token))
    else:
        r = client.post("/api/v1/realtime/ticket", headers=bearer(token))
    assert r.status_code == 201, r.content
    return r.json()["ticket"]


async def open_socket(user: User, *, settle: float = 0.2) -> WebsocketCommunicator:
    """An authenticated in-process socket (ticket auth), registered with the process's fan-out."""
    ticket = await database_sync_to_async(ticket_for)(user)
    ws = WebsocketCommunicator(application, f"/ws/v1/?ticket={ticket}")
    connected, _ = await ws.connect()
    assert connected
    await asyncio.sleep(settle)  # the socket joins the fan-out registry after accepting
    return ws


async def receive_type(ws: WebsocketCommunicator, kind: str, timeout: float = 5) -> dict:
    """The next event of this type (skipping others, such as presence changes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        event = await ws.receive_json_from(timeout=max(0.01, deadline - loop.time()))
        if event["type"] == kind:
            return event


async def ws_receive_type(ws: Any, kind: str, timeout: float = 10) -> dict:
    """The same for a real ``websockets`` client."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - loop.time())))
        if event["type"] == kind:
            return event


async def ws_open(base_ws: str, ticket: str) -> Any:
    ws = await websockets.connect(f"{base_ws}/ws/v1/?ticket={ticket}")
    await asyncio.sleep(0.3)  # the server registers the socket after accepting
    return ws
