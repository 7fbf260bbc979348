from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from bookings import calendar


@require_safe  # calendar apps may ask HEAD before GET
def calendar_feed(request: HttpRequest, token: str) -> HttpResponse:
    """The secret-URL feed calendar apps poll. The token is the credential (apps cannot send
    headers); it is never logged (the access log names the route, not the path, and the
    other loggers' records are redacted: ``core.logs``)."""
    user = calendar.feed_owner(token)
    if user is None:
        raise Http404
    response = HttpResponse(
        # a calendar app sends no language (or its device's): the feed speaks its owner's
        calendar.render(calendar.feed_appointments(user), viewer=user, language=user.language),
        content_type="text/calendar; charset=utf-8",
    )
    response["Cache-Control"] = "private, max-age=300"
    return response
