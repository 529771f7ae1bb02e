"""WGS84 <-> GCJ-02 <-> BD-09 coordinate correction (纠偏), vectorised with numpy.

We store WGS84 only (GPS and Tianditu's CGCS2000 agree with it to centimetres). Gaode/AMap and Tencent draw in
GCJ-02, Baidu in BD-09 (lon/lat, Baidu's "bd09ll"); endpoints convert on the way in and out with these functions.

- The forward transforms are the widely published closed forms (eviltransform / coordtransform): the GCJ-02 offset on
  the Krasovsky 1940 ellipsoid, then Baidu's rotation and offset with ``x_pi = pi * 3000 / 180``. They match the
  published reference vectors exactly.
- The inverses are not closed form. Each starts from the published one-step approximation and refines it by
  fixed-point iteration of the forward transform until the forward image of the estimate lies within
  ``INVERSE_TOLERANCE_M`` of the input (at most ``INVERSE_MAX_ITERATIONS`` rounds; two or three are typical).
- Points outside China's rough bounding box (``out_of_china``) are returned unchanged by every transform, BD-09
  included, as eviltransform does: outside it the three systems coincide. The box is the published one, not a border:
  it includes e.g. Mongolia, the Korean peninsula and most of Japan, which get shifted like mainland points. Each
  function tests the point it is given, so in the few-hundred-metre band along the box edge a point may be shifted one
  way but not back.
- Every function takes scalars (returns floats) or array-likes (returns float64 arrays of the broadcast shape), on
  the same code path. Axis order is always lon, lat. NaN coordinates come back as NaN.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import shapely

CRS_NAMES = ("wgs84", "gcj02", "bd09")

KRASOVSKY_A = 6378245.0
KRASOVSKY_EE = 0.00669342162296594323
X_PI = math.pi * 3000.0 / 180.0
BD09_OFFSET = (0.0065, 0.006)
CHINA_BBOX = (72.004, 0.8293, 137.8347, 55.8271)  # min lon, min lat, max lon, max lat
INVERSE_TOLERANCE_M = 0.001
INVERSE_MAX_ITERATIONS = 30
_METRES_PER_DEGREE = 6371008.8 * math.pi / 180.0

Array: TypeAlias = npt.NDArray[np.float64]
Coords: TypeAlias = float | Array
Kernel: TypeAlias = Callable[[Array, Array], tuple[Array, Array]]

_ALIASES = {
    "wgs84": ("wgs84", "epsg:4326", "4326", "crs84", "ogc:crs84", "urn:ogc:def:crs:ogc:1.3:crs84",
              "urn:ogc:def:crs:epsg::4326", "http://www.opengis.net/def/crs/ogc/1.3/crs84",
              "http://www.opengis.net/def/crs/epsg/0/4326", "cgcs2000", "epsg:4490"),
    "gcj02": ("gcj02", "gcj"),
    "bd09": ("bd09", "bd09ll"),
}
_COORDINATE_TYPES = frozenset({"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"})


def _normalise_crs(value: str) -> str:
    """Lower-case a CRS name and drop spaces, hyphens and underscores."""
    return value.strip().lower().replace("-", "").replace("_", "").replace(" ", "")


_CANONICAL = {_normalise_crs(alias): name for name, aliases in _ALIASES.items() for alias in aliases}


def parse_crs(value: str | None) -> str:
    """Return the canonical CRS name ("wgs84", "gcj02" or "bd09") for a name or alias; None means WGS84."""
    if value is None:
        return "wgs84"
    name = _CANONICAL.get(_normalise_crs(value)) if isinstance(value, str) else None
    if name is None:
        raise ValueError(f"unknown coordinate system {value!r}; expected one of {', '.join(CRS_NAMES)} "
                         "(aliases: EPSG:4326, CRS84, gcj-02, bd-09, bd09ll)")
    return name


# --- closed-form kernels on 1-d float64 arrays, no out-of-China test -------------------------------------------


def _gcj02_delta(lon: Array, lat: Array) -> tuple[Array, Array]:
    """GCJ-02 minus WGS84 in degrees at a WGS84 point (the published polynomial-and-sine offset)."""
    x, y = lon - 105.0, lat - 35.0
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    north = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x)) + common
    north += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    north += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    east = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x)) + common
    east += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    east += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - KRASOVSKY_EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = north * 180.0 / ((KRASOVSKY_A * (1.0 - KRASOVSKY_EE)) / (magic * sqrt_magic) * np.pi)
    dlon = east * 180.0 / (KRASOVSKY_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return dlon, dlat


def _wgs84_to_gcj02(lon: Array, lat: Array) -> tuple[Array, Array]:
    """Closed-form WGS84 -> GCJ-02."""
    dlon, dlat = _gcj02_delta(lon, lat)
    return lon + dlon, lat + dlat


def _gcj02_to_bd09(lon: Array, lat: Array) -> tuple[Array, Array]:
    """Closed-form GCJ-02 -> BD-09."""
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * X_PI)
    return z * np.cos(theta) + BD09_OFFSET[0], z * np.sin(theta) + BD09_OFFSET[1]


def _wgs84_to_bd09(lon: Array, lat: Array) -> tuple[Array, Array]:
    """Closed-form WGS84 -> BD-09 (through GCJ-02)."""
    return _gcj02_to_bd09(*_wgs84_to_gcj02(lon, lat))


def _bd09_to_gcj02_approx(lon: Array, lat: Array) -> tuple[Array, Array]:
    """The published approximate BD-09 -> GCJ-02 (first guess for the iteration)."""
    x, y = lon - BD09_OFFSET[0], lat - BD09_OFFSET[1]
    z = np.hypot(x, y) - 0.00002 * np.sin(y * X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def _gcj02_to_wgs84_approx(lon: Array, lat: Array) -> tuple[Array, Array]:
    """The published one-step GCJ-02 -> WGS84 (first guess for the iteration)."""
    dlon, dlat = _gcj02_delta(lon, lat)
    return lon - dlon, lat - dlat


# --- iterative inverses ----------------------------------------------------------------------------------------


def _residual_m(dlon: Array, dlat: Array, lat: Array) -> Array:
    """Length in metres of a small lon/lat difference near latitude lat (local equirectangular)."""
    return np.hypot(dlon * np.cos(np.radians(lat)), dlat) * _METRES_PER_DEGREE


def _invert(forward: Kernel, lon: Array, lat: Array, guess: tuple[Array, Array]) -> tuple[Array, Array]:
    """Solve forward(x, y) == (lon, lat) by fixed-point refinement of a first guess, point by point."""
    x, y = guess[0].copy(), guess[1].copy()
    active = np.arange(x.size)
    for _ in range(INVERSE_MAX_ITERATIONS):
        fx, fy = forward(x[active], y[active])
        ex, ey = fx - lon[active], fy - lat[active]
        unsettled = _residual_m(ex, ey, lat[active]) >= INVERSE_TOLERANCE_M  # NaN settles at once
        active = active[unsettled]
        if active.size == 0:
            break
        x[active] -= ex[unsettled]
        y[active] -= ey[unsettled]
    return x, y


def _gcj02_to_wgs84(lon: Array, lat: Array) -> tuple[Array, Array]:
    """Iterative GCJ-02 -> WGS84."""
    return _invert(_wgs84_to_gcj02, lon, lat, _gcj02_to_wgs84_approx(lon, lat))


def _bd09_to_gcj02(lon: Array, lat: Array) -> tuple[Array, Array]:
    """Iterative BD-09 -> GCJ-02."""
    return _invert(_gcj02_to_bd09, lon, lat, _bd09_to_gcj02_approx(lon, lat))


def _bd09_to_wgs84(lon: Array, lat: Array) -> tuple[Array, Array]:
    """Iterative BD-09 -> WGS84, solving the composed forward transform directly."""
    return _invert(_wgs84_to_bd09, lon, lat, _gcj02_to_wgs84_approx(*_bd09_to_gcj02_approx(lon, lat)))


# --- public point transforms -----------------------------------------------------------------------------------


def _out_of_china(lon: Array, lat: Array) -> npt.NDArray[np.bool_]:
    """Mask of points outside the published rough bounding box of China."""
    min_lon, min_lat, max_lon, max_lat = CHINA_BBOX
    return (lon < min_lon) | (lon > max_lon) | (lat < min_lat) | (lat > max_lat)


def _restore(values: Array, shape: tuple[int, ...]) -> Coords:
    """Give back a float for scalar input, else an array of the input's (broadcast) shape."""
    return float(values[0]) if shape == () else values.reshape(shape)


def _apply(kernel: Kernel, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Coords, Coords]:
    """Run a kernel on the points inside China and pass the others through, keeping the input's shape."""
    lon_b, lat_b = np.broadcast_arrays(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    x, y = lon_b.flatten(), lat_b.flatten()
    inside = ~_out_of_china(x, y)
    if inside.all():
        x, y = kernel(x, y)
    elif inside.any():
        x[inside], y[inside] = kernel(x[inside], y[inside])
    return _restore(x, lon_b.shape), _restore(y, lon_b.shape)


def out_of_china(lon: npt.ArrayLike, lat: npt.ArrayLike) -> bool | npt.NDArray[np.bool_]:
    """True where a point lies outside China's rough bounding box, where no transform shifts it."""
    mask = _out_of_china(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return bool(mask) if mask.ndim == 0 else mask


def wgs84_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Coords, Coords]:
    """Convert WGS84 lon/lat to GCJ-02 (closed form)."""
    return _apply(_wgs84_to_gcj02, lon, lat)


def gcj02_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Coords, Coords]:
    """Convert GCJ-02 lon/lat to WGS84 (iterative, within INVERSE_TOLERANCE_M)."""
    return _apply(_gcj02_to_wgs84, lon, lat)


def gcj02_to_bd09(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Coords, Coords]:
    """Convert GCJ-02 lon/lat to BD-09 (closed form)."""
    return _apply(_gcj02_to_bd09, lon, lat)


def bd09_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Coords, Coords]:
    """Convert BD-09 lon/lat to GCJ-02 (iterative, within INVERSE_TOLERANCE_M)."""
    return _apply(_bd09_to_gcj02, lon, lat)


def wgs84_to_bd09(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Coords, Coords]:
    """Convert WGS84 lon/lat to BD-09 (closed form, through GCJ-02)."""
    return _apply(_wgs84_to_bd09, lon, lat)


def bd09_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Coords, Coords]:
    """Convert BD-09 lon/lat to WGS84 (iterative, within INVERSE_TOLERANCE_M)."""
    return _apply(_bd09_to_wgs84, lon, lat)


def _same_crs(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Coords, Coords]:
    """Identity with the same return types as the real transforms."""
    return _apply(lambda x, y: (x, y), lon, lat)


Transform: TypeAlias = Callable[[npt.ArrayLike, npt.ArrayLike], tuple[Coords, Coords]]

_TRANSFORMS: dict[tuple[str, str], Transform] = {
    ("wgs84", "gcj02"): wgs84_to_gcj02,
    ("gcj02", "wgs84"): gcj02_to_wgs84,
    ("gcj02", "bd09"): gcj02_to_bd09,
    ("bd09", "gcj02"): bd09_to_gcj02,
    ("wgs84", "bd09"): wgs84_to_bd09,
    ("bd09", "wgs84"): bd09_to_wgs84,
}


def get_transform(src: str, dst: str) -> Transform:
    """Return the lon/lat transform between two CRS names or aliases; raises ValueError for unknown names."""
    pair = (parse_crs(src), parse_crs(dst))
    return _same_crs if pair[0] == pair[1] else _TRANSFORMS[pair]


def transform_coords(lon: npt.ArrayLike, lat: npt.ArrayLike, src: str, dst: str) -> tuple[Coords, Coords]:
    """Convert lon/lat (scalars or arrays) from CRS src to CRS dst."""
    return get_transform(src, dst)(lon, lat)


# --- geometries and GeoJSON -------------------------------------------------------------------------------------


def transform_geometry(geom: Any, src: str, dst: str) -> Any:
    """Convert a shapely geometry (or array of geometries) from src to dst in one vectorised call; Z is kept."""
    fn = get_transform(src, dst)

    def xy(x: Array, y: Array, *z: Array) -> tuple[Array, ...]:
        new_x, new_y = fn(x, y)
        return (new_x, new_y, *z)

    return shapely.transform(geom, xy, include_z=None, interleaved=False)


def _is_position(coords: Sequence[Any]) -> bool:
    """True for a GeoJSON position ([lon, lat] or [lon, lat, z, ...]), False for a list of them."""
    if not isinstance(coords, list | tuple):
        raise ValueError(f"malformed GeoJSON coordinates: {coords!r}")
    if coords and isinstance(coords[0], int | float):
        if len(coords) < 2:
            raise ValueError(f"GeoJSON position needs at least two numbers: {coords!r}")
        return True
    return False


def _iter_positions(coords: Sequence[Any]) -> Iterator[Sequence[float]]:
    """Yield every position of a nested GeoJSON coordinates array in document order."""
    if _is_position(coords):
        yield coords
        return
    for item in coords:
        yield from _iter_positions(item)


def _replace_positions(coords: Sequence[Any], new_xy: Iterator[tuple[float, float]]) -> list[Any]:
    """Rebuild a nested coordinates array taking lon/lat from new_xy in document order; extra values are kept."""
    if _is_position(coords):
        return [*next(new_xy), *coords[2:]]
    return [_replace_positions(item, new_xy) for item in coords]


def _copy_members(obj: dict[str, Any], skip: str) -> dict[str, Any]:
    """Deep-copy a GeoJSON object's members except `skip` and the now stale `bbox`."""
    return {key: copy.deepcopy(value) for key, value in obj.items() if key not in (skip, "bbox")}


def _member_list(obj: dict[str, Any], key: str) -> list[Any]:
    """Return a GeoJSON object's array member, or raise ValueError if it is missing or not an array."""
    value = obj.get(key)
    if not isinstance(value, list | tuple):
        raise ValueError(f"GeoJSON {obj.get('type')} needs a {key!r} array")
    return list(value)


def _copy_geojson(obj: dict[str, Any], geometries: list[dict[str, Any]]) -> dict[str, Any]:
    """Copy a GeoJSON object, collecting its coordinate-bearing geometry copies (coordinates not yet copied)."""
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind == "FeatureCollection":
        features = [_copy_geojson(f, geometries) for f in _member_list(obj, "features")]
        return {**_copy_members(obj, "features"), "features": features}
    if kind == "Feature":
        geometry = obj.get("geometry")
        copied = None if geometry is None else _copy_geojson(geometry, geometries)
        return {**_copy_members(obj, "geometry"), "geometry": copied}
    if kind == "GeometryCollection":
        members = [_copy_geojson(g, geometries) for g in _member_list(obj, "geometries")]
        return {**_copy_members(obj, "geometries"), "geometries": members}
    if kind in _COORDINATE_TYPES:
        geometry = {**_copy_members(obj, "coordinates"), "coordinates": _member_list(obj, "coordinates")}
        geometries.append(geometry)
        return geometry
    raise ValueError(f"not a GeoJSON geometry, Feature or FeatureCollection: type {kind!r}")


def transform_geojson(obj: dict[str, Any], src: str, dst: str) -> dict[str, Any]:
    """Return a converted copy of a GeoJSON geometry, Feature or FeatureCollection; other members are kept.

    All positions are converted in one vectorised call. Null geometries stay null; `bbox` members are dropped
    because they would be stale.
    """
    fn = get_transform(src, dst)
    geometries: list[dict[str, Any]] = []
    result = _copy_geojson(obj, geometries)
    positions = [p for g in geometries for p in _iter_positions(g["coordinates"])]
    lon = np.fromiter((p[0] for p in positions), dtype=np.float64, count=len(positions))
    lat = np.fromiter((p[1] for p in positions), dtype=np.float64, count=len(positions))
    new_lon, new_lat = fn(lon, lat)
    new_xy = zip(np.asarray(new_lon).tolist(), np.asarray(new_lat).tolist(), strict=True)
    for geometry in geometries:
        geometry["coordinates"] = _replace_positions(geometry["coordinates"], new_xy)
    return result
