"""WGS84 / GCJ-02 / BD-09 transforms: published vectors, an independent scalar re-implementation, round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from numpy.typing import ArrayLike
from shapely.geometry import MultiPolygon, Point, Polygon

from geo_core import crs

EARTH_RADIUS_M = 6371008.8
POINT_TRANSFORMS = (crs.wgs84_to_gcj02, crs.gcj02_to_wgs84, crs.gcj02_to_bd09, crs.bd09_to_gcj02,
                    crs.wgs84_to_bd09, crs.bd09_to_wgs84)
CHANGSHA = (112.9388, 28.2282)
OUTSIDE_CHINA = {"paris": (2.3522, 48.8566), "sydney": (151.2093, -33.8688), "new_york": (-74.006, 40.7128),
                 "moscow": (37.6173, 55.7558), "tokyo": (139.6917, 35.6895)}


def haversine_m(lon1: ArrayLike, lat1: ArrayLike, lon2: ArrayLike, lat2: ArrayLike) -> np.ndarray:
    """Great-circle distance in metres on the mean Earth sphere."""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(v, dtype=float)) for v in (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


# --- independent scalar re-implementation (coordtransform layout, plain math) ---------------------------------


def ref_transform_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def ref_transform_lng(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def ref_wgs84_to_gcj02(lng: float, lat: float) -> tuple[float, float]:
    a, ee = 6378245.0, 0.00669342162296594323
    if lng < 72.004 or lng > 137.8347 or lat < 0.8293 or lat > 55.8271:
        return lng, lat
    dlat = ref_transform_lat(lng - 105.0, lat - 35.0)
    dlng = ref_transform_lng(lng - 105.0, lat - 35.0)
    radlat = lat / 180.0 * math.pi
    magic = 1 - ee * math.sin(radlat) * math.sin(radlat)
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((a * (1 - ee)) / (magic * sqrtmagic) * math.pi)
    dlng = (dlng * 180.0) / (a / sqrtmagic * math.cos(radlat) * math.pi)
    return lng + dlng, lat + dlat


def ref_gcj02_to_bd09(lng: float, lat: float) -> tuple[float, float]:
    x_pi = math.pi * 3000.0 / 180.0
    if lng < 72.004 or lng > 137.8347 or lat < 0.8293 or lat > 55.8271:
        return lng, lat
    z = math.sqrt(lng * lng + lat * lat) + 0.00002 * math.sin(lat * x_pi)
    theta = math.atan2(lat, lng) + 0.000003 * math.cos(lng * x_pi)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def random_china_points(n: int = 2000, seed: int = 20260) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(73.0, 135.0, n), rng.uniform(18.0, 53.0, n)


# --- published reference vectors -------------------------------------------------------------------------------

# googollee/eviltransform go/transform_test.go and python/test.py: (wgs lon, wgs lat), (gcj lon, gcj lat).
# (Its TESTS_bd vectors were produced by an old bd2gcj that used pi instead of x_pi, so they are not used here.)
EVILTRANSFORM_WGS_GCJ = [
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),  # Shanghai
    ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),  # Shenzhen
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),  # Beijing
]
# wandergis/coordtransform README, input (116.404, 39.915) for every function.
COORDTRANSFORM_INPUT = (116.404, 39.915)
COORDTRANSFORM_EXACT = {"wgs84_to_gcj02": (116.41024449916938, 39.91640428150164),
                        "gcj02_to_bd09": (116.41036949371029, 39.92133699351021)}
COORDTRANSFORM_APPROX = {"bd09_to_gcj02": (116.39762729119315, 39.90865673957631),
                         "gcj02_to_wgs84": (116.39775550083061, 39.91359571849836)}


@pytest.mark.parametrize(("wgs", "gcj"), EVILTRANSFORM_WGS_GCJ)
def test_eviltransform_vectors(wgs, gcj):
    assert crs.wgs84_to_gcj02(*wgs) == pytest.approx(gcj, abs=1e-9)
    back = crs.gcj02_to_wgs84(*gcj)
    assert haversine_m(*back, *wgs) < 0.01


@pytest.mark.parametrize("name", sorted(COORDTRANSFORM_EXACT))
def test_coordtransform_closed_form_vectors(name):
    assert getattr(crs, name)(*COORDTRANSFORM_INPUT) == pytest.approx(COORDTRANSFORM_EXACT[name], abs=1e-9)


@pytest.mark.parametrize("name", sorted(COORDTRANSFORM_APPROX))
def test_iterative_inverse_is_near_the_published_approximation_and_exact_on_the_forward(name):
    result = getattr(crs, name)(*COORDTRANSFORM_INPUT)
    assert haversine_m(*result, *COORDTRANSFORM_APPROX[name]) < 5.0
    forward = {"bd09_to_gcj02": crs.gcj02_to_bd09, "gcj02_to_wgs84": crs.wgs84_to_gcj02}[name]
    assert haversine_m(*forward(*result), *COORDTRANSFORM_INPUT) < 0.01


def test_vectorised_forward_matches_independent_scalar_implementation():
    lon, lat = random_china_points(500, seed=7)
    gcj_lon, gcj_lat = crs.wgs84_to_gcj02(lon, lat)
    bd_lon, bd_lat = crs.gcj02_to_bd09(lon, lat)
    wbd_lon, wbd_lat = crs.wgs84_to_bd09(lon, lat)
    for i in range(lon.size):
        ref_gcj = ref_wgs84_to_gcj02(lon[i], lat[i])
        assert (gcj_lon[i], gcj_lat[i]) == pytest.approx(ref_gcj, abs=1e-9)
        assert (bd_lon[i], bd_lat[i]) == pytest.approx(ref_gcj02_to_bd09(lon[i], lat[i]), abs=1e-9)
        assert (wbd_lon[i], wbd_lat[i]) == pytest.approx(ref_gcj02_to_bd09(*ref_gcj), abs=1e-9)


# --- sanity facts ----------------------------------------------------------------------------------------------


def test_changsha_gcj02_shift_is_several_hundred_metres():
    gcj = crs.wgs84_to_gcj02(*CHANGSHA)
    assert 300.0 < haversine_m(*CHANGSHA, *gcj) < 900.0


def test_bd09_is_gcj02_plus_roughly_0_0065_0_006_degrees():
    lon, lat = random_china_points()
    bd_lon, bd_lat = crs.gcj02_to_bd09(lon, lat)
    assert np.all(np.abs(bd_lon - lon - 0.0065) < 0.001)
    assert np.all(np.abs(bd_lat - lat - 0.006) < 0.001)
    changsha_bd = crs.gcj02_to_bd09(*CHANGSHA)
    assert changsha_bd[0] - CHANGSHA[0] == pytest.approx(0.0065, abs=0.001)
    assert changsha_bd[1] - CHANGSHA[1] == pytest.approx(0.006, abs=0.001)


@pytest.mark.parametrize(("forward", "inverse"), [
    (crs.wgs84_to_gcj02, crs.gcj02_to_wgs84),
    (crs.wgs84_to_bd09, crs.bd09_to_wgs84),
    (crs.gcj02_to_bd09, crs.bd09_to_gcj02),
])
def test_round_trips_over_china_are_within_a_centimetre(forward, inverse):
    lon, lat = random_china_points()
    back_lon, back_lat = inverse(*forward(lon, lat))
    assert haversine_m(lon, lat, back_lon, back_lat).max() < 0.01


def test_inverse_then_forward_is_within_a_centimetre():
    lon, lat = random_china_points(seed=99)
    for forward, inverse in ((crs.wgs84_to_gcj02, crs.gcj02_to_wgs84), (crs.wgs84_to_bd09, crs.bd09_to_wgs84),
                             (crs.gcj02_to_bd09, crs.bd09_to_gcj02)):
        again_lon, again_lat = forward(*inverse(lon, lat))
        assert haversine_m(lon, lat, again_lon, again_lat).max() < 0.01


@pytest.mark.parametrize("fn", POINT_TRANSFORMS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("place", sorted(OUTSIDE_CHINA))
def test_points_outside_china_are_unchanged(fn, place):
    lon, lat = OUTSIDE_CHINA[place]
    assert crs.out_of_china(lon, lat)
    assert fn(lon, lat) == (lon, lat)


def test_out_of_china_box_edges():
    assert not crs.out_of_china(*CHANGSHA)
    assert crs.out_of_china(72.0, 30.0) and not crs.out_of_china(72.004, 30.0)
    assert crs.out_of_china(137.84, 30.0) and not crs.out_of_china(137.8347, 30.0)
    assert crs.out_of_china(110.0, 0.8) and crs.out_of_china(110.0, 55.83)
    mask = crs.out_of_china(np.array([2.3522, 112.9]), np.array([48.8566, 28.2]))
    assert mask.tolist() == [True, False]


def test_mixed_batch_shifts_only_points_inside_china():
    lon = np.array([CHANGSHA[0], OUTSIDE_CHINA["paris"][0]])
    lat = np.array([CHANGSHA[1], OUTSIDE_CHINA["paris"][1]])
    new_lon, new_lat = crs.wgs84_to_bd09(lon, lat)
    assert (new_lon[1], new_lat[1]) == OUTSIDE_CHINA["paris"]
    assert haversine_m(new_lon[0], new_lat[0], *CHANGSHA) > 300.0


# --- scalars, arrays, NaN ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", POINT_TRANSFORMS, ids=lambda f: f.__name__)
def test_scalars_and_arrays_give_identical_results(fn):
    lon, lat = random_china_points(50, seed=3)
    lon = np.append(lon, OUTSIDE_CHINA["sydney"][0])
    lat = np.append(lat, OUTSIDE_CHINA["sydney"][1])
    array_lon, array_lat = fn(lon, lat)
    for i in range(lon.size):
        scalar = fn(float(lon[i]), float(lat[i]))
        assert type(scalar[0]) is float and type(scalar[1]) is float
        assert scalar == (array_lon[i], array_lat[i])


def test_array_shape_is_kept_and_lists_and_broadcasting_work():
    lon, lat = random_china_points(12, seed=5)
    grid_lon, grid_lat = crs.wgs84_to_gcj02(lon.reshape(3, 4), lat.reshape(3, 4))
    flat_lon, flat_lat = crs.wgs84_to_gcj02(lon, lat)
    assert grid_lon.shape == (3, 4) and np.array_equal(grid_lon.ravel(), flat_lon)
    assert np.array_equal(grid_lat.ravel(), flat_lat)
    list_lon, _ = crs.wgs84_to_gcj02(lon.tolist(), lat.tolist())
    assert np.array_equal(list_lon, flat_lon)
    row_lon, row_lat = crs.wgs84_to_gcj02(lon[:3], 28.2)
    assert row_lon.shape == row_lat.shape == (3,)


def test_input_arrays_are_not_modified():
    lon, lat = random_china_points(20, seed=11)
    before = (lon.copy(), lat.copy())
    crs.bd09_to_wgs84(lon, lat)
    assert np.array_equal(lon, before[0]) and np.array_equal(lat, before[1])


@pytest.mark.parametrize("fn", POINT_TRANSFORMS, ids=lambda f: f.__name__)
def test_nan_propagates_without_disturbing_other_points(fn):
    new_lon, new_lat = fn(np.array([np.nan, CHANGSHA[0]]), np.array([np.nan, CHANGSHA[1]]))
    assert np.isnan(new_lon[0]) and np.isnan(new_lat[0])
    assert (new_lon[1], new_lat[1]) == fn(*CHANGSHA)


def test_empty_arrays():
    new_lon, new_lat = crs.gcj02_to_wgs84(np.array([]), np.array([]))
    assert new_lon.shape == new_lat.shape == (0,)


# --- dispatch and CRS names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst", "fn"), [
    ("wgs84", "gcj02", crs.wgs84_to_gcj02), ("gcj02", "wgs84", crs.gcj02_to_wgs84),
    ("gcj02", "bd09", crs.gcj02_to_bd09), ("bd09", "gcj02", crs.bd09_to_gcj02),
    ("wgs84", "bd09", crs.wgs84_to_bd09), ("bd09", "wgs84", crs.bd09_to_wgs84),
    ("EPSG:4326", "GCJ-02", crs.wgs84_to_gcj02), ("BD-09", "CRS84", crs.bd09_to_wgs84),
])
def test_transform_coords_dispatches(src, dst, fn):
    assert crs.transform_coords(*CHANGSHA, src, dst) == fn(*CHANGSHA)


def test_transform_coords_same_crs_is_identity():
    assert crs.transform_coords(*CHANGSHA, "gcj02", "GCJ02") == CHANGSHA
    lon, lat = random_china_points(5)
    same_lon, same_lat = crs.transform_coords(lon, lat, "bd09", "bd09")
    assert np.array_equal(same_lon, lon) and np.array_equal(same_lat, lat) and same_lon is not lon


def test_transform_coords_rejects_unknown_crs():
    with pytest.raises(ValueError, match="unknown coordinate system 'epsg:3857'"):
        crs.transform_coords(*CHANGSHA, "wgs84", "epsg:3857")


@pytest.mark.parametrize(("value", "expected"), [
    (None, "wgs84"), ("wgs84", "wgs84"), ("WGS84", "wgs84"), ("WGS-84", "wgs84"), ("EPSG:4326", "wgs84"),
    ("epsg:4326", "wgs84"), ("CRS84", "wgs84"), ("OGC:CRS84", "wgs84"),
    ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "wgs84"), (" wgs84 ", "wgs84"),
    ("gcj02", "gcj02"), ("GCJ02", "gcj02"), ("gcj-02", "gcj02"), ("GCJ_02", "gcj02"),
    ("bd09", "bd09"), ("BD09", "bd09"), ("bd-09", "bd09"), ("bd09ll", "bd09"),
])
def test_parse_crs_aliases(value, expected):
    assert crs.parse_crs(value) == expected


@pytest.mark.parametrize("value", ["", "epsg:3857", "bd09mc", "gcj03", "mars", 4326])
def test_parse_crs_errors(value):
    with pytest.raises(ValueError, match="unknown coordinate system .*expected one of wgs84, gcj02, bd09"):
        crs.parse_crs(value)


def test_crs_names():
    assert crs.CRS_NAMES == ("wgs84", "gcj02", "bd09")
    assert all(crs.parse_crs(name) == name for name in crs.CRS_NAMES)


# --- shapely geometries -----------------------------------------------------------------------------------------


def _square(lon: float, lat: float, size: float = 0.01) -> list[tuple[float, float]]:
    return [(lon, lat), (lon + size, lat), (lon + size, lat + size), (lon, lat + size), (lon, lat)]


def _max_vertex_distance_m(a: shapely.Geometry, b: shapely.Geometry) -> float:
    ca, cb = shapely.get_coordinates(a), shapely.get_coordinates(b)
    assert ca.shape == cb.shape
    return float(haversine_m(ca[:, 0], ca[:, 1], cb[:, 0], cb[:, 1]).max())


def test_transform_geometry_polygon_round_trip_and_matches_point_transform():
    hole = _square(CHANGSHA[0] + 0.002, CHANGSHA[1] + 0.002, 0.003)
    polygon = Polygon(_square(*CHANGSHA), [hole])
    gcj = crs.transform_geometry(polygon, "wgs84", "gcj02")
    coords = shapely.get_coordinates(polygon)
    expected = np.column_stack(crs.wgs84_to_gcj02(coords[:, 0], coords[:, 1]))
    assert np.array_equal(shapely.get_coordinates(gcj), expected)
    assert len(gcj.interiors) == 1 and gcj.is_valid
    assert _max_vertex_distance_m(crs.transform_geometry(gcj, "gcj02", "wgs84"), polygon) < 0.01


def test_transform_geometry_multipolygon_round_trip_through_bd09():
    multi = MultiPolygon([Polygon(_square(*CHANGSHA)), Polygon(_square(121.47, 31.23, 0.05))])
    bd = crs.transform_geometry(multi, "wgs84", "bd09")
    assert bd.geom_type == "MultiPolygon" and len(bd.geoms) == 2
    assert _max_vertex_distance_m(bd, multi) > 300.0
    assert _max_vertex_distance_m(crs.transform_geometry(bd, "bd09", "wgs84"), multi) < 0.01


def test_transform_geometry_keeps_z_and_handles_arrays_and_none():
    point = crs.transform_geometry(Point(CHANGSHA[0], CHANGSHA[1], 42.0), "wgs84", "gcj02")
    assert point.has_z and point.z == 42.0
    assert (point.x, point.y) == crs.wgs84_to_gcj02(*CHANGSHA)
    out = crs.transform_geometry(np.array([Point(*CHANGSHA), None]), "wgs84", "gcj02")
    assert out[1] is None and (out[0].x, out[0].y) == crs.wgs84_to_gcj02(*CHANGSHA)


# --- GeoJSON ----------------------------------------------------------------------------------------------------


def _feature_collection() -> dict:
    return {
        "type": "FeatureCollection",
        "name": "outlets",
        "bbox": [112.9, 28.2, 113.0, 28.3],
        "features": [
            {"type": "Feature", "id": "outlet-1", "properties": {"name": "Furong", "tags": ["a"]},
             "geometry": {"type": "Point", "coordinates": [112.9388, 28.2282, 55.5]}},
            {"type": "Feature", "id": 2, "properties": {"name": "Yuelu"},
             "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in _square(112.9, 28.2)]]}},
            {"type": "Feature", "id": 3, "properties": None, "geometry": None},
            {"type": "Feature", "id": 4, "properties": {},
             "geometry": {"type": "GeometryCollection", "geometries": [
                 {"type": "LineString", "coordinates": [[112.95, 28.21], [112.96, 28.22]]},
                 {"type": "MultiPoint", "coordinates": [[2.3522, 48.8566]]}]}},
        ],
    }


def test_transform_geojson_feature_collection_keeps_properties_and_ids():
    original = _feature_collection()
    snapshot = _feature_collection()
    result = crs.transform_geojson(original, "wgs84", "gcj02")
    assert original == snapshot  # input untouched
    assert result["name"] == "outlets" and "bbox" not in result
    assert [f["id"] for f in result["features"]] == ["outlet-1", 2, 3, 4]
    assert [f["properties"] for f in result["features"]] == [f["properties"] for f in snapshot["features"]]
    assert result["features"][0]["properties"] is not original["features"][0]["properties"]
    assert result["features"][2]["geometry"] is None
    point = result["features"][0]["geometry"]["coordinates"]
    assert point[:2] == list(crs.wgs84_to_gcj02(112.9388, 28.2282)) and point[2] == 55.5
    ring = result["features"][1]["geometry"]["coordinates"][0]
    assert ring == [list(crs.wgs84_to_gcj02(*p)) for p in _square(112.9, 28.2)]
    line, paris = result["features"][3]["geometry"]["geometries"]
    assert line["coordinates"][1] == list(crs.wgs84_to_gcj02(112.96, 28.22))
    assert paris["coordinates"] == [[2.3522, 48.8566]]


def test_transform_geojson_round_trip_and_bare_geometry():
    geometry = {"type": "MultiPolygon", "coordinates": [[[list(p) for p in _square(*CHANGSHA)]],
                                                        [[list(p) for p in _square(121.47, 31.23)]]]}
    there = crs.transform_geojson(geometry, "wgs84", "bd09")
    back = crs.transform_geojson(there, "bd09", "wgs84")
    a = np.array([p for polygon in geometry["coordinates"] for ring in polygon for p in ring])
    b = np.array([p for polygon in back["coordinates"] for ring in polygon for p in ring])
    assert haversine_m(a[:, 0], a[:, 1], b[:, 0], b[:, 1]).max() < 0.01
    assert there["coordinates"] != geometry["coordinates"]


def test_transform_geojson_null_geometry_feature_and_empty_collection():
    feature = {"type": "Feature", "properties": {"k": 1}, "geometry": None}
    assert crs.transform_geojson(feature, "gcj02", "wgs84") == feature
    empty = {"type": "FeatureCollection", "features": []}
    assert crs.transform_geojson(empty, "gcj02", "wgs84") == empty


@pytest.mark.parametrize("obj", [
    {"type": "Topology"},
    {"type": "Point", "coordinates": [112.9]},
    {"type": "LineString", "coordinates": "112.9,28.2"},
    {"type": "FeatureCollection"},
    ["not", "a", "dict"],
])
def test_transform_geojson_rejects_malformed_input(obj):
    with pytest.raises(ValueError):
        crs.transform_geojson(obj, "wgs84", "gcj02")
