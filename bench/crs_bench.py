"""Throughput of the WGS84 / GCJ-02 / BD-09 transforms in geo_core.crs on one batch of points over China.

Draws N random points (fixed seed) in lon 73..135, lat 18..53, times each forward and inverse transform on the
whole batch (best of R runs), prints points per second and the largest round-trip residual in metres.

    .venv/bin/python bench/crs_bench.py [--points 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np

from geo_core import crs

EARTH_RADIUS_M = 6371008.8
PAIRS = (("wgs84", "gcj02"), ("gcj02", "bd09"), ("wgs84", "bd09"))


def haversine_m(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Great-circle distance in metres on the mean Earth sphere."""
    lon1, lat1, lon2, lat2 = (np.radians(v) for v in (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


def best_time(fn: Callable[[np.ndarray, np.ndarray], tuple], lon: np.ndarray, lat: np.ndarray,
              repeat: int) -> tuple[float, tuple]:
    """Best wall time of `repeat` runs of fn(lon, lat), with the last result."""
    best, result = float("inf"), ()
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(lon, lat)
        best = min(best, time.perf_counter() - start)
    return best, result


def run(points: int, repeat: int) -> None:
    """Time every transform pair both ways and print one line per direction."""
    rng = np.random.default_rng(20260)
    lon, lat = rng.uniform(73.0, 135.0, points), rng.uniform(18.0, 53.0, points)
    print(f"{points:,} points, best of {repeat}; numpy {np.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}")
    for src, dst in PAIRS:
        forward_s, image = best_time(crs.get_transform(src, dst), lon, lat, repeat)
        inverse_s, back = best_time(crs.get_transform(dst, src), *image, repeat)
        residual = haversine_m(lon, lat, *back)
        print(f"{src:>5} -> {dst:<5} forward {points / forward_s:>12,.0f} points/s ({forward_s * 1000:7.1f} ms)   "
              f"inverse {points / inverse_s:>12,.0f} points/s ({inverse_s * 1000:7.1f} ms)   "
              f"round trip max {residual.max():.6f} m, p99 {np.quantile(residual, 0.99):.6f} m")


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    run(args.points, args.repeat)


if __name__ == "__main__":
    main()
