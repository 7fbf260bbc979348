"""The REST root: one NinjaAPI at /api/v1/, one router per app."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import NinjaAPI, Schema
from ninja.parser import Parser

from accounts.api import router as accounts_router
from bookings.api import router as bookings_router
from chat.api import router as chat_router
from core.errors import InvalidRequest
from core.text import refuse_unstorable_text
from doctors.api import router as doctors_router
from payments.api import router as payments_router
from realtime.api import router as realtime_router
from records.api import router as records_router
from telemed import errors

VERSION = "0.1.0"


class ApiParser(Parser):
    """Every JSON body of this API is an object (``[null, null]`` is refused, not coerced),
    and no text, in a body or a query string, may contain NUL."""

    def parse_body(self, request: HttpRequest) -> dict:
        data = super().parse_body(request)
        if not isinstance(data, dict):
            raise InvalidRequest(fields={"body": _("The request body must be a JSON object.")})
        refuse_unstorable_text(data)
        return data

    def parse_querydict(self, data: Any, list_fields: list[str], request: HttpRequest) -> dict:
        result = super().parse_querydict(data, list_fields, request)
        refuse_unstorable_text(result)
        return result


class ErrorBody(Schema):
    code: str
    message: str
    fields: dict[str, str]


class ErrorEnvelope(Schema):
    error: ErrorBody


class TelemedAPI(NinjaAPI):
    """Documents the one error envelope on every operation: any 4xx answer (bad input,
    authentication, permission, missing object, rate limit) has the same shape."""

    def get_openapi_schema(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        schema = super().get_openapi_schema(*args, **kwargs)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["ErrorEnvelope"] = ErrorEnvelope.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components["ErrorBody"] = components["ErrorEnvelope"].pop("$defs")["ErrorBody"]
        error = {
            "description": "Error (the envelope; `message` in the request's language)",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}
            },
        }
        for operations in schema["paths"].values():
            for operation in operations.values():
                operation["responses"].setdefault("4XX", error)
        return schema


api = TelemedAPI(
    title="Telemed API",
    version=VERSION,
    description=(
        "REST API of the telemedicine server. Every error uses one envelope: "
        '`{"error": {"code", "message", "fields"}}`, with the message in the language of '
        "`Accept-Language` (English or Arabic).\n\n"
        "Accounts (sign-up, login by password or by e-mail/SMS code, Google sign-in, tokens "
        "and their refresh) are allauth's headless API under `/_allauth/app/v1/`, documented "
        "in its own OpenAPI spec: [/_allauth/openapi.html](/_allauth/openapi.html) "
        "([JSON](/_allauth/openapi.json)). Send the access token it returns as "
        "`Authorization: Bearer <token>`."
    ),
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
    parser=ApiParser(),
)
errors.install(api)


class InfoOut(Schema):
    service: str
    version: str
    languages: list[str]


@api.get("/info", response=InfoOut, tags=["meta"], summary="Service name, version and languages")
def info(request: HttpRequest) -> dict:
    return {
        "service": "telemed",
        "version": VERSION,
        "languages": [code for code, _ in settings.LANGUAGES],
    }


api.add_router("/", accounts_router)
api.add_router("/", doctors_router)
api.add_router("/", bookings_router)
api.add_router("/", payments_router)
api.add_router("/", chat_router)
api.add_router("/", records_router)
api.add_router("/", realtime_router)
