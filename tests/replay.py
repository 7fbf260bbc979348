"""Idempotency-Key checks shared by the tests of creating endpoints (DESIGN: Contracts)."""

from __future__ import annotations

from typing import Any

MISMATCH = "request.idempotency_mismatch"


def post_keyed(api: Any, path: str, body: dict[str, Any], headers: dict[str, str], key: str) -> Any:
    return api.post(
        path, body, content_type="application/json", headers={**headers, "Idempotency-Key": key}
    )


def replayed_once(api: Any, path: str, body: dict, other: dict, headers: dict, key: str) -> Any:
    """The answer to ``body`` sent twice under ``key`` (asserted equal), after ``other``
    under the same key was refused 422 ``request.idempotency_mismatch``."""
    first = post_keyed(api, path, body, headers, key)
    assert first.status_code == 201, first.json()
    again = post_keyed(api, path, body, headers, key)
    assert (again.status_code, again.json()) == (201, first.json())
    refused = post_keyed(api, path, other, headers, key)
    assert refused.status_code == 422, refused.json()
    assert refused.json()["error"]["code"] == MISMATCH
    return first.json()
