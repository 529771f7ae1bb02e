"""Feature and tile server throughput and latency, against a real gunicorn on loopback.

Starts gunicorn over the configured database (DATABASE_URL; load data first, e.g. `gridmarket seed-demo --scale
city` for the issue's 2,000,000 customers / 20,000 grids), logs in, and runs each row for a fixed duration at each
concurrency, twice: cold (GM_TILES_CACHE=0, every tile built by PostGIS) and warm (Redis tile cache on, pre-warmed).
Prints one JSON report (requests/s, p50/p95/p99) to paste into docs/PERFORMANCE.md.

    .venv/bin/python bench/tiles_bench.py [--duration 10] [--concurrency 1 50] [--user admin]

Rows: items with a ~1 km2 bbox and limit=100, one item by id, customer tiles at z10 and z14 over central Changsha,
grid tiles at z12. (The tipg comparison asked for by the issue is not part of this script yet.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CENTRE = (112.9823, 28.1949)  # 五一广场, central Changsha


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, headers: dict | None = None, body: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def tile_of(lon: float, lat: float, z: int) -> str:
    n = 1 << z
    lat_r = math.radians(lat)
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.log(math.tan(lat_r) + 1 / math.cos(lat_r)) / math.pi) / 2 * n)
    return f"{z}/{x}/{y}"


def start_server(port: int, cache: bool, workers: int) -> subprocess.Popen:
    env = {**os.environ, "GM_LOG_LEVEL": "WARNING", "GM_TILES_CACHE": "1" if cache else "0"}
    env.setdefault("GM_SECRET_KEY", (ROOT / ".run" / "secret_key").read_text().strip()
                   if (ROOT / ".run" / "secret_key").exists() else "bench-secret-bench-secret-bench-secret")
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "--workers", str(workers), "--threads", "8",
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "api:create_app()"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(150):
        try:
            if request(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("server did not start")


def run_row(paths: list[str], base: str, headers: dict, concurrency: int, duration: float) -> dict:
    """Every thread requests paths round-robin until the deadline; latencies of all requests are pooled."""
    samples: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + duration

    def worker(offset: int) -> None:
        i = offset
        local: list[float] = []
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status, _ = request(base + paths[i % len(paths)], headers)
            local.append(time.perf_counter() - started)
            if status >= 400:
                errors[0] += 1
            i += 1
        with lock:
            samples.extend(local)

    threads = [threading.Thread(target=worker, args=(k * 7,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    qs = statistics.quantiles(samples, n=100, method="inclusive") if len(samples) > 1 else [samples[0]] * 99
    return {"requests": len(samples), "per_second": round(len(samples) / duration, 1), "errors": errors[0],
            "p50_ms": round(qs[49] * 1000, 1), "p95_ms": round(qs[94] * 1000, 1), "p99_ms": round(qs[98] * 1000, 1)}


def rows(base: str, headers: dict) -> dict[str, list[str]]:
    lon, lat = CENTRE
    dx, dy = 0.5 / (111.32 * math.cos(math.radians(lat))), 0.5 / 110.57  # +-500 m: a ~1 km2 box
    bbox = f"{lon - dx:.6f},{lat - dy:.6f},{lon + dx:.6f},{lat + dy:.6f}"
    status, body = request(f"{base}/ogc/collections/customers/items?limit=1000&properties=name", headers)
    ids = [f["id"] for f in json.loads(body)["features"]] if status == 200 else []
    random.Random(7).shuffle(ids)
    return {
        "items bbox 1 km2, limit=100": [f"/ogc/collections/customers/items?bbox={bbox}&limit=100"],
        "item by id": [f"/ogc/collections/customers/items/{i}" for i in ids[:500]] or ["/ogc/collections/customers"],
        "customer tile z10": [f"/tiles/customers/{tile_of(lon, lat, 10)}.mvt"],
        "customer tile z14": [f"/tiles/customers/{tile_of(lon, lat, 14)}.mvt"],
        "grid tile z12": [f"/tiles/grids/{tile_of(lon, lat, 12)}.mvt"],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per row and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="Gm@2026demo")
    args = parser.parse_args()

    report: dict = {"machine": f"{os.cpu_count()} cores", "gunicorn_workers": args.workers,
                    "duration_s": args.duration, "user": args.user, "rows": {}}
    for cache in (False, True):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(port, cache, args.workers)
        try:
            status, body = request(f"{base}/api/v1/auth/login", body={"username": args.user,
                                                                      "password": args.password})
            if status != 200:
                raise SystemExit(f"login failed: {status} {body[:200]!r}")
            headers = {"Authorization": f"Bearer {json.loads(body)['access_token']}"}
            for name, paths in rows(base, headers).items():
                if cache:
                    for path in paths:
                        request(base + path, headers)  # warm the tile cache
                for c in args.concurrency:
                    label = f"{name} [{'warm' if cache else 'cold'}, c={c}]"
                    report["rows"][label] = run_row(paths, base, headers, c, args.duration)
                    print(label, report["rows"][label], file=sys.stderr)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
