"""Cursors: signed for one list, checked against the field they page by."""

import pytest
from django.core import signing

from core.pagination import InvalidCursor, decode_cursor, encode_cursor, paginate
from doctors.models import DoctorProfile
from tests.doctors.factories import doctor

pytestmark = pytest.mark.django_db


def test_a_cursor_of_one_list_is_refused_by_another(api):
    first = doctor()
    doctor()
    r = api.get("/api/v1/doctors?limit=1")
    assert r.status_code == 200
    search_cursor = r.json()["next"]
    assert search_cursor
    # valid in its own list
    assert api.get(f"/api/v1/doctors?limit=1&cursor={search_cursor}").status_code == 200
    # replayed into a list paged by a date: 400, never a 500
    r = api.get(f"/api/v1/doctors/{first.id}/reviews?cursor={search_cursor}")
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "request.invalid_cursor"
    r = api.get(
        f"/api/v1/doctors/{first.id}/reviews?cursor={search_cursor}",
        headers={"Accept-Language": "ar"},
    )
    assert "\u0600" <= r.json()["error"]["message"][0] <= "\u06ff"


def test_a_cursor_signed_for_the_list_but_holding_a_wrong_value_is_refused():
    doctor()
    qs = DoctorProfile.objects.all()
    scope = "doctors.doctorprofile.updated_at"
    for values in ([20, "x"], ["not a date", "x"], ["2026-01-01T00:00:00+00:00", "not-a-uuid"]):
        with pytest.raises(InvalidCursor):
            paginate(qs, field="updated_at", cursor=encode_cursor(values, scope=scope), limit=5)


def test_scopes_do_not_mix():
    cursor = encode_cursor([3, ""], scope="doctors.search")
    assert decode_cursor(cursor, scope="doctors.search") == [3, ""]
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, scope="chat.messages")
    # the cursors of the previous release (one salt for every list) are refused, not misread
    old = signing.dumps([3, ""], salt="core.pagination", compress=True)
    with pytest.raises(InvalidCursor):
        decode_cursor(old, scope="doctors.search")


@pytest.mark.parametrize(
    "path", ["/api/v1/doctors", "/api/v1/doctors/{id}/reviews", "/api/v1/appointments"]
)
def test_a_cursor_too_long_to_be_ours_is_a_bad_cursor_not_a_bad_request(api, path):
    from tests.factories import bearer, login, make_user

    headers = bearer(login(api, make_user().email)["access"])
    r = api.get(path.format(id=doctor().id), {"cursor": "x" * 5000}, headers=headers)
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "request.invalid_cursor"


def test_a_bad_cursor_beside_other_bad_fields_names_them_all(api):
    r = api.get("/api/v1/doctors", {"cursor": "x" * 5000, "limit": -1})
    assert r.status_code == 422
    assert set(r.json()["error"]["fields"]) >= {"limit", "cursor"}


def test_the_language_asked_for_is_read_as_localemiddleware_reads_it():
    from core.languages import asked_language

    assert asked_language("fr, ar;q=0.5") == "ar"
    assert asked_language("en;q=0.1, ar") == "ar"
    assert asked_language("fr, *, ar") is None  # anything from "*" on: not Arabic
    assert asked_language("") is None and asked_language("de") is None
