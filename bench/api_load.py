"""Admin API load: POST /api/v1/investigate then GET status calls from many clients (issue #13's benchmark).

The app runs under uvicorn in a child process on loopback (its own interpreter, so the load
generator does not share its GIL; ``--servers N``: N such processes on one port with SO_REUSEPORT,
as replicas behind a Service), with a runtime whose worker is NOT started: investigations are
created and queued but not run. Each POST carries its own Idempotency-Key; a tenth of them are sent
twice (a client retry), which must answer the same investigation. The rate limit is off
(PM_API_RATE_PER_S=0): this measures the API, not the limiter.

Prints p50/p95/p99/max latency for POSTs and GETs (target p99 < 50 ms for GETs), errors (target 0),
whether every accepted investigation exists exactly once, and the app's CPU per request. With 50
closed-loop clients the latency is mostly queueing: by Little's law the mean latency is at least
clients / throughput, so it is printed beside the p50 (a p99 under 50 ms at 50 clients needs some
2,000+ GETs/s from the app; on a shared 2-core machine the app's CPU per GET is the figure to watch).

Usage:
    .venv/bin/python bench/api_load.py [--posts 1000] [--gets 10000] [--clients 50] [--servers 2]
    .venv/bin/python bench/api_load.py --postgres    (a fresh database on 127.0.0.1:5432, dropped after)
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/<empty db> .venv/bin/python bench/api_load.py
(SQLite under a temporary PM_HOME when DATABASE_URL is unset.)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.webhook_storm import _cpu_s, _free_port, _percentile  # noqa: E402

API_KEY = "load-key"


def serve(port: int) -> None:
    """Child process: migrate, build the runtime (no worker), serve until killed.

    The listening socket has SO_REUSEPORT, so ``--servers N`` children share the port and the kernel
    spreads connections over them, as a Service spreads them over a Deployment's replicas.
    """
    import gc
    import json
    import signal
    import socket

    import uvicorn

    from bot.http.app import create_app
    from bot.http.server import freeze_startup_objects
    from bot.http.settings import load_http_settings
    from pipeline.runtime import build_runtime
    from store.config import load_settings
    from store.db import upgrade

    settings = load_settings()
    upgrade(settings.effective_database_url)
    runtime = build_runtime(settings)
    app = create_app(settings, runtime, load_http_settings())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    pauses: list[float] = []
    started: list[float] = []

    def watch(phase: str, info: dict[str, int]) -> None:  # full collections: the pauses every client waits on
        if info["generation"] == 2:
            if phase == "start":
                started[:] = [time.perf_counter()]
            elif started:
                pauses.append(time.perf_counter() - started[0])

    if not os.environ.get("PM_BENCH_NO_FREEZE"):
        freeze_startup_objects()  # as `pm serve` does
    gc.callbacks.append(watch)
    ready = os.environ.get("PM_BENCH_READY")
    if ready:
        Path(ready).touch()  # built and about to listen: the parent waits for every server
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the handler that was
    # there before it: with the default one the process died before writing its figures (so earlier
    # runs printed "0 full collections" whatever happened). This handler lets the finally clause run.
    signal.signal(signal.SIGTERM, lambda *_a: sys.exit(0))
    try:
        server.run(sockets=[sock])
    finally:
        if ready:
            Path(ready).with_suffix(".gc").write_text(json.dumps(pauses))
            cache = app.state.api.status_cache
            if cache is not None:
                Path(ready).with_suffix(".cache").write_text(json.dumps([cache.hits, cache.misses]))


async def _raw_gets(port: int, paths: list[str], clients: int, lat: list[float], errors: dict[str, int]) -> None:
    """GET every path over ``clients`` keep-alive HTTP/1.1 connections from one asyncio loop.

    A load generator that costs ~0.05 ms of CPU per request, so the latency measured is the app's
    (and the machine's), not 50 Python threads of httpx fighting over one GIL (~1-2 ms of client CPU
    per request, which on 2 shared cores capped the old runs at ~250 GETs/s with the app mostly idle).
    """
    import asyncio

    todo = iter(paths)

    async def one_client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for path in todo:
                t0 = time.perf_counter()
                writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {API_KEY}\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                lat.append(time.perf_counter() - t0)
                if status >= 400:
                    errors[str(status)] = errors.get(str(status), 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(one_client() for _ in range(clients)))


def _db_backends_cpu(since: dict[int, float] | None = None) -> Any:
    """PostgreSQL (on this machine): CPU seconds of the backends serving DATABASE_URL's database, per pid
    (``since=None``); else the CPU those backends used since ``since`` (None when unknown: SQLite, or a
    server elsewhere). The GETs' database cost runs on the same 2 cores as the app and the client."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql") or not any(h in url for h in ("@127.0.0.1", "@localhost")):
        return None if since is not None else {}
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    with psycopg.connect(host=parsed.host, port=parsed.port or 5432, user=parsed.username or "postgres",
                         dbname="postgres", autocommit=True) as conn:
        pids = [int(r[0]) for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (parsed.database,)).fetchall()]
    now: dict[int, float] = {}
    for pid in pids:
        try:
            now[pid] = _cpu_s(pid)
        except OSError:  # ended, or not readable here
            continue
    if since is None:
        return now
    if not now and pids:
        return None
    return sum(cpu - since.get(pid, 0.0) for pid, cpu in now.items())


def _summary(name: str, values: list[float]) -> str:
    ms = sorted(x * 1000 for x in values)
    return (f"  {name:<6} n={len(ms):<6} p50 {_percentile(ms, .5):.1f}  p95 {_percentile(ms, .95):.1f}  "
            f"p99 {_percentile(ms, .99):.1f}  max {ms[-1]:.1f}  mean {statistics.fmean(ms):.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--gets", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--get-client", choices=("raw", "httpx"), default="raw",
                        help="raw: keep-alive HTTP/1.1 over asyncio (default); httpx: a thread per client")
    parser.add_argument("--servers", type=int, default=1,
                        help="app processes sharing the port (SO_REUSEPORT), like replicas behind a Service")
    parser.add_argument("--status-cache-ms", type=int, default=0,
                        help="PM_API_STATUS_CACHE_MS of the app (default 0: every GET reads the database)")
    parser.add_argument("--postgres", action="store_true",
                        help="create a fresh PostgreSQL database on 127.0.0.1:5432 (user postgres) and drop it after")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if args.postgres:
        import uuid

        import psycopg

        name = f"pm_bench_{uuid.uuid4().hex[:10]}"
        admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        os.environ["DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        try:
            return _run(args)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return _run(args)


def _run(args: argparse.Namespace) -> int:

    home = tempfile.mkdtemp(prefix="pm-apiload-")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "RABBITMQ_URL", "PM_WORLD", "MCP_CONFIG")}
    env.update(PM_HOME=home, API_KEYS=f"{API_KEY}:operator", LOG_LEVEL="WARNING", PM_API_RATE_PER_S="0",
               PM_API_STATUS_CACHE_MS=str(args.status_cache_ms))
    port = _free_port()
    children = [subprocess.Popen([sys.executable, __file__, "--serve", str(port)], cwd=ROOT,
                                 env={**env, "PM_BENCH_READY": str(Path(home) / f"ready-{i}")})
                for i in range(max(1, args.servers))]
    base = f"http://127.0.0.1:{port}"
    lock = threading.Lock()
    local = threading.local()
    lat: dict[str, list[float]] = {"POST": [], "GET": []}
    errors: dict[str, int] = {}
    accepted: dict[int, str] = {}

    def client() -> httpx.Client:
        c = getattr(local, "client", None)
        if c is None:
            c = local.client = httpx.Client(base_url=base, timeout=30, headers={"x-api-key": API_KEY})
        return c

    def call(method: str, url: str, **kw: object) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            resp = client().request(method, url, **kw)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            with lock:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return None
        dt = time.perf_counter() - t0
        with lock:
            lat[method].append(dt)
            if resp.status_code >= 400:
                errors[str(resp.status_code)] = errors.get(str(resp.status_code), 0) + 1
        return resp

    def post(i: int) -> None:
        for _attempt in range(2 if i % 10 == 0 else 1):  # every tenth is retried with the same key
            resp = call("POST", "/api/v1/investigate", json={"text": f"load incident {i}", "mode": "fast"},
                        headers={"Idempotency-Key": f"load-{i}"})
            if resp is not None and resp.status_code == 202:
                inv_id = resp.json()["investigation_id"]
                with lock:
                    if accepted.setdefault(i, inv_id) != inv_id:
                        errors["retry answered another id"] = errors.get("retry answered another id", 0) + 1

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if (all((Path(home) / f"ready-{i}").exists() for i in range(len(children)))
                        and httpx.get(f"{base}/healthz", timeout=1).status_code == 200):
                    break
            except httpx.TransportError:
                pass
            if any(c.poll() is not None for c in children) or time.monotonic() > deadline:
                print("the app did not start", file=sys.stderr)
                return 1
            time.sleep(0.1)
        time.sleep(0.5 if len(children) > 1 else 0)  # the last server's loop starts listening

        def app_cpu() -> float:
            return sum(_cpu_s(c.pid) for c in children)

        cpu0 = app_cpu()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(post, range(args.posts)))
        post_wall = time.perf_counter() - t0
        cpu_post = app_cpu() - cpu0
        ids = list(accepted.values())
        rng = random.Random(13)
        paths = [f"/api/v1/investigations/{rng.choice(ids)}" for _n in range(args.gets)]
        db_cpu0 = _db_backends_cpu()
        client0 = time.process_time()
        t1 = time.perf_counter()
        if args.get_client == "raw":
            import asyncio

            asyncio.run(_raw_gets(port, paths, args.clients, lat["GET"], errors))
        else:
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(lambda path: call("GET", path), paths))
        get_wall = time.perf_counter() - t1
        client_cpu = time.process_time() - client0
        db_cpu = _db_backends_cpu(db_cpu0)
        cpu = app_cpu() - cpu0
        cpu_get = cpu - cpu_post

        from sqlalchemy import func, select

        from store.config import load_settings
        from store.db import make_engine, make_session_factory
        from store.models import Investigation

        settings = load_settings(PM_HOME=home, **({"DATABASE_URL": os.environ["DATABASE_URL"]}
                                                  if os.environ.get("DATABASE_URL") else {}))
        engine = make_engine(settings.effective_database_url)
        with make_session_factory(engine)() as s:
            rows = s.execute(select(Investigation.id, func.count()).group_by(Investigation.id)).all()
        engine.dispose()
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    pauses = [p for i in range(len(children)) if (Path(home) / f"ready-{i}.gc").exists()
              for p in json.loads((Path(home) / f"ready-{i}.gc").read_text())]
    cached = [json.loads((Path(home) / f"ready-{i}.cache").read_text()) for i in range(len(children))
              if (Path(home) / f"ready-{i}.cache").exists()]
    stored = {inv_id for inv_id, _n in rows}
    present_once = len(set(ids)) == len(ids) == args.posts and stored == set(ids)
    print(f"admin API load: {args.posts} POST /api/v1/investigate (+{args.posts // 10} retries), {args.gets} GET "
          f"status, {args.clients} clients, {len(children)} app process(es), database {settings.effective_database_url.split('@')[-1]}")
    print(_summary("POST", lat["POST"]) + f"  ({args.posts / post_wall:.0f}/s)")
    print(_summary("GET", lat["GET"]) + f"  ({args.gets / get_wall:.0f}/s, {args.get_client} client; "
          "target p99 < 50 ms)")
    n_post = len(lat["POST"]) or 1
    print(f"  app CPU per request: POST {cpu_post / n_post * 1000:.2f} ms, GET {cpu_get / max(1, args.gets) * 1000:.2f} ms; "
          f"Little's law: {args.clients} clients at {args.gets / get_wall:.0f} GETs/s => mean latency >= "
          f"{args.clients / (args.gets / get_wall) * 1000:.0f} ms")
    print(f"  other CPU per GET: load client {client_cpu / max(1, args.gets) * 1000:.3f} ms ({args.get_client}); "
          + (f"PostgreSQL backends {db_cpu / max(1, args.gets) * 1000:.3f} ms" if db_cpu is not None
             else "database in the app process"))
    print(f"  errors {errors or 0}; app CPU {cpu:.1f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  app full GC collections {len(pauses)}, longest {max(pauses, default=0) * 1000:.0f} ms")
    if cached:
        hits, misses = sum(h for h, _m in cached), sum(m for _h, m in cached)
        print(f"  status cache {args.status_cache_ms} ms: {hits} hits, {misses} reads "
              f"({hits / max(1, hits + misses):.0%} of status GETs answered without a read)")
    print(f"  investigations stored {len(stored)}; every accepted one present once: {present_once}")
    shutil.rmtree(home, ignore_errors=True)
    ok = present_once and not errors
    print("  result " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
