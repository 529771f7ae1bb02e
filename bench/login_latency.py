"""Login and simple-read latency under concurrency, against a real gunicorn on loopback.

Starts its own gunicorn (on 127.0.0.1, a free port) over the configured database (run `make run` or
`gridmarket db upgrade && gridmarket seed-demo` first), sends a bounded number of requests from
concurrent client threads, prints p50/p95/p99 and throughput, and stops the server it started.

    .venv/bin/python bench/login_latency.py [--concurrency 20] [--logins 200] [--reads 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USERS = [f"am_{d}_{o}_{k}" for d in ("430102", "430103", "430104", "430105", "430111") for o in range(1, 8)
         for k in range(1, 4)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_json(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def get(url: str, headers: dict) -> int:
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()
        return resp.status


def percentiles(samples: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": round(qs[49] * 1000, 1), "p95_ms": round(qs[94] * 1000, 1), "p99_ms": round(qs[98] * 1000, 1),
            "max_ms": round(max(samples) * 1000, 1)}


def timed(fn, *args):  # noqa: ANN001, ANN201
    t = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t, result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--password", default="Gm@2026demo")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GM_LOG_LEVEL": "WARNING"}
    env.setdefault("GM_SECRET_KEY", (ROOT / ".run" / "secret_key").read_text().strip()
                   if (ROOT / ".run" / "secret_key").exists() else "bench-secret-bench-secret-bench-secret")
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "--workers", str(args.workers), "--threads", "4",
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "api:create_app()"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        for _ in range(100):
            try:
                get(f"{base}/healthz", {})
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit("server did not start")

        def login(i: int) -> float:
            elapsed, (status, _) = timed(post_json, f"{base}/api/v1/auth/login",
                                         {"username": USERS[i % len(USERS)], "password": args.password})
            if status != 200:
                raise RuntimeError(f"login failed with {status}")
            return elapsed

        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            login_samples = list(pool.map(login, range(args.logins)))
        login_wall = time.perf_counter() - started

        _, (_, tokens) = timed(post_json, f"{base}/api/v1/auth/login", {"username": "bl_430102",
                                                                        "password": args.password})
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}

        def read(i: int) -> float:
            path = ("/api/v1/me", "/api/v1/users?page_size=20", "/api/v1/orgs?page_size=20")[i % 3]
            elapsed, _ = timed(get, base + path, headers)
            return elapsed

        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            read_samples = list(pool.map(read, range(args.reads)))
        read_wall = time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    report = {
        "machine": f"{os.cpu_count()} cores",
        "gunicorn_workers": args.workers,
        "concurrency": args.concurrency,
        "login": {"requests": args.logins, **percentiles(login_samples),
                  "per_second": round(args.logins / login_wall, 1)},
        "reads(me, users page, orgs page)": {"requests": args.reads, **percentiles(read_samples),
                                             "per_second": round(args.reads / read_wall, 1)},
    }
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
