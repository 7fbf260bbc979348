from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema

from core.schemas import InputSchema


class TicketOut(Schema):
    ticket: str
    expires_in: int


class NotificationOut(Schema):
    id: int = Field(..., description="The user's event id (the socket event's `id`)")
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None

    @staticmethod
    def resolve_id(obj: Any) -> int:
        return int(obj.seq)


class NotificationPage(Schema):
    items: list[NotificationOut]
    next: str | None


class NotificationQuery(Schema):
    cursor: str | None = Field(None, max_length=500)
    limit: int = Field(20, ge=1, le=100)
    unread: bool = False


class UnreadOut(Schema):
    counts: dict[str, int] = Field(..., description="Unread counts by counter name")


class ReadAllOut(Schema):
    updated: int


class PreferenceOut(Schema):
    kind: str
    channels: list[str]


class PreferenceList(Schema):
    items: list[PreferenceOut]
    next: str | None = Field(..., description="Always null: one entry per kind, one page")


class PreferenceIn(InputSchema):
    channels: list[Literal["email", "sms", "whatsapp"]] = Field(..., max_length=3)


class PresenceOut(Schema):
    user_id: str
    online: bool


class PresenceList(Schema):
    items: list[PresenceOut]
    next: str | None = Field(..., description="Always null: everyone in care, one page")
