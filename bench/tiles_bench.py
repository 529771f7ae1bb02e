"""Feature and tile server vs tipg: throughput and latency on the same database, in the same run, loopback only.

Needs a city-scale database (never the dev DB, never a test DB), e.g.:

    psql -d postgres -c 'CREATE DATABASE gridmarket_bench OWNER gridmarket'
    export DATABASE_URL=postgresql://gridmarket:gridmarket@127.0.0.1:5432/gridmarket_bench
    .venv/bin/gridmarket db upgrade && .venv/bin/gridmarket seed-demo --scale city   # ~2,000,000 customers
    .venv/bin/python bench/tiles_bench.py --duration 20 --concurrency 1 50

What it does:
- installs tipg (PyPI `tipg`) into its own venv `.bench/tipg-venv` if missing (not a project dependency) and
  serves it with uvicorn on 127.0.0.1, connected as the database owner (a superuser: tipg has no row-level
  security - it sees every row, while our app runs as the NOBYPASSRLS app role under RLS);
- serves our app with gunicorn exactly as scripts/run.sh does (4 workers x 4 threads), on 127.0.0.1;
- for each row, each concurrency and each cache state, hammers both servers for `--duration` seconds each, in
  `--slices` alternating slices (ours, tipg, ours, tipg, ...: the shared machine's load drifts, so both see the
  same conditions on average), and records requests/s, p50 and p99 over the pooled slices;
  cold = our Redis tile cache off (GM_TILES_CACHE=0: every tile rendered by PostGIS),
  warm = cache on and pre-warmed (its keys are only `gm:tiles:<bench db>:*`; only those are deleted). tipg has no
  tile cache, so its cold and warm runs differ only by PostgreSQL's own buffers;
- prints a JSON report and a Markdown table (ratio = ours / tipg for throughput; p99 likewise) for docs/PERFORMANCE.md.

Rows: items with a ~1 km2 bbox and limit=100, one item by id, customer tiles at z10 and z14 over central Changsha,
grid tiles at z12, a heatmap at city extent (ours only: tipg has no H3 heatmap).
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
CITY = "111.85,27.85,114.25,28.70"
TIPG_VENV = ROOT / ".bench" / "tipg-venv"
ITEM_PROPS = ("name,customer_no,kind,category,profile_type,industry,phone_mask,id_number_mask,uscc_mask,"
              "location_source,grid_id,org_id,owner_user_id,status,updated_at")
TILE_PROPS_Z14 = "kind,category,profile_type,grid_id,status"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, headers: dict | None = None, body: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 1 << z
    lat_r = math.radians(lat)
    return z, int((lon + 180) / 360 * n), int((1 - math.log(math.tan(lat_r) + 1 / math.cos(lat_r)) / math.pi) / 2 * n)


def wait_up(url: str, proc: subprocess.Popen, what: str) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            if request(url)[0] < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{what} did not start")


def start_ours(port: int, cache: bool, workers: int, threads: int) -> subprocess.Popen:
    env = {**os.environ, "GM_LOG_LEVEL": "WARNING", "GM_TILES_CACHE": "1" if cache else "0"}
    env.pop("GM_APP_DATABASE_URL", None)
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "--workers", str(workers), "--threads", str(threads),
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "api:create_app()"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_up(f"http://127.0.0.1:{port}/healthz", server, "gunicorn")
    return server


def ensure_tipg() -> Path:
    uvicorn = TIPG_VENV / "bin" / "uvicorn"
    if not uvicorn.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TIPG_VENV)], check=True)
        subprocess.run([str(TIPG_VENV / "bin" / "pip"), "install", "-q", "tipg==1.6.1", "uvicorn"], check=True)
    return uvicorn


def start_tipg(port: int, workers: int, database_url: str) -> subprocess.Popen:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           "DATABASE_URL": database_url, "TIPG_DB_SCHEMAS": '["public"]',
           "TIPG_DB_TABLES": '["public.customers", "public.grids"]', "TIPG_MAX_FEATURES_PER_QUERY": "10000",
           "TIPG_DB_MAX_CONN_SIZE": "10",
           # without these, tipg's catalog (refreshed every TIPG_CATALOG_TTL = 300 s, per worker) computes the extent
           # and the min/max of every datetime column over 2 million rows; under load the refreshes pile up and
           # stall it (seen in a first run). Ours caches extents per scope (GM_TILES_STATS_TTL) instead.
           "TIPG_DB_SPATIAL_EXTENT": "false", "TIPG_DB_DATETIME_EXTENT": "false"}
    server = subprocess.Popen(
        [str(ensure_tipg()), "tipg.main:app", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
         "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_up(f"http://127.0.0.1:{port}/collections", server, "tipg")
    return server


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
            try:
                status, _ = request(base + paths[i % len(paths)], headers)
            except OSError:
                status = 599
            local.append(time.perf_counter() - started)
            if status >= 400:
                with lock:
                    errors[0] += 1
            i += 1
        with lock:
            samples.extend(local)

    threads = [threading.Thread(target=worker, args=(k * 7,)) for k in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {"samples": samples, "elapsed": elapsed, "errors": errors[0]}


def merge(slices: list[dict]) -> dict:
    """Pool the latencies of a row's slices; throughput = requests / time spent in the slices."""
    samples = [v for s in slices for v in s["samples"]]
    elapsed = sum(s["elapsed"] for s in slices)
    if not samples:
        return {"requests": 0, "per_second": 0.0, "errors": 0, "p50_ms": None, "p99_ms": None}
    qs = statistics.quantiles(samples, n=100, method="inclusive") if len(samples) > 1 else [samples[0]] * 99
    return {"requests": len(samples), "per_second": round(len(samples) / elapsed, 1),
            "errors": sum(s["errors"] for s in slices), "p50_ms": round(qs[49] * 1000, 1),
            "p99_ms": round(qs[98] * 1000, 1)}


def sample_ids(database_url: str, n: int = 500) -> list[int]:
    out = subprocess.run(["psql", database_url, "-tAc",
                          f"SELECT id FROM customers TABLESAMPLE SYSTEM (1) REPEATABLE (7) LIMIT {n}"],
                         capture_output=True, text=True, check=True).stdout.split()
    ids = [int(v) for v in out]
    random.Random(7).shuffle(ids)
    return ids


def rows(ids: list[int]) -> dict[str, tuple[list[str], list[str] | None]]:
    """Row -> (our paths, tipg paths or None)."""
    lon, lat = CENTRE
    dx, dy = 0.5 / (111.32 * math.cos(math.radians(lat))), 0.5 / 110.57  # +-500 m: a ~1 km2 box
    bbox = f"{lon - dx:.6f},{lat - dy:.6f},{lon + dx:.6f},{lat + dy:.6f}"
    z10, z14, z12 = tile_of(lon, lat, 10), tile_of(lon, lat, 14), tile_of(lon, lat, 12)
    tp = "/collections/public.customers/tiles/WebMercatorQuad"
    return {
        "items bbox 1 km², limit=100": (
            [f"/ogc/collections/customers/items?bbox={bbox}&limit=100"],
            [f"/collections/public.customers/items?bbox={bbox}&limit=100&properties={ITEM_PROPS}"]),
        "item by id": ([f"/ogc/collections/customers/items/{i}" for i in ids],
                       [f"/collections/public.customers/items/{i}?properties={ITEM_PROPS}" for i in ids]),
        "customer tile z10": ([f"/tiles/customers/{z10[0]}/{z10[1]}/{z10[2]}.mvt"],
                              [f"{tp}/{z10[0]}/{z10[1]}/{z10[2]}?properties=category"]),
        "customer tile z14": ([f"/tiles/customers/{z14[0]}/{z14[1]}/{z14[2]}.mvt"],
                              [f"{tp}/{z14[0]}/{z14[1]}/{z14[2]}?properties={TILE_PROPS_Z14}"]),
        "grid tile z12": ([f"/tiles/grids/{z12[0]}/{z12[1]}/{z12[2]}.mvt"],
                          [f"/collections/public.grids/tiles/WebMercatorQuad/{z12[0]}/{z12[1]}/{z12[2]}"
                           "?properties=code,name,kind,level,business_line,status,org_id,parent_id"]),
        "heatmap city extent (GeoJSON, res 7)": ([f"/heatmaps/customers?bbox={CITY}&zoom=10"], None),
    }


def flush_our_cache(redis_url: str, database: str) -> int:
    import redis

    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(f"gm:tiles:{database}:*", count=1000))
    for i in range(0, len(keys), 500):
        r.delete(*keys[i:i + 500])
    return len(keys)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per row, concurrency and server")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--workers", type=int, default=int(os.environ.get("GM_WEB_WORKERS", "4")))
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--tipg-workers", type=int, default=4)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="Gm@2026demo")
    parser.add_argument("--only", nargs="*", default=None, help="row names to run (substring match)")
    parser.add_argument("--no-tipg", action="store_true")
    parser.add_argument("--slices", type=int, default=4, help="alternating slices per row (ours/tipg interleaved)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # `kill <pid>` still stops both servers (finally below)

    database_url = os.environ.get("DATABASE_URL", "")
    database = database_url.rsplit("/", 1)[-1].split("?")[0]
    if not database or database == "gridmarket" or "test" in database:
        raise SystemExit("point DATABASE_URL at a bench database (not the dev or a test database)")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    ids = sample_ids(database_url)
    table = rows(ids)
    if args.only:
        table = {k: v for k, v in table.items() if any(s in k for s in args.only)}
    report: dict = {"machine": f"{os.cpu_count()} cores", "database": database, "duration_s": args.duration,
                    "ours": f"gunicorn {args.workers} workers x {args.threads} threads, user {args.user} (RLS)",
                    "tipg": f"tipg 1.6.1, uvicorn {args.tipg_workers} workers, owner role (no RLS)", "rows": {}}
    tipg = None
    if not args.no_tipg:
        tipg_port = free_port()
        tipg = start_tipg(tipg_port, args.tipg_workers, database_url)
    try:
        for cache in (False, True):
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            flush_our_cache(redis_url, database)
            server = start_ours(port, cache, args.workers, args.threads)
            try:
                status, body = request(f"{base}/api/v1/auth/login", body={"username": args.user,
                                                                          "password": args.password})
                if status != 200:
                    raise SystemExit(f"login failed: {status} {body[:200]!r}")
                headers = {"Authorization": f"Bearer {json.loads(body)['access_token']}"}
                state = "warm" if cache else "cold"
                for name, (ours, theirs) in table.items():
                    targets = [("ours", base, headers, ours)]
                    if tipg is not None and theirs is not None:
                        targets.append(("tipg", f"http://127.0.0.1:{tipg_port}", {}, theirs))
                    for who, root, hdrs, paths in targets:
                        for path in paths[:50]:  # warm our tile cache / PostgreSQL buffers alike
                            status, data = request(root + path, hdrs)
                            if status >= 400:
                                print(f"  {who} {path} -> {status} {data[:200]!r}", file=sys.stderr)
                    for c in args.concurrency:
                        # interleaved slices (ours, tipg, ours, tipg, ...): the shared machine's load drifts, so
                        # both servers see the same conditions on average
                        parts: dict[str, list[dict]] = {}
                        for _ in range(args.slices):
                            for who, root, hdrs, paths in targets:
                                parts.setdefault(who, []).append(
                                    run_row(paths, root, hdrs, c, args.duration / args.slices))
                        for who, slices in parts.items():
                            label = f"{name} | {state} | c={c} | {who}"
                            report["rows"][label] = merge(slices)
                            print(label, report["rows"][label], file=sys.stderr, flush=True)
            finally:
                stop(server)
    finally:
        if tipg is not None:
            stop(tipg)
        flush_our_cache(redis_url, database)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    lines = ["| row | cache | c | ours req/s | tipg req/s | ratio | ours p50 | ours p99 | tipg p50 | tipg p99 | "
             "p99 ratio |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, ours in report["rows"].items():
        name, state, c, who = label.split(" | ")
        if who != "ours":
            continue
        theirs = report["rows"].get(f"{name} | {state} | {c} | tipg")
        if theirs:
            ratio = f"{ours['per_second'] / max(theirs['per_second'], 0.01):.2f}"
            p99 = f"{ours['p99_ms'] / max(theirs['p99_ms'], 0.01):.2f}"
            t = (f"{theirs['per_second']}", f"{theirs['p50_ms']}", f"{theirs['p99_ms']}")
        else:
            ratio = p99 = "–"
            t = ("–", "–", "–")
        lines.append(f"| {name} | {state} | {c[2:]} | {ours['per_second']} | {t[0]} | {ratio} | {ours['p50_ms']} | "
                     f"{ours['p99_ms']} | {t[1]} | {t[2]} | {p99} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
