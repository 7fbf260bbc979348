from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from bookings import calendar


@require_GET
def calendar_feed(request: HttpRequest, token: str) -> HttpResponse:
    """The secret-URL feed calendar apps poll. The token is the credential (apps cannot send
    headers); it is never logged (the access log names the route, not the path)."""
    user = calendar.feed_owner(token)
    if user is None:
        raise Http404
    response = HttpResponse(
        calendar.render(calendar.feed_appointments(user), viewer=user),
        content_type="text/calendar; charset=utf-8",
    )
    response["Cache-Control"] = "private, max-age=300"
    return response
