"""The H3 spatial index of ``doctors.geo`` against brute force. No database needed."""

from __future__ import annotations

import math
import random
import uuid

import h3
import pytest
from h3.api import basic_int as h3i
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doctors import geo
from doctors.geo import (
    EARTH_RADIUS_KM,
    MAX_COVER_CELLS,
    MAX_RADIUS_KM,
    RESOLUTIONS,
    cells_for,
    column_for,
    covering,
    haversine_km,
    nearest_first,
)

Point = tuple[int, float, float]

CAIRO = (30.0444, 31.2357)
ALEXANDRIA = (31.2001, 29.9187)

# Centres where grids and formulas are most likely to break.
SPECIAL_CENTERS: list[tuple[float, float]] = [
    (90.0, 0.0),
    (-90.0, 0.0),
    (90.0, 180.0),
    (-90.0, -180.0),
    (89.9, 179.99),
    (89.95, -179.99),
    (-89.9, 179.99),
    (-89.99, -45.0),
    (0.0, 180.0),
    (0.0, -180.0),
    (0.0, 179.99),
    (0.0, -179.99),
    (65.0, 179.999),
    (-16.5, -179.999),
    CAIRO,
    # H3's pentagons (all 12 at r0; the same points are pentagons at every resolution).
    *(h3i.cell_to_latlng(p) for p in h3i.get_pentagons(0)),
]


# --- helpers ---------------------------------------------------------------------------


def destination(
    lat: float, lng: float, distance_km: float, bearing_deg: float
) -> tuple[float, float]:
    """The point ``distance_km`` from (lat, lng) along ``bearing_deg`` (from north),
    computed with unit vectors so that it stays accurate at the poles."""
    phi, lam = math.radians(lat), math.radians(lng)
    delta = distance_km / EARTH_RADIUS_KM
    theta = math.radians(bearing_deg)
    p = (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))
    north = (-math.sin(phi) * math.cos(lam), -math.sin(phi) * math.sin(lam), math.cos(phi))
    east = (-math.sin(lam), math.cos(lam), 0.0)
    c, s = math.cos(delta), math.sin(delta)
    x, y, z = (
        c * p[i] + s * (math.cos(theta) * north[i] + math.sin(theta) * east[i]) for i in range(3)
    )
    lat2 = math.degrees(math.atan2(z, math.hypot(x, y)))
    lng2 = math.degrees(math.atan2(y, x))
    return max(-90.0, min(90.0, lat2)), max(-180.0, min(180.0, lng2))


def random_global(rng: random.Random) -> tuple[float, float]:
    """Uniform on the sphere."""
    return math.degrees(math.asin(rng.uniform(-1.0, 1.0))), rng.uniform(-180.0, 180.0)


def make_points(
    rng: random.Random, center: tuple[float, float], radius_km: float, n: int
) -> list[Point]:
    """``n`` points: clustered around the centre (inside, on and just beyond the circle),
    clustered around other random centres, uniform over the globe, plus exact duplicates
    (ties broken by id) and aliases of the centre itself."""
    lat, lng = center
    coords: list[tuple[float, float]] = []
    scale = max(radius_km, 0.001)
    # Near the search circle: inside, straddling the boundary, and a bit outside.
    for _ in range(n // 2):
        kind = rng.random()
        if kind < 0.4:
            d = scale * math.sqrt(rng.random())
        elif kind < 0.7:
            d = radius_km * (1.0 + rng.uniform(-1e-6, 1e-6)) if radius_km else rng.uniform(0, 1e-6)
        else:
            d = scale * rng.uniform(1.0, 1.6)
        coords.append(destination(lat, lng, d, rng.uniform(0.0, 360.0)))
    # Clusters around other random centres (some near this one).
    while len(coords) < n * 3 // 4:
        if rng.random() < 0.5:
            c = destination(lat, lng, rng.uniform(0, 3 * scale), rng.uniform(0, 360))
        else:
            c = random_global(rng)
        spread = rng.choice([0.01, 1.0, 20.0, 200.0])
        for _ in range(50):
            coords.append(destination(*c, spread * rng.random(), rng.uniform(0.0, 360.0)))
    while len(coords) < n:
        coords.append(random_global(rng))
    # Exact duplicates (same distance: the order falls back to the id).
    coords.extend(rng.sample(coords, 20))
    # The centre itself, and its aliases at the antimeridian and the poles.
    coords.append((lat, lng))
    if abs(lng) == 180.0:
        coords.append((lat, -lng))
    if abs(lat) == 90.0:
        coords.extend([(lat, 0.0), (lat, 180.0), (lat, -180.0), (lat, 33.3)])
    ids = list(range(len(coords)))
    rng.shuffle(ids)
    return [(i, a, b) for i, (a, b) in zip(ids, coords, strict=True)]


def brute_force(
    center: tuple[float, float], points: list[Point], radius_km: float
) -> list[tuple[int, float]]:
    found = []
    for ident, lat, lng in points:
        d = haversine_km(center[0], center[1], lat, lng)
        if d <= radius_km:
            found.append((ident, d))
    return sorted(found, key=lambda item: (item[1], item[0]))


def via_index(
    center: tuple[float, float], points: list[Point], radius_km: float
) -> list[tuple[int, float]]:
    """What the SQL query will do: stored cells, ``h3_rN IN cells``, exact post-filter."""
    rows = [(ident, lat, lng, cells_for(lat, lng)) for ident, lat, lng in points]
    res, cells = covering(center[0], center[1], radius_km)
    candidates = [(ident, lat, lng) for ident, lat, lng, stored in rows if stored[res] in cells]
    return nearest_first(center, candidates, radius_km)


def assert_index_matches_brute_force(
    center: tuple[float, float], radius_km: float, seed: int, n: int = 3000
) -> None:
    rng = random.Random(seed)
    points = make_points(rng, center, radius_km, n)
    expected = brute_force(center, points, radius_km)
    got = via_index(center, points, radius_km)
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert got == expected


# --- the property: index path == brute force --------------------------------------------

latitudes = st.floats(-90.0, 90.0, allow_nan=False, allow_infinity=False)
longitudes = st.floats(-180.0, 180.0, allow_nan=False, allow_infinity=False)
centers = st.one_of(
    st.tuples(latitudes, longitudes),
    st.sampled_from(SPECIAL_CENTERS),
    st.tuples(st.floats(89.9, 90.0), longitudes),
    st.tuples(st.floats(-90.0, -89.9), longitudes),
    st.tuples(latitudes, st.one_of(st.floats(179.99, 180.0), st.floats(-180.0, -179.99))),
)
radii = st.one_of(
    st.just(0.0),
    st.floats(0.0, 0.01),
    st.floats(0.0, 30.0),
    st.floats(0.0, MAX_RADIUS_KM),
    st.sampled_from([1.0, 10.0, 50.0, 100.0, 200.0, MAX_RADIUS_KM]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(center=centers, radius_km=radii, seed=st.integers(0, 2**32 - 1))
def test_index_matches_brute_force(
    center: tuple[float, float], radius_km: float, seed: int
) -> None:
    assert_index_matches_brute_force(center, radius_km, seed)


@pytest.mark.parametrize("center", SPECIAL_CENTERS)
@pytest.mark.parametrize("radius_km", [0.0, 1e-9, 0.001, 0.5, 25.0, 180.0, MAX_RADIUS_KM])
def test_index_matches_brute_force_at_special_places(
    center: tuple[float, float], radius_km: float
) -> None:
    assert_index_matches_brute_force(
        center, radius_km, seed=hash((center, radius_km)) & 0xFFFF, n=600
    )


def test_radius_zero_finds_the_point_at_the_centre_only() -> None:
    center = (30.0, 31.0)
    points = [(1, 30.0, 31.0), (2, 30.0, 31.0 + 1e-9), (3, 30.0, 31.0)]
    assert via_index(center, points, 0.0) == [(1, 0.0), (3, 0.0)]
    # The centre's own cell is in the covering at every resolution it could pick.
    res, cells = covering(*center, 0.0)
    assert res == max(RESOLUTIONS)
    assert cells_for(*center)[res] in cells
    assert len(cells) <= 3


def test_the_same_place_written_differently_is_found() -> None:
    # The poles at any longitude, and the antimeridian as +180 or -180. (At the poles
    # cos(pi/2) is 6e-17, not 0, so the distance is ~1e-13 km rather than 0: search with
    # a micrometre, and check radius 0 agrees with brute force whatever floats say.)
    cases = [
        ((90.0, 0.0), [(1, 90.0, 123.0), (2, 90.0, -180.0), (3, 90.0, 0.0)]),
        ((-90.0, 45.0), [(1, -90.0, -10.0), (2, -90.0, 180.0)]),
        ((12.5, 180.0), [(1, 12.5, -180.0), (2, 12.5, 180.0)]),
    ]
    for center, points in cases:
        assert sorted(i for i, _ in via_index(center, points, 1e-9)) == [i for i, _, _ in points]
        assert via_index(center, points, 0.0) == brute_force(center, points, 0.0)


def test_search_across_the_antimeridian() -> None:
    west = (10.0, 179.99)  # a point just west of the antimeridian
    east = (10.0, -179.99)  # ~2.2 km away, on the other side
    points = [(1, *east), (2, 10.0, -179.0), (3, 10.0, 179.0)]
    got = via_index(west, points, 5.0)
    assert [i for i, _ in got] == [1]
    assert got[0][1] == pytest.approx(2.19, abs=0.01)


def test_search_over_the_pole() -> None:
    # Two points at 89.95 N on opposite meridians are ~11 km apart, through the pole.
    center = (89.95, 0.0)
    points = [(1, 89.95, 180.0), (2, 89.95, 90.0), (3, 89.0, 0.0)]
    got = via_index(center, points, 12.0)
    assert [i for i, _ in got] == [2, 1]
    assert got[1][1] == pytest.approx(11.12, abs=0.01)


# --- the lemma the covering rests on ----------------------------------------------------


def test_every_point_lies_within_its_cells_circumradius_bound() -> None:
    """Lemma 1 of ``doctors.geo``: a point is never farther from its cell's centre than the
    (widened) circumradius computed from the cell's boundary: over random points, points
    around every pentagon and close to the poles and the antimeridian."""
    rng = random.Random(7)
    samples = [random_global(rng) for _ in range(3000)]
    for plat, plng in SPECIAL_CENTERS:
        for _ in range(100):
            samples.append(destination(plat, plng, rng.uniform(0, 150), rng.uniform(0, 360)))
    for res in RESOLUTIONS:
        for lat, lng in samples:
            cell = h3i.latlng_to_cell(lat, lng, res)
            clat, clng, rho, _ = geo._cell_info(cell)
            assert haversine_km(lat, lng, clat, clng) <= rho


def test_covering_holds_every_point_on_the_circle() -> None:
    """Misses would happen at the rim: walk each circle (just inside it) in steps of a
    tenth of a cell edge and check every point's cell is in the covering."""
    rng = random.Random(5)
    cs = SPECIAL_CENTERS[::2] + [random_global(rng) for _ in range(10)]
    for i, (lat, lng) in enumerate(cs):
        radius_km = [0.05, 3.0, 12.0, 40.0, 140.0, 230.0, MAX_RADIUS_KM][i % 7]
        res, cells = covering(lat, lng, radius_km)
        step = h3.average_hexagon_edge_length(res, "km") / 10.0
        n = max(64, math.ceil(2 * math.pi * radius_km / step))
        offset = rng.uniform(0.0, 360.0)
        inside = 0
        for k in range(n):
            p = destination(lat, lng, radius_km * (1 - 1e-9), offset + 360.0 * k / n)
            if haversine_km(lat, lng, *p) > radius_km:
                continue  # rounding put it a hair outside
            inside += 1
            assert cells_for(*p)[res] in cells, (lat, lng, radius_km, p)
        assert inside >= n * 9 // 10


# --- covering: size, choice, input checks -----------------------------------------------


def test_covering_size_bound_holds_at_the_largest_radius() -> None:
    rng = random.Random(3)
    cs = SPECIAL_CENTERS + [random_global(rng) for _ in range(60)]
    for lat, lng in cs:
        res, cells = covering(lat, lng, MAX_RADIUS_KM)
        assert res in RESOLUTIONS
        assert 1 <= len(cells) <= MAX_COVER_CELLS
        assert all(h3i.get_resolution(c) == res for c in cells)


@pytest.mark.parametrize("radius_km", [0.0, 0.1, 1.0, 5.0, 10.0, 20.0, 50.0, 100.0, 150.0, 250.0])
def test_covering_size_bound_holds_at_every_radius(radius_km: float) -> None:
    rng = random.Random(int(radius_km * 10))
    for lat, lng in SPECIAL_CENTERS + [random_global(rng) for _ in range(15)]:
        res, cells = covering(lat, lng, radius_km)
        assert len(cells) <= MAX_COVER_CELLS
        assert cells_for(lat, lng)[res] in cells


def test_chosen_resolutions_for_typical_radii() -> None:
    # Pinned so that a change of RESOLUTIONS or MAX_COVER_CELLS is a visible decision.
    assert covering(*CAIRO, 0.0)[0] == 7
    assert covering(*CAIRO, 10.0)[0] == 7
    res, cells = covering(*CAIRO, 50.0)
    assert res == 5
    assert len(cells) < 100
    assert covering(*CAIRO, MAX_RADIUS_KM)[0] == 3


@pytest.mark.parametrize(
    ("lat", "lng", "radius_km"),
    [
        (90.0001, 0.0, 1.0),
        (-90.5, 0.0, 1.0),
        (0.0, 180.0001, 1.0),
        (0.0, -181.0, 1.0),
        (math.nan, 0.0, 1.0),
        (0.0, math.nan, 1.0),
        (math.inf, 0.0, 1.0),
        (0.0, -math.inf, 1.0),
        (0.0, 0.0, -0.001),
        (0.0, 0.0, MAX_RADIUS_KM + 0.001),
        (0.0, 0.0, math.nan),
        (0.0, 0.0, math.inf),
    ],
)
def test_bad_input_raises_value_error(lat: float, lng: float, radius_km: float) -> None:
    with pytest.raises(ValueError):
        covering(lat, lng, radius_km)
    with pytest.raises(ValueError):
        nearest_first((lat, lng), [(1, 0.0, 0.0)], radius_km)


@pytest.mark.parametrize(
    ("lat", "lng"), [(91.0, 0.0), (0.0, 200.0), (math.nan, 0.0), (0.0, math.inf)]
)
def test_cells_for_rejects_bad_coordinates(lat: float, lng: float) -> None:
    with pytest.raises(ValueError):
        cells_for(lat, lng)


# --- cells_for ---------------------------------------------------------------------------


def test_cells_for_gives_one_valid_cell_per_resolution() -> None:
    cells = cells_for(*CAIRO)
    assert list(cells) == list(RESOLUTIONS)
    for res, cell in cells.items():
        assert h3i.is_valid_cell(cell)
        assert h3i.get_resolution(cell) == res
        assert h3.int_to_str(cell) == h3.latlng_to_cell(*CAIRO, res)
        assert 0 < cell < 2**63


def test_every_cell_id_fits_a_signed_bigint() -> None:
    # The largest cell id at a resolution: the largest base cell, then the largest child
    # at every step (base cell bits lie above the digits, so greedy is the maximum).
    cell = max(h3i.get_res0_cells())
    for res in range(1, max(RESOLUTIONS) + 1):
        cell = max(h3i.cell_to_children(cell, res))
        if res in RESOLUTIONS:
            assert cell < 2**63
    rng = random.Random(11)
    for lat, lng in SPECIAL_CENTERS + [random_global(rng) for _ in range(500)]:
        assert all(0 < c < 2**63 for c in cells_for(lat, lng).values())


def test_column_for() -> None:
    assert [column_for(r) for r in RESOLUTIONS] == ["h3_r3", "h3_r5", "h3_r7"]
    with pytest.raises(ValueError):
        column_for(4)


# --- haversine ---------------------------------------------------------------------------


def test_haversine_known_distances() -> None:
    assert haversine_km(*CAIRO, *ALEXANDRIA) == pytest.approx(180.0, abs=2.0)
    antipode = math.pi * EARTH_RADIUS_KM
    assert antipode == pytest.approx(20015.1, abs=0.1)
    assert haversine_km(0.0, 0.0, 0.0, 180.0) == pytest.approx(antipode, rel=1e-12)
    assert haversine_km(90.0, 0.0, -90.0, 0.0) == pytest.approx(antipode, rel=1e-12)
    assert haversine_km(30.0, 31.0, -30.0, -149.0) == pytest.approx(antipode, rel=1e-12)
    # One degree of latitude, the equator's quarter.
    assert haversine_km(0.0, 0.0, 1.0, 0.0) == pytest.approx(antipode / 180.0, rel=1e-12)
    assert haversine_km(0.0, 0.0, 0.0, 90.0) == pytest.approx(antipode / 2.0, rel=1e-12)


def test_haversine_tiny_and_zero_distances() -> None:
    assert haversine_km(*CAIRO, *CAIRO) == 0.0
    assert haversine_km(90.0, 0.0, 90.0, 120.0) == pytest.approx(0.0, abs=1e-12)
    assert haversine_km(10.0, 180.0, 10.0, -180.0) == pytest.approx(0.0, abs=1e-12)
    # 1e-9 degree of latitude is ~0.11 mm.
    one_nano_degree = math.pi * EARTH_RADIUS_KM / 180.0 * 1e-9
    assert haversine_km(10.0, 20.0, 10.0 + 1e-9, 20.0) == pytest.approx(one_nano_degree, rel=1e-6)


def test_haversine_near_antipodes_is_stable() -> None:
    antipode = math.pi * EARTH_RADIUS_KM
    almost = haversine_km(0.0, 0.0, 0.0, 180.0 - 1e-9)
    assert almost < antipode
    assert almost == pytest.approx(antipode - one_degree_km() * 1e-9, rel=1e-12)


def one_degree_km() -> float:
    return math.pi * EARTH_RADIUS_KM / 180.0


@settings(max_examples=300, deadline=None)
@given(a=st.tuples(latitudes, longitudes), b=st.tuples(latitudes, longitudes))
def test_haversine_agrees_with_h3_and_is_symmetric(
    a: tuple[float, float], b: tuple[float, float]
) -> None:
    d = haversine_km(*a, *b)
    assert d == haversine_km(*b, *a)
    assert 0.0 <= d <= math.pi * EARTH_RADIUS_KM
    # H3 uses a radius 1.6 m smaller (6371.00718 km): compare the angles. Near the antipode
    # H3's haversine takes 2 asin of a number near 1, off by up to ~2 sqrt(2 eps) ~ 4e-8 rad
    # (a few cm: 3.8e-8 seen in 200,000 near-antipodal pairs); ours subtracts from the
    # antipode there, and keeps full precision.
    theirs = h3.great_circle_distance(a, b, unit="rads")
    tolerance = 1e-9 if theirs < math.pi - 1e-3 else 1e-7
    assert d / EARTH_RADIUS_KM == pytest.approx(theirs, abs=tolerance)


# --- nearest_first -----------------------------------------------------------------------


def test_nearest_first_sorts_by_distance_then_id_and_keeps_the_boundary() -> None:
    center = (0.0, 0.0)
    one_deg = one_degree_km()
    candidates = [
        (5, 0.0, 1.0),
        (2, 0.0, -1.0),  # same distance as 5: the smaller id first
        (9, 0.0, 0.5),
        (1, 0.0, 2.0),  # beyond the radius
        (3, math.nan, 0.0),  # broken coordinates never match
    ]
    got = nearest_first(center, candidates, haversine_km(0.0, 0.0, 0.0, 1.0))
    assert [i for i, _ in got] == [9, 2, 5]
    assert got[1][1] == pytest.approx(one_deg)
    assert nearest_first(center, [], 10.0) == []


def test_nearest_first_accepts_any_comparable_id() -> None:
    a, b = sorted([uuid.uuid4(), uuid.uuid4()])
    got = nearest_first(CAIRO, [(b, *CAIRO), (a, *CAIRO)], 0.0)
    assert got == [(a, 0.0), (b, 0.0)]
