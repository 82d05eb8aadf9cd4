"""Webhook storm: 10,000 Alertmanager deliveries over 1,000 alert fingerprints against the listener.

The listener runs under uvicorn in a child process on loopback (its own interpreter, so the load
generator does not share its GIL), with a runtime whose worker is NOT started: investigations are
created and queued but not run. The listener answers once a delivery is stored; its background
processor turns stored deliveries into investigations, so the bench waits for it before counting.
Every delivery is distinct (its own startsAt, so its own delivery
key); each fingerprint's first delivery opens an investigation and the other nine attach to it.

Prints p50/p95/p99/max request latency (target p99 < 50 ms), throughput, how many investigations
exist (must be exactly the number of fingerprints) and how many deliveries were lost (must be 0).

Usage:
    .venv/bin/python bench/webhook_storm.py [--deliveries 10000] [--fingerprints 1000] [--concurrency 8]
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/<db> .venv/bin/python bench/webhook_storm.py
(SQLite under a temporary PM_HOME when DATABASE_URL is unset; a PostgreSQL database must be empty.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

API_KEY = "storm-key"


def serve(port: int) -> None:
    """Child process: migrate, build the runtime (no worker), serve until killed."""
    import uvicorn

    from bot.http.app import create_app
    from bot.http.settings import load_http_settings
    from pipeline.runtime import build_runtime
    from store.config import load_settings
    from store.db import upgrade

    settings = load_settings()
    upgrade(settings.effective_database_url)
    runtime = build_runtime(settings)
    app = create_app(settings, runtime, load_http_settings())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def payload(i: int, fingerprints: int) -> dict:
    fp = f"{i % fingerprints:016x}"
    # One second per repeat: a distinct startsAt makes each delivery distinct (own delivery key).
    starts = f"2026-10-02T15:{(i // fingerprints) // 60:02d}:{(i // fingerprints) % 60:02d}Z"
    return {
        "version": "4", "groupKey": f'{{}}:{{alertname="Storm{fp}"}}', "truncatedAlerts": 0, "status": "firing",
        "receiver": "pm", "groupLabels": {"alertname": f"Storm{fp}"}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.local",
        "alerts": [{
            # one service per fingerprint: alike alerts on one service join one investigation (commands/similar.py)
            "status": "firing", "labels": {"alertname": f"Storm{fp}", "service": f"svc-{fp}", "severity": "warning"},
            "annotations": {"summary": "storm"}, "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.local", "fingerprint": fp,
        }],
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux /proc; proc(5) fields 14, 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(sorted_values: list[float], q: float) -> float:
    # Nearest-rank percentile (NIST/Hyndman-Fan definition 1): no interpolation between samples.
    index = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 1)) - 1))
    return sorted_values[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--fingerprints", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0

    home = tempfile.mkdtemp(prefix="pm-storm-")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "RABBITMQ_URL", "PM_WORLD", "MCP_CONFIG")}
    env.update(PM_HOME=home, API_KEYS=API_KEY, LOG_LEVEL="WARNING")
    port = _free_port()
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if child.poll() is not None or time.monotonic() > deadline:
                print("the listener did not start", file=sys.stderr)
                return 1
            time.sleep(0.1)

        bodies = [json.dumps(payload(i, args.fingerprints)).encode() for i in range(args.deliveries)]
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        lock = threading.Lock()
        local = threading.local()

        def send(body: bytes) -> None:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(base_url=base, timeout=30,
                                                     headers={"Authorization": f"Bearer {API_KEY}"})
            t0 = time.perf_counter()
            resp = client.post("/webhooks/alertmanager", content=body, headers={"Content-Type": "application/json"})
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1

        listener_cpu0, client_cpu0 = _cpu_s(child.pid), time.process_time()
        wall0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(send, bodies))
        wall = time.perf_counter() - wall0
        listener_cpu, client_cpu = _cpu_s(child.pid) - listener_cpu0, time.process_time() - client_cpu0

        # Count what the database holds, through the same settings the listener used.
        os.environ.update(PM_HOME=home)
        from sqlalchemy import func, select

        from store.config import load_settings
        from store.db import make_engine, make_session_factory
        from store.models import InboundDelivery, Investigation

        settings = load_settings(PM_HOME=home)
        engine = make_engine(settings.effective_database_url)
        sessions = make_session_factory(engine)
        # The listener acks after storing; its background processor may still be working through them.
        drain0 = time.perf_counter()
        while True:
            with sessions() as s:
                stored = s.scalar(select(func.count()).select_from(InboundDelivery))
                processed = s.scalar(select(func.count()).select_from(InboundDelivery)
                                     .where(InboundDelivery.status == "processed"))
                investigations = s.scalar(select(func.count()).select_from(Investigation))
            if processed >= stored or time.perf_counter() - drain0 > 600:
                break
            time.sleep(0.5)
        drain = time.perf_counter() - drain0
        engine.dispose()
    finally:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    ms = sorted(x * 1000 for x in latencies)
    lost = args.deliveries - min(stored, processed)
    print(f"webhook storm: {args.deliveries} deliveries over {args.fingerprints} fingerprints, "
          f"concurrency {args.concurrency}, database {settings.effective_database_url.split('@')[-1]}")
    print(f"  HTTP statuses        {dict(sorted(statuses.items()))}")
    print(f"  latency ms           p50 {_percentile(ms, 0.50):.1f}  p95 {_percentile(ms, 0.95):.1f}  "
          f"p99 {_percentile(ms, 0.99):.1f}  max {ms[-1]:.1f}  mean {statistics.fmean(ms):.1f}  (target p99 < 50)")
    print(f"  throughput           {args.deliveries / wall:.0f} deliveries/s over {wall:.1f} s")
    print(f"  CPU during the storm listener {listener_cpu * 1000 / args.deliveries:.2f} ms/delivery "
          f"({listener_cpu / wall:.0%} of a core), load generator {client_cpu * 1000 / args.deliveries:.2f} ms/delivery "
          f"({client_cpu / wall:.0%} of a core); machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  deliveries stored    {stored}; processed {processed}; lost {lost} "
          f"(processing finished {drain:.1f} s after the last answer)")
    print(f"  investigations       {investigations} (expected {args.fingerprints})")
    shutil.rmtree(home, ignore_errors=True)  # the SQLite file of this run (PostgreSQL data stays for a look)
    ok = investigations == args.fingerprints and lost == 0 and statuses.get(202, 0) == args.deliveries
    print("  result               " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
