"""The shop's customers: ``python -m drill.shop.load --url http://127.0.0.1:P --run DIR``.

Steady, slightly noisy traffic at the frontend: Poisson arrivals at ``rps`` requests per second,
the rate swaying ±10 % over 40 s; ``checkout_share`` of them place an order (one to four items,
``coupon_share`` of orders with a coupon), the rest browse an item. ``DIR/load.json`` may change the
rate while it runs (a surge is a file change). Bounded: loopback only, at most ``--duration``
seconds and ``--max-requests`` requests, at most ``--concurrency`` in flight.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

from drill.shop.service import Watched, die_with_parent

DEFAULT_LOAD = {"rps": 12.0, "checkout_share": 0.5, "coupon_share": 0.4}


def one_request(host: str, port: int, rng: random.Random, load: dict[str, float]) -> int:
    """Send one customer request; returns the HTTP status (0 when the frontend did not answer)."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        if rng.random() < load["checkout_share"]:
            items = [rng.randint(1, 50) for _ in range(rng.randint(1, 4))]
            body: dict[str, object] = {"items": items}
            if rng.random() < load["coupon_share"]:
                body["coupon"] = rng.choice(["WINTER10", "WELCOME", "VIP5"])
            conn.request("POST", "/checkout", body=json.dumps(body), headers={"Content-Type": "application/json"})
        else:
            conn.request("GET", f"/browse?item={rng.randint(1, 50)}")
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drill.shop.load", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the frontend, http://127.0.0.1:PORT")
    parser.add_argument("--run", required=True, help="the run directory (load.json)")
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--max-requests", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    url = urlparse(args.url)
    if url.hostname not in ("127.0.0.1", "localhost", "::1") or not url.port:
        parser.error("--url must be a loopback address with a port, e.g. http://127.0.0.1:8001")
    rng = random.Random(args.seed)
    settings = Watched(Path(args.run) / "load.json", DEFAULT_LOAD)
    in_flight = threading.BoundedSemaphore(args.concurrency)
    started = time.monotonic()
    sent = 0
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        next_at = started
        while sent < args.max_requests and time.monotonic() - started < args.duration:
            load = settings.get()
            sway = 1.0 + 0.1 * math.sin(2 * math.pi * (time.monotonic() - started) / 40.0)
            next_at += rng.expovariate(max(float(load["rps"]) * sway, 0.1))
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if not in_flight.acquire(timeout=5):
                continue  # the shop is not answering: drop this customer rather than pile up
            seed = rng.random()

            def send(seed: float = seed, load: dict[str, float] = load) -> None:
                try:
                    one_request(url.hostname or "127.0.0.1", url.port or 80, random.Random(seed), load)
                finally:
                    in_flight.release()

            pool.submit(send)
            sent += 1
    return 0


if __name__ == "__main__":
    die_with_parent()
    raise SystemExit(main())
