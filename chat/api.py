"""Chat over REST: conversations, messages (history both ways, send, edit, delete), read
markers, closing, and the staff break-glass read. Socket handlers call the same services."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from ninja import Field, Query, Router, Schema, Status

from accounts.auth import AuthedRequest, jwt_auth
from audit.services import client_ip
from chat import selectors, services
from chat.schemas import (
    BreakGlassIn,
    ConversationIn,
    ConversationOut,
    ConversationPage,
    MessageEditIn,
    MessageIn,
    MessageOut,
    MessagePage,
    ReadIn,
    ReadOut,
)

router = Router(tags=["chat"])


class ListQuery(Schema):
    cursor: str | None = Field(None, max_length=500)
    limit: int = Field(20, ge=1, le=100)


class HistoryQuery(Schema):
    cursor: str | None = Field(None, max_length=500, description="`next` of the previous page")
    before_seq: int | None = Field(None, ge=1, description="Older messages than this one")
    after_seq: int | None = Field(None, ge=0, description="Newer messages than this one")
    limit: int = Field(50, ge=1, le=200)


@router.get("/conversations", response=ConversationPage, auth=jwt_auth, summary="My chats")
def conversation_list(request: AuthedRequest, q: Query[ListQuery]) -> dict[str, Any]:
    items, next_cursor = selectors.conversation_list(
        viewer=request.auth, cursor=q.cursor, limit=q.limit
    )
    return {
        "items": items,
        "next": next_cursor,
        "unread_total": selectors.unread_total(request.auth.pk),
    }


@router.post(
    "/conversations",
    response={200: ConversationOut, 201: ConversationOut},
    auth=jwt_auth,
    summary="Open (or find) the chat with a doctor or patient I am in care with",
)
def conversation_open(request: AuthedRequest, payload: ConversationIn) -> Status:
    conversation, created = services.conversation_open(user=request.auth, other_id=payload.with_id)
    return Status(
        201 if created else 200, selectors.conversation_data(conversation, viewer=request.auth)
    )


@router.get(
    "/conversations/{conversation_id}/messages",
    response=MessagePage,
    auth=jwt_auth,
    summary="History, in ascending order: latest page, or older/newer by cursor or seq",
)
def message_list(
    request: AuthedRequest, conversation_id: UUID, q: Query[HistoryQuery]
) -> dict[str, Any]:
    conversation = selectors.conversation_for(viewer=request.auth, conversation_id=conversation_id)
    items, next_cursor = selectors.message_page(
        conversation=conversation,
        cursor=q.cursor,
        before_seq=q.before_seq,
        after_seq=q.after_seq,
        limit=q.limit,
    )
    return {"items": items, "next": next_cursor}


@router.post(
    "/conversations/{conversation_id}/messages",
    response={201: MessageOut},
    auth=jwt_auth,
    summary="Send (the same client_id again answers the first acknowledgement)",
)
def message_send(request: AuthedRequest, conversation_id: UUID, payload: MessageIn) -> Status:
    ack = services.message_send(
        user=request.auth,
        conversation_id=conversation_id,
        text=payload.text,
        client_id=payload.client_id,
        attachments=payload.attachments,
    )
    return Status(201, ack)


@router.patch(
    "/conversations/{conversation_id}/messages/{seq}",
    response=MessageOut,
    auth=jwt_auth,
    summary="Edit my message (within the edit window)",
)
def message_edit(
    request: AuthedRequest, conversation_id: UUID, seq: int, payload: MessageEditIn
) -> dict[str, Any]:
    return services.message_edit(
        user=request.auth, conversation_id=conversation_id, seq=seq, text=payload.text
    )


@router.delete(
    "/conversations/{conversation_id}/messages/{seq}",
    response=MessageOut,
    auth=jwt_auth,
    summary="Delete my message (it stays as a tombstone)",
)
def message_delete(request: AuthedRequest, conversation_id: UUID, seq: int) -> dict[str, Any]:
    return services.message_delete(user=request.auth, conversation_id=conversation_id, seq=seq)


@router.post(
    "/conversations/{conversation_id}/read",
    response=ReadOut,
    auth=jwt_auth,
    summary="Mark read up to a sequence number (the marker never moves back)",
)
def read(request: AuthedRequest, conversation_id: UUID, payload: ReadIn) -> dict[str, Any]:
    return services.read_up_to(user=request.auth, conversation_id=conversation_id, seq=payload.seq)


@router.post(
    "/conversations/{conversation_id}/{action}",
    response=ConversationOut,
    auth=jwt_auth,
    summary="Doctors: close or reopen the conversation",
)
def close_or_reopen(
    request: AuthedRequest, conversation_id: UUID, action: Literal["close", "reopen"]
) -> dict[str, Any]:
    change = services.conversation_close if action == "close" else services.conversation_reopen
    return change(user=request.auth, conversation_id=conversation_id)


@router.post(
    "/admin/conversations/{conversation_id}/break-glass",
    response=MessagePage,
    auth=jwt_auth,
    summary="Admins: read a conversation in an emergency, with a reason (audited)",
)
def break_glass(
    request: AuthedRequest, conversation_id: UUID, payload: BreakGlassIn
) -> dict[str, Any]:
    return services.break_glass_read(
        staff=request.auth,
        conversation_id=conversation_id,
        reason=payload.reason,
        before_seq=payload.before_seq,
        limit=payload.limit,
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
    )
