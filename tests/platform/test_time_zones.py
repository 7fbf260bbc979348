"""Time zones are the IANA zones of places: not the host's own ("localtime", a link to
/etc/localtime: slot instants would depend on the machine that computes them), nor the
placeholders ("Factory", "posixrules")."""

from __future__ import annotations

import pytest

from core.schemas import TIME_ZONES
from tests.factories import bearer, login, make_user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("zone", ["localtime", "Factory", "posixrules"])
def test_the_hosts_own_zone_and_placeholders_are_refused(api, zone):
    user = make_user()
    headers = {**bearer(login(api, user.email)["access"]), "Accept-Language": "ar"}
    r = api.patch(
        "/api/v1/me", {"time_zone": zone}, content_type="application/json", headers=headers
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid"
    assert "Unknown time zone." not in str(r.json())  # in the request's language
    user.refresh_from_db()
    assert user.time_zone != zone
    assert zone not in TIME_ZONES  # nor offered in the OpenAPI enum


def test_a_zone_of_a_place_is_taken(api):
    user = make_user()
    headers = bearer(login(api, user.email)["access"])
    r = api.patch(
        "/api/v1/me", {"time_zone": "Asia/Riyadh"}, content_type="application/json", headers=headers
    )
    assert r.status_code == 200 and r.json()["time_zone"] == "Asia/Riyadh"
