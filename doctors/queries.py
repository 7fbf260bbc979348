"""The two statements of a nearby search by specialty, written for PostgreSQL by hand.

Through the ORM the search took four queries and ~4 ms of CPU in this process, most of it
building the queries and model rows, not waiting for PostgreSQL: the candidate clinics
(~100 rows) and a page of cards (profiles, users, specialties, clinics). Here they are two
statements with constant text (the cells travel as one array parameter), returning plain
rows, ids as text. :mod:`doctors.selectors` uses them on PostgreSQL and the ORM elsewhere
(SQLite); the tests hold the two to the same answers.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import connection

from accounts.models import Role
from doctors import geo
from doctors.models import Verification

_ENTRIES = """
SELECT e.doctor_id::text, e.latitude, e.longitude
FROM doctors_directoryentry e
WHERE e.listed
  AND e.specialty_id = (SELECT s.id FROM doctors_specialty s WHERE s.code = %s)
  AND e.{column} = ANY(%s::bigint[])
"""

# The card columns, in the order of selectors.CARD_COLUMNS, then the specialties
# [[code, name_en, name_ar]] by code and the clinics [[CARD_CLINIC_FIELDS...]] by name and id.
_CARDS = """
SELECT p.id::text, u.first_name, u.last_name, p.designation, p.bio_en, p.bio_ar, p.languages,
       p.fee_minor, p.currency, p.offers_in_person, p.offers_video, p.offers_chat,
       p.years_experience, p.rating_sum, p.rating_count,
       (SELECT json_agg(json_build_array(s.code, s.name_en, s.name_ar) ORDER BY s.code)
          FROM doctors_doctorprofile_specialties ps
          JOIN doctors_specialty s ON s.id = ps.specialty_id
         WHERE ps.doctorprofile_id = p.id)::text,
       (SELECT json_agg(json_build_array(c.id, c.name, c.address, c.city, c.country,
                                         c.latitude, c.longitude, c.time_zone)
                        ORDER BY c.name, c.id)
          FROM doctors_clinic c
         WHERE c.doctor_id = p.id)::text
FROM doctors_doctorprofile p
JOIN accounts_user u ON u.id = p.user_id
WHERE p.id = ANY(%s::uuid[])
"""
# The listing rule (doctors.index.listing_q), for the public cards.
_LISTED = " AND p.verification = %s AND u.is_active AND u.role = %s"


def entries(*, specialty: str, resolution: int, cells: list[int]) -> list[tuple[str, float, float]]:
    """``(doctor id, latitude, longitude)`` of the listed directory entries of a specialty in
    these cells: one read of the partial covering index, no join."""
    sql = _ENTRIES.format(column=geo.column_for(resolution))
    with connection.cursor() as cursor:
        cursor.execute(sql, [specialty, cells])
        return cursor.fetchall()


def card_rows(ids: list[str], *, listed_only: bool = False) -> list[tuple[Any, ...]]:
    """The card columns of these doctors (any order; only the listed ones if
    ``listed_only``), their specialties and their clinics decoded from the JSON PostgreSQL
    built. Floats keep every bit: PostgreSQL writes them in their shortest exact form
    (``extra_float_digits`` 1, its default)."""
    with connection.cursor() as cursor:
        if listed_only:
            cursor.execute(_CARDS + _LISTED, [ids, Verification.VERIFIED, Role.DOCTOR])
        else:
            cursor.execute(_CARDS, [ids])
        rows = cursor.fetchall()
    return [
        (*row[:-2], json.loads(row[-2]) if row[-2] else [], json.loads(row[-1]) if row[-1] else [])
        for row in rows
    ]
