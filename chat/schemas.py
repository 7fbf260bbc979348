from __future__ import annotations

from datetime import datetime
from uuid import UUID

from ninja import Field, Schema

from chat.models import MAX_ATTACHMENTS
from core.schemas import InputSchema


class ConversationIn(InputSchema):
    with_id: UUID = Field(..., description="The doctor (for a patient) or patient (for a doctor)")


class MessageIn(InputSchema):
    client_id: str = Field(
        ..., min_length=1, max_length=64, description="The sender's id for de-duplication"
    )
    text: str = Field("", description="Plain text, 1 to 4,000 characters (never rendered as HTML)")
    attachments: list[UUID] = Field(
        default_factory=list,
        max_length=MAX_ATTACHMENTS,
        description="Ids of clean medical records of the patient that the doctor may see",
    )


class MessageEditIn(InputSchema):
    text: str


class ReadIn(InputSchema):
    seq: int = Field(..., ge=0, description="Read up to this sequence number")


class BreakGlassIn(InputSchema):
    reason: str = Field(..., min_length=1, max_length=1000)
    before_seq: int | None = Field(None, ge=1)
    limit: int = Field(50, ge=1, le=200)


class Person(Schema):
    id: UUID
    name: str


class MessageOut(Schema):
    conversation_id: UUID
    seq: int
    client_id: str
    sender_id: UUID
    text: str
    attachments: list[UUID]
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    rev: int = Field(
        ..., description="The conversation's rev of its last edit or deletion (0: never changed)"
    )


class ConversationOut(Schema):
    id: UUID
    patient: Person
    doctor: Person
    closed: bool
    closed_at: datetime | None
    created_at: datetime
    last_activity_at: datetime
    last_seq: int
    rev: int = Field(
        ..., description="Counts the edits, deletions, closes and reopens (for a socket resume)"
    )
    read_seq: int = Field(..., description="The caller's read marker")
    other_read_seq: int = Field(..., description="The other participant's read marker")
    unread: int = Field(..., description="Messages from the other side after the caller's marker")
    last_message: MessageOut | None
    other_online: bool | None = Field(
        None,
        description="In the list: whether the other side has an open socket (null when you "
        "are no longer in care together, when presence is unavailable, or outside the list)",
    )


class ConversationPage(Schema):
    items: list[ConversationOut]
    next: str | None
    unread_total: int


class MessagePage(Schema):
    items: list[MessageOut]
    next: str | None


class ReadOut(Schema):
    conversation_id: UUID
    user_id: UUID
    seq: int
    unread: int
