"""Spatial index for "doctors near a point", the same on SQLite and PostgreSQL, no GIS.

How a search runs:

1. Each clinic row stores the H3 cell of its location at every resolution in
   :data:`RESOLUTIONS` (``cells_for(lat, lng)``), one indexed ``BigIntegerField`` per
   resolution: ``h3_r3``, ``h3_r5``, ``h3_r7``.
2. A query calls ``covering(lat, lng, radius_km)``, which picks ONE resolution ``r`` and a
   set of cells guaranteed to contain every point within ``radius_km`` of the centre, and
   filters ``h3_r{r} IN (cells)`` in SQL: an index lookup, never a table scan.
3. The candidates go through ``nearest_first(center, candidates, radius_km)``: the exact
   great-circle distance, dropping those beyond the radius, sorted by ``(distance, id)``.

Step 2 may return extra cells (a few more candidates for step 3 to drop) but never misses
one: the index path and a brute-force scan of every clinic return the same ids in the same
order (``tests/doctors/test_geo.py`` checks this as a property).

Why the covering is complete (the proof behind :func:`covering`):

Let ``D`` be the closed spherical disk of radius ``r`` around the centre ``C`` and ``S``
the set of cells (closed regions) that meet ``D``. Every point of ``D`` lies in a cell of
``S``, so it suffices to return a superset of ``S``.

* Lemma 1 (size of a cell). An H3 cell is a polygon whose edges are great-circle arcs
  (hexagons drawn in the gnomonic projection of an icosahedron face, whose straight lines
  are great circles; the boundary of a cell crossing a face edge carries the extra vertex
  where it crosses). Along a great-circle arc the distance to a fixed point has no
  interior maximum, and an interior point of a region can always be moved away from the
  cell centre, so the farthest point of a cell from its centre is one of the vertices that
  ``cell_to_boundary`` returns. This per-cell circumradius ``rho(c)`` is computed exactly
  for every cell we touch (no average edge lengths: cell sizes vary by ~2x and there are
  12 pentagons), then widened by :data:`_RHO_RELATIVE_SLACK` and :data:`_RHO_ABSOLUTE_SLACK_KM`
  for floating-point rounding in H3's own point-to-cell assignment.
  Hence if a cell ``c`` meets ``D`` at a point ``Q``:
  ``d(C, centre(c)) <= d(C, Q) + d(Q, centre(c)) <= r + rho(c)``. The test
  ``d(C, centre(c)) <= r + rho(c)`` therefore accepts every cell of ``S`` (and a few more).
* Lemma 2 (connectivity). ``D`` is connected. If ``S`` split into two parts with no
  adjacent pair between them, the unions of their (closed) cells intersected with ``D``
  would be two non-empty closed sets covering ``D``, so they would share a point ``x``;
  the two cells containing ``x`` touch there. Two H3 cells that touch at all are grid
  neighbours (exactly three cells meet at every true vertex, pairwise sharing an edge,
  pentagons included), a contradiction. So ``S`` is connected in the neighbour graph.
* The algorithm: a breadth-first search from the centre's own cell (which is in ``S``),
  expanding only through neighbours (``grid_disk(c, 1)``) that pass the test of Lemma 1.
  It visits the whole connected component of accepted cells that holds the start, which
  by Lemma 2 contains all of ``S``. Poles, the antimeridian and pentagons need no special
  case: H3's neighbour function and the haversine distance handle them natively.

All H3 cell ids fit a signed 64-bit integer (PostgreSQL ``bigint``, SQLite ``INTEGER``):
bit 63 of an H3 index is reserved and always 0, so every valid cell is ``< 2**63``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from h3.api import basic_int as h3i

__all__ = [
    "EARTH_RADIUS_KM",
    "MAX_COVER_CELLS",
    "MAX_RADIUS_KM",
    "RESOLUTIONS",
    "cells_for",
    "column_for",
    "covering",
    "haversine_km",
    "nearest_first",
]

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG R1), in km. (H3's own ``great_circle_distance`` uses 6371.00718
km; the 1.6 m difference is irrelevant here, and only this module's distance is used.)"""

RESOLUTIONS: tuple[int, ...] = (3, 5, 7)
"""The H3 resolutions stored per clinic, coarsest first (average hexagon edge ~69 km,
~9.9 km and ~1.4 km). Each step of two resolutions divides the cell area by 49. Measured
over random centres (median / max cells): up to ~20 km the search uses r7 (10 km: 78 /
126), up to ~150 km r5 (50 km: 44 / 71; 100 km: 145 / 241), beyond r3 (500 km: 81 / 121).
The cells fetched cover 1.2-1.8x the disk's area for radii from 5 km up."""

MAX_RADIUS_KM = 500.0
"""The largest search radius accepted by :func:`covering`."""

MAX_COVER_CELLS = 500
"""Upper bound on the number of cells :func:`covering` returns (the size of the SQL
``IN (...)`` list; kept far below SQLite's historical limit of 999 bound parameters).
The coarsest resolution always fits at ``MAX_RADIUS_KM`` (at most ~125 cells at r3
measured over every r2 cell centre, the pentagons and the poles), so the bound always holds."""

# Lemma 1 slack: widen each exact circumradius so that floating-point rounding in H3's
# point-to-cell assignment (a point on or next to a shared edge may land in either cell)
# and in our haversine can never reject a cell that holds a point of the disk. 0.1% + 1 m
# is orders of magnitude above double-precision error and adds only a few cells.
_RHO_RELATIVE_SLACK = 1e-3
_RHO_ABSOLUTE_SLACK_KM = 1e-3

# An upper bound on the area of any cell relative to the average hexagon area at its
# resolution (enumerating every r2, r3 and r4 cell, and sampling r5 and r7, gives a
# maximum of 1.207; pentagons are smaller). Only used to skip, without a search, the
# resolutions whose covering cannot fit: a disk of area A meets at least A / max_area
# cells. Being wrong here would cost speed or pick a coarser resolution, never correctness.
_MAX_AREA_FACTOR = 1.25


class _SupportsLessThan(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_SupportsLessThan)


def _haversine_angle(phi1: float, phi2: float, dlambda: float) -> float:
    """Central angle (radians) by the haversine in its ``atan2`` form, clamped to [0, 1]
    (the clamp lets NaN through: a NaN input gives a NaN angle)."""
    sin_dphi = math.sin((phi2 - phi1) / 2.0)
    sin_dlambda = math.sin(dlambda / 2.0)
    a = sin_dphi * sin_dphi + math.cos(phi1) * math.cos(phi2) * sin_dlambda * sin_dlambda
    if a > 1.0:
        a = 1.0
    elif a < 0.0:
        a = 0.0
    return 2.0 * math.atan2(math.sqrt(a), math.sqrt(1.0 - a))


def haversine_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in km between two points given in degrees.

    The haversine in its ``atan2`` form, which keeps full relative precision for tiny
    distances (no ``acos`` of a number near 1). Past a quarter of the circumference the
    haversine itself rounds to 1 and loses the last ~10 cm, so there the distance is
    computed as half the circumference minus the (small, precise) distance to the
    antipode of the second point. Longitude differences are reduced exactly modulo 360,
    so +180 and -180 are the same meridian (distance exactly 0).

    Does not validate its input: a NaN coordinate yields NaN, which compares False with
    every radius.
    """
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    dlng = math.remainder(lng2 - lng1, 360.0)  # exact, in [-180, 180]
    angle = _haversine_angle(phi1, phi2, math.radians(dlng))
    if angle > math.pi / 2.0:
        # The antipode of point 2 is (-lat2, lng2 + 180): its longitude difference from
        # point 1 is 180 - |dlng| in absolute value (written so to stay symmetric).
        antipode = _haversine_angle(phi1, -phi2, math.radians(180.0 - abs(dlng)))
        angle = math.pi - antipode
    return EARTH_RADIUS_KM * angle


def _check_point(lat: float, lng: float) -> None:
    if not (math.isfinite(lat) and math.isfinite(lng)):
        raise ValueError(f"coordinates must be finite numbers, got ({lat!r}, {lng!r})")
    if not -90.0 <= lat <= 90.0:
        raise ValueError(f"latitude must be within [-90, 90], got {lat!r}")
    if not -180.0 <= lng <= 180.0:
        raise ValueError(f"longitude must be within [-180, 180], got {lng!r}")


def _check_radius(radius_km: float) -> None:
    if not math.isfinite(radius_km):
        raise ValueError(f"radius must be a finite number, got {radius_km!r}")
    if radius_km < 0:
        raise ValueError(f"radius must not be negative, got {radius_km!r}")
    if radius_km > MAX_RADIUS_KM:
        raise ValueError(f"radius must be at most {MAX_RADIUS_KM:g} km, got {radius_km!r}")


def column_for(resolution: int) -> str:
    """The model field name holding the cell at ``resolution``: ``h3_r7`` for 7."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution {resolution!r} is not one of {RESOLUTIONS}")
    return f"h3_r{resolution}"


def cells_for(lat: float, lng: float) -> dict[int, int]:
    """The H3 cell id of a point at each resolution of :data:`RESOLUTIONS`.

    The ids are Python ints ``< 2**63`` (H3 reserves the top bit), so they fit a signed
    64-bit ``BigIntegerField``. Raises ``ValueError`` for coordinates out of range or not
    finite.
    """
    _check_point(lat, lng)
    return {res: h3i.latlng_to_cell(lat, lng, res) for res in RESOLUTIONS}


@lru_cache(maxsize=1 << 16)
def _cell_info(cell: int) -> tuple[float, float, float, tuple[int, ...]]:
    """(centre lat, centre lng, widened circumradius in km, neighbours) of a cell.

    Cached: a popular area's cells are reused across queries (65,536 entries take roughly
    20 MB at most)."""
    lat, lng = h3i.cell_to_latlng(cell)
    rho = max(haversine_km(lat, lng, vlat, vlng) for vlat, vlng in h3i.cell_to_boundary(cell))
    rho = rho * (1.0 + _RHO_RELATIVE_SLACK) + _RHO_ABSOLUTE_SLACK_KM
    neighbours = tuple(n for n in h3i.grid_disk(cell, 1) if n != cell)
    return lat, lng, rho, neighbours


def _cover_at(
    lat: float, lng: float, radius_km: float, res: int, limit: int
) -> frozenset[int] | None:
    """The cells at ``res`` that may hold a point within ``radius_km`` of (lat, lng), by
    the breadth-first search proved complete in the module docstring; ``None`` as soon as
    more than ``limit`` cells are needed."""
    start = h3i.latlng_to_cell(lat, lng, res)
    phi = math.radians(lat)
    cos_phi = math.cos(phi)
    seen = {start}
    accepted = [start]
    queue = deque([start])
    two_r = 2.0 * EARTH_RADIUS_KM
    while queue:
        for neighbour in _cell_info(queue.popleft())[3]:
            if neighbour in seen:
                continue
            seen.add(neighbour)
            clat, clng, rho, _ = _cell_info(neighbour)
            # haversine_km inlined, with the centre's terms computed once.
            cphi = math.radians(clat)
            s1 = math.sin((cphi - phi) / 2.0)
            s2 = math.sin(math.radians(clng - lng) / 2.0)
            a = min(1.0, max(0.0, s1 * s1 + cos_phi * math.cos(cphi) * s2 * s2))
            if two_r * math.atan2(math.sqrt(a), math.sqrt(1.0 - a)) <= radius_km + rho:
                accepted.append(neighbour)
                if len(accepted) > limit:
                    return None
                queue.append(neighbour)
    return frozenset(accepted)


def _cap_area_km2(radius_km: float) -> float:
    """Area of a spherical cap (disk on the sphere) of the given great-circle radius."""
    return 2.0 * math.pi * EARTH_RADIUS_KM**2 * (1.0 - math.cos(radius_km / EARTH_RADIUS_KM))


def covering(lat: float, lng: float, radius_km: float) -> tuple[int, frozenset[int]]:
    """A resolution and a set of its cells holding every point within ``radius_km``.

    Returns ``(resolution, cells)`` for the finest resolution of :data:`RESOLUTIONS` whose
    covering has at most :data:`MAX_COVER_CELLS` cells; every point at great-circle
    distance ``<= radius_km`` from (lat, lng) lies in one of the cells (see the proof in
    the module docstring). Filter ``h3_r{resolution} IN cells`` then post-filter with
    :func:`nearest_first`. Radius 0 gives the centre's own cell, plus the (at most two)
    neighbours whose centre lies within their circumradius of the point.

    Raises ``ValueError`` for a latitude outside [-90, 90], a longitude outside
    [-180, 180], a radius below 0 or above :data:`MAX_RADIUS_KM`, NaN or infinity.
    """
    _check_point(lat, lng)
    _check_radius(radius_km)
    cap_area = _cap_area_km2(radius_km)
    coarsest = RESOLUTIONS[0]
    for res in sorted(RESOLUTIONS, reverse=True):
        if res != coarsest:
            max_cell_area = _MAX_AREA_FACTOR * h3i.average_hexagon_area(res, "km^2")
            if cap_area / max_cell_area > MAX_COVER_CELLS:
                continue  # cannot fit: at least this many cells meet the disk
        cells = _cover_at(lat, lng, radius_km, res, MAX_COVER_CELLS)
        if cells is not None:
            return res, cells
    # Unreachable: at MAX_RADIUS_KM the coarsest resolution needs ~125 cells at most
    # (the module tests measure the worst case). Fail loudly rather than return a
    # covering larger than the documented bound.
    raise RuntimeError(  # pragma: no cover
        f"no resolution covers {radius_km} km around ({lat}, {lng}) within {MAX_COVER_CELLS} cells"
    )


def nearest_first(
    center: tuple[float, float],
    candidates: Iterable[tuple[K, float, float]],
    radius_km: float,
) -> list[tuple[K, float]]:
    """The exact post-filter of the SQL candidates.

    ``candidates`` are ``(id, lat, lng)``; returns ``[(id, distance_km)]`` for those at
    great-circle distance ``<= radius_km`` from ``center`` (lat, lng), sorted by
    ``(distance, id)`` so that equal distances have a stable order. The centre and radius
    are validated like :func:`covering`; a candidate with a non-finite coordinate is never
    within the radius.
    """
    lat, lng = center
    _check_point(lat, lng)
    _check_radius(radius_km)
    found: list[tuple[K, float]] = []
    # haversine_km inlined (the hot loop of every nearby search), the centre's terms computed
    # once; the same operations in the same order, so the same distances to the last bit.
    phi1 = math.radians(lat)
    cos_phi1 = math.cos(phi1)
    radians, remainder, sin, cos, sqrt, atan2 = (
        math.radians,
        math.remainder,
        math.sin,
        math.cos,
        math.sqrt,
        math.atan2,
    )
    half_pi = math.pi / 2.0
    for ident, clat, clng in candidates:
        phi2 = radians(clat)
        sin_dphi = sin((phi2 - phi1) / 2.0)
        sin_dlambda = sin(radians(remainder(clng - lng, 360.0)) / 2.0)
        a = sin_dphi * sin_dphi + cos_phi1 * cos(phi2) * sin_dlambda * sin_dlambda
        if a > 1.0:
            a = 1.0
        elif a < 0.0:
            a = 0.0
        angle = 2.0 * atan2(sqrt(a), sqrt(1.0 - a))
        distance = (
            EARTH_RADIUS_KM * angle if angle <= half_pi else haversine_km(lat, lng, clat, clng)
        )
        if distance <= radius_km:
            found.append((ident, distance))
    found.sort(key=lambda item: (item[1], item[0]))
    return found
