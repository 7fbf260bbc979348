"""JSON answers built without a pydantic round trip, for the few public endpoints that return
long lists (slot lists, directory pages). Ninja validates a response object by object through
its Django getter, which costs more than computing those lists; these endpoints build plain
dicts of exactly their documented schema instead (their tests compare each answer with the
schema), and keep ``response=`` for the OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse


def dumps(data: Any) -> str:
    """The JSON text Ninja would send for ``data`` (Django's encoder: ISO dates, UUIDs)."""
    return json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False)


def json_response(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(dumps(data), status=status, content_type="application/json")
