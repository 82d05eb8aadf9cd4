"""Webhook latency while /healthz (or /readyz) is flooded (issue #11, finding 6).

Before, /healthz queried the database on every hit: 2,000 unauthenticated requests, 500 at a time,
pushed real webhook latency from p50 10 ms to p50 6.5 s. Now /healthz answers from memory and
/readyz checks its dependencies at most once per second (cached). Target: webhook p99 < 100 ms
while /healthz is flooded.

The listener runs under uvicorn in a child process (embedded SQLite, worker not started); the
flood comes from a second child process (asyncio, ``--flood-concurrency`` requests in flight,
keep-alive off so every probe is a new connection as a kubelet's are); this process sends one
Alertmanager delivery every ``--interval-ms`` and times each answer. Three phases: quiet, /healthz
flooded, /readyz flooded. Prints the webhook percentiles of each, and the probes answered.

Usage:
    .venv/bin/python bench/healthz_flood.py [--deliveries 300] [--interval-ms 20] [--flood-concurrency 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.webhook_storm import API_KEY, _free_port, _percentile, serve  # noqa: E402
from bench.webhook_storm import payload as _storm_payload  # noqa: E402


def payload(i: int) -> dict:
    """A distinct Alertmanager delivery (own startsAt) over 50 fingerprints."""
    body = _storm_payload(i, 50)
    starts = datetime(2026, 10, 2, tzinfo=UTC) + timedelta(seconds=i)
    body["alerts"][0]["startsAt"] = starts.strftime("%Y-%m-%dT%H:%M:%SZ")
    return body


def flood(base: str, path: str, concurrency: int, seconds: float) -> None:
    """Child process: keep ``concurrency`` GETs of ``path`` in flight for ``seconds``; print counts as JSON."""
    counts: dict[str, int] = {}

    async def worker(client: httpx.AsyncClient, stop_at: float) -> None:
        while time.monotonic() < stop_at:
            try:
                resp = await client.get(path)
                key = str(resp.status_code)
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            counts[key] = counts.get(key, 0) + 1

    async def run() -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
            stop_at = time.monotonic() + seconds
            await asyncio.gather(*(worker(client, stop_at) for _ in range(concurrency)))

    asyncio.run(run())
    print(json.dumps(counts), flush=True)


def webhooks(base: str, start: int, count: int, interval_s: float) -> list[float]:
    """Send ``count`` distinct deliveries, one every ``interval_s``; the latency of each in ms."""
    out = []
    with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        for i in range(start, start + count):
            body = json.dumps(payload(i)).encode()
            t0 = time.perf_counter()
            resp = client.post("/webhooks/alertmanager", content=body, headers={"Content-Type": "application/json"})
            out.append((time.perf_counter() - t0) * 1000)
            if resp.status_code != 202:
                print(f"  unexpected {resp.status_code}: {resp.text[:200]}", file=sys.stderr)
            time.sleep(max(0.0, interval_s - out[-1] / 1000))
    return sorted(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=300, help="webhook deliveries per phase")
    parser.add_argument("--interval-ms", type=float, default=20.0)
    parser.add_argument("--flood-concurrency", type=int, default=500)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--flood", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if args.flood:
        base, path, seconds = args.flood
        flood(base, path, args.flood_concurrency, float(seconds))
        return 0

    home = tempfile.mkdtemp(prefix="pm-flood-")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "RABBITMQ_URL", "PM_WORLD", "MCP_CONFIG")}
    env.update(PM_HOME=home, API_KEYS=API_KEY, LOG_LEVEL="WARNING")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=env, cwd=ROOT)
    rows = []
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
        webhooks(base, 1_000_000, 30, 0.0)  # warm up (imports, first commits)
        phase_s = args.deliveries * args.interval_ms / 1000 + 5
        for n, (name, path) in enumerate((("quiet", None), ("/healthz flooded", "/healthz"),
                                          ("/readyz flooded", "/readyz"))):
            flooder = None
            if path:
                flooder = subprocess.Popen(
                    [sys.executable, __file__, "--flood", base, path, str(phase_s),
                     "--flood-concurrency", str(args.flood_concurrency)],
                    env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
                time.sleep(2.0)  # let the flood reach full concurrency first
            ms = webhooks(base, n * args.deliveries, args.deliveries, args.interval_ms / 1000)
            probes = json.loads(flooder.communicate(timeout=phase_s + 60)[0] or "{}") if flooder else {}
            rows.append((name, ms, probes))
    finally:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        shutil.rmtree(home, ignore_errors=True)

    print(f"webhook latency while probes flood the listener: {args.deliveries} Alertmanager deliveries per phase, "
          f"one every {args.interval_ms:.0f} ms; flood {args.flood_concurrency} in flight, new connection each; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  {'phase':<18} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}   probes answered")
    for name, ms, probes in rows:
        print(f"  {name:<18} {_percentile(ms, .5):8.1f} {_percentile(ms, .95):8.1f} {_percentile(ms, .99):8.1f} "
              f"{ms[-1]:8.1f}   {probes or '-'}")
    worst = max(_percentile(ms, .99) for name, ms, _ in rows if "healthz" in name)
    print(f"  /healthz flooded: webhook p99 {worst:.1f} ms (target < 100 ms): {'OK' if worst < 100 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
