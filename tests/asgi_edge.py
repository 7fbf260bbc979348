"""Requests straight to the ASGI application behind our body limit (``core.bodylimit``), as
a server would hand them over: chunk by chunk, counting how many chunks were read."""

from __future__ import annotations

import asyncio

from django.core.asgi import get_asgi_application

from core.bodylimit import BodyLimitMiddleware


def scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }


async def call(scope: dict, chunks: list[bytes]) -> tuple[int, bytes, int]:
    app = BodyLimitMiddleware(get_asgi_application())
    sent: list[dict] = []
    read = 0

    async def receive() -> dict:
        nonlocal read
        if read < len(chunks):
            read += 1
            more = read < len(chunks)
            return {"type": "http.request", "body": chunks[read - 1], "more_body": more}
        await asyncio.Future()  # the client waits for the answer (Django listens for a disconnect)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), read
