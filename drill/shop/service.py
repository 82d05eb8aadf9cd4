"""One shop service process: ``python -m drill.shop.service NAME --port P --run DIR [--version V]``.

Every service is a small threaded HTTP server (stdlib) that really calls its peers over loopback
HTTP, exports Prometheus metrics at ``/metrics`` (prometheus-client: ``http_requests_total`` with
``code``, the ``http_request_duration_seconds`` histogram, ``cpu_util`` and, in inventory,
``db_connections``) and appends JSON log lines (``ts, level, message, host, trace_id``) to
``DIR/logs/NAME.jsonl``. What it does on each request is below, per service.

What can change while it runs, as in a real shop:

* the version: given at start (``--version``); a deploy is a restart with another one;
* feature flags: ``DIR/flags.json`` (``{"checkout": {"new_pricing": false}}``), re-read on change;
* its config: ``DIR/config/NAME.json`` (pool size, timeouts), re-read on change, as a config
  watcher would;
* ``paygate`` only (the outside provider, not ours): ``DIR/thirdparty.json`` says how badly it is
  doing today.

Peers' ports come from ``DIR/ports.json``. The process exits after ``--ttl`` seconds and when its
parent dies (Linux), so a drill that is killed leaves nothing behind.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

SERVICES = ("frontend", "checkout", "payments", "inventory", "paygate")
#: The services that are ours (scraped, logged, changed by us); paygate is the outside provider.
OURS = ("frontend", "checkout", "payments", "inventory")
#: Versions each service starts with, and the bad ones the faults deploy.
BASE_VERSIONS = {"frontend": "3.2.0", "checkout": "1.7.4", "payments": "2.4.0", "inventory": "3.0.2",
                 "paygate": "external"}
BAD_VERSIONS = {"payments": "2.4.1", "inventory": "3.1.0"}
DEFAULT_CONFIG: dict[str, dict[str, Any]] = {
    "frontend": {"checkout_timeout_ms": 3000, "inventory_timeout_ms": 2000},
    "checkout": {"payments_timeout_ms": 2000, "inventory_timeout_ms": 2000},
    "payments": {"paygate_timeout_ms": 1500, "retries": 0},
    "inventory": {"pool_size": 3, "pool_timeout_ms": 500, "query_ms": [40, 100]},
    "paygate": {},
}


class Failure(Exception):
    """A request that fails with ``status`` and a message naming what failed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def now_iso() -> str:
    """The time now as ISO-8601 UTC with milliseconds and ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class JsonLog:
    """Append-only JSON lines, one file per service, safe across the server's threads."""

    def __init__(self, path: Path | None, service: str) -> None:
        self.service = service
        self.host = f"{service}-{socket.gethostname()}-{os.getpid()}"
        self._lock = threading.Lock()
        self._file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - the process's life

    def write(self, level: str, message: str, trace_id: str | None = None) -> None:
        if self._file is None:
            return
        line = {"ts": now_iso(), "level": level, "service": self.service, "host": self.host, "message": message}
        if trace_id:
            line["trace_id"] = trace_id
        text = json.dumps(line, separators=(",", ":"))
        with self._lock:
            self._file.write(text + "\n")


class Watched:
    """A JSON file re-read when its modification time changes (flags, config, the provider's mood)."""

    def __init__(self, path: Path, default: dict[str, Any]) -> None:
        self.path = path
        self.default = default
        self._stamp: float | None = None
        self._value: dict[str, Any] = dict(default)
        self._lock = threading.Lock()

    def get(self) -> dict[str, Any]:
        try:
            stamp = self.path.stat().st_mtime_ns
        except OSError:
            return self._value
        with self._lock:
            if stamp != self._stamp:
                try:
                    loaded = json.loads(self.path.read_text(encoding="utf-8"))
                    self._value = {**self.default, **loaded} if isinstance(loaded, dict) else self._value
                except (OSError, ValueError):
                    pass  # a half-written file: keep the last good value, read again next time
                self._stamp = stamp
            return self._value


class Pool:
    """A connection pool whose size follows the config: waiters time out with a named error."""

    def __init__(self, size: Callable[[], int]) -> None:
        self._size = size
        self.in_use = 0
        self._cond = threading.Condition()

    def acquire(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.in_use >= max(1, self._size()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            self.in_use += 1
            return True

    def release(self) -> None:
        with self._cond:
            self.in_use -= 1
            self._cond.notify()


class Shop:
    """One service's behaviour: handlers by (method, path), peers, metrics, log."""

    def __init__(self, name: str, run: Path, version: str) -> None:
        self.name = name
        self.run = run
        self.version = version
        self.ports: dict[str, int] = json.loads((run / "ports.json").read_text(encoding="utf-8"))
        self.flags = Watched(run / "flags.json", {})
        self.config = Watched(run / "config" / f"{name}.json", DEFAULT_CONFIG[name])
        self.mood = Watched(run / "thirdparty.json", {"fail_rate": 0.0, "extra_ms": 0})
        self.log = JsonLog(None if name == "paygate" else run / "logs" / f"{name}.jsonl", name)
        self.registry = CollectorRegistry()
        self.requests = Counter("http_requests_total", "HTTP requests served", ["method", "handler", "code"],
                                registry=self.registry)
        self.duration = Histogram("http_request_duration_seconds", "HTTP request duration", ["method", "handler"],
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
                                           1.0, 1.5, 2.5, 5.0), registry=self.registry)
        self.cpu = Gauge("cpu_util", "share of one core this process used over the last second",
                         registry=self.registry)
        Gauge("shop_build_info", "the running version", ["version"], registry=self.registry).labels(version).set(1)
        self.pool = Pool(lambda: int(self.config.get().get("pool_size", 3)))
        if name == "inventory":
            # Connections in use, averaged over the last scrape interval (sampled every 100 ms), as pool
            # libraries' utilisation gauges do: an instantaneous 0/1/2 would be noise at this size.
            self.in_use_samples: deque[int] = deque(maxlen=50)
            gauge = Gauge("db_connections", "database connections in use (mean over the last 5 s)",
                          registry=self.registry)
            gauge.set_function(lambda: sum(self.in_use_samples) / max(len(self.in_use_samples), 1))
            self.db = self._open_db()
        self.rng = random.Random()
        self.routes: dict[tuple[str, str], Callable[[dict[str, Any], str], dict[str, Any]]] = {
            ("GET", "/browse"): self.browse, ("POST", "/checkout"): self.checkout,
        } if name == "frontend" else {
            ("POST", "/checkout"): self.place_order,
        } if name == "checkout" else {
            ("POST", "/charge"): self.charge,
        } if name == "payments" else {
            ("GET", "/stock"): self.stock, ("POST", "/reserve"): self.reserve,
        } if name == "inventory" else {
            ("POST", "/v1/charges"): self.provider_charge,
        }

    # --- peers -----------------------------------------------------------------------------------

    def call(self, peer: str, method: str, path: str, body: dict[str, Any] | None, trace_id: str,
             timeout_ms: float) -> dict[str, Any]:
        """Call ``peer`` over HTTP; a failure raises :class:`Failure` naming the peer, as real clients log it."""
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            conn = http.client.HTTPConnection("127.0.0.1", self.ports[peer], timeout=timeout_ms / 1000.0)
            try:
                conn.request(method, path, body=data, headers={"Content-Type": "application/json",
                                                              "X-Trace-Id": trace_id})
                resp = conn.getresponse()
                payload = resp.read()
            except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
                # A peer being replaced (a deploy) may drop a connection it had queued: one retry, as
                # real clients do on a connection that never got an answer.
                if attempt == 1:
                    time.sleep(0.3)
                    continue
                raise Failure(502, f"{method} {path}: connection to {peer} refused or reset") from None
            except TimeoutError:
                raise Failure(504, f"{method} {path} timed out after {timeout_ms:.0f}ms (upstream={peer})") from None
            except (OSError, http.client.HTTPException) as exc:
                raise Failure(502, f"{method} {path} failed: {type(exc).__name__} (upstream={peer})") from None
            finally:
                conn.close()
            if resp.status >= 500:
                detail = ""
                try:
                    detail = str(json.loads(payload).get("error", ""))[:120]
                except ValueError:
                    pass
                raise Failure(502, f"{method} {path}: {peer} returned HTTP {resp.status} {detail}".rstrip())
            if resp.status >= 400:
                raise Failure(502, f"{method} {path}: {peer} returned HTTP {resp.status}")
            try:
                answer = json.loads(payload)
            except ValueError:
                answer = {}
            return answer if isinstance(answer, dict) else {}
        raise Failure(502, f"{method} {path}: no answer (upstream={peer})")  # not reached

    # --- frontend --------------------------------------------------------------------------------

    def browse(self, req: dict[str, Any], trace_id: str) -> dict[str, Any]:
        item = int(req.get("item", 1))
        stock = self.call("inventory", "GET", f"/stock?item={item}", None, trace_id,
                          self.config.get()["inventory_timeout_ms"])
        return {"item": item, "in_stock": stock.get("qty", 0) > 0}

    def checkout(self, req: dict[str, Any], trace_id: str) -> dict[str, Any]:
        order = self.call("checkout", "POST", "/checkout", req, trace_id, self.config.get()["checkout_timeout_ms"])
        return {"order": order.get("order"), "total": order.get("total")}

    # --- checkout --------------------------------------------------------------------------------

    def place_order(self, req: dict[str, Any], trace_id: str) -> dict[str, Any]:
        items = [int(i) for i in req.get("items", [1])]
        coupon = req.get("coupon")
        total = self.price(items, coupon)
        cfg = self.config.get()
        self.call("inventory", "POST", "/reserve", {"items": items}, trace_id, cfg["inventory_timeout_ms"])
        charge = self.call("payments", "POST", "/charge", {"amount": total, "currency": "EUR"}, trace_id,
                           cfg["payments_timeout_ms"])
        return {"order": uuid.uuid4().hex[:12], "total": total, "charge": charge.get("charge")}

    def price(self, items: list[int], coupon: str | None) -> float:
        total = sum(9.5 + (i % 7) for i in items)
        if self.flags.get().get("checkout", {}).get("new_pricing"):
            # The new pricing path: coupons are looked up in a rules table it never loads.
            rules: dict[str, float] = {}
            if coupon:
                total -= total * rules[coupon]
        elif coupon:
            total *= 0.9
        return round(total, 2)

    # --- payments --------------------------------------------------------------------------------

    def charge(self, req: dict[str, Any], trace_id: str) -> dict[str, Any]:
        body = dict(req)
        if self.version == BAD_VERSIONS["payments"] and body.get("amount", 0) > 30:
            # 2.4.1 reads the currency from a nested field the callers do not send.
            body["currency"] = body["billing"]["currency"]
        answer = self.call("paygate", "POST", "/v1/charges", body, trace_id, self.config.get()["paygate_timeout_ms"])
        return {"charge": answer.get("id")}

    # --- inventory -------------------------------------------------------------------------------

    def _open_db(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.run / "inventory.sqlite3"), check_same_thread=False, isolation_level=None)
        db.execute("CREATE TABLE IF NOT EXISTS stock (item INTEGER PRIMARY KEY, qty INTEGER NOT NULL)")
        db.executemany("INSERT OR IGNORE INTO stock VALUES (?, ?)", [(i, 1_000_000) for i in range(1, 51)])
        return db

    def _with_connection(self, trace_id: str, work: Callable[[], Any]) -> Any:
        cfg = self.config.get()
        if not self.pool.acquire(cfg["pool_timeout_ms"] / 1000.0):
            raise Failure(503, f"db pool exhausted: no connection free in {cfg['pool_timeout_ms']}ms "
                               f"(pool_size={cfg['pool_size']})")
        try:
            low, high = cfg.get("query_ms", [40, 100])
            time.sleep(self.rng.uniform(low, high) / 1000.0)  # the query's own time on the database
            return work()
        finally:
            self.pool.release()

    def stock(self, req: dict[str, Any], trace_id: str) -> dict[str, Any]:
        item = int(req.get("item", 1))
        row = self._with_connection(trace_id, lambda: self.db.execute(
            "SELECT qty FROM stock WHERE item = ?", (item,)).fetchone())
        return {"item": item, "qty": row[0] if row else 0}

    def reserve(self, req: dict[str, Any], trace_id: str) -> dict[str, Any]:
        items = [int(i) for i in req.get("items", [1])]
        column = "reserved_qty" if self.version == BAD_VERSIONS["inventory"] else "qty"

        def update() -> None:
            with self._db_lock:
                for item in items:
                    # 3.1.0 writes a column its migration was meant to add (and never ran).
                    self.db.execute(f"UPDATE stock SET {column} = {column} - 1 WHERE item = ?", (item,))  # noqa: S608

        self._with_connection(trace_id, update)
        return {"reserved": len(items)}

    _db_lock = threading.Lock()

    # --- paygate (the outside provider) ----------------------------------------------------------

    def provider_charge(self, req: dict[str, Any], trace_id: str) -> dict[str, Any]:
        mood = self.mood.get()
        time.sleep((self.rng.uniform(15, 45) + float(mood.get("extra_ms", 0))) / 1000.0)
        if self.rng.random() < float(mood.get("fail_rate", 0.0)):
            raise Failure(503, "acquirer unavailable")
        return {"id": "ch_" + uuid.uuid4().hex[:16], "status": "succeeded"}

    # --- serving ---------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, body: bytes, trace_id: str | None) -> tuple[int, dict[str, Any]]:
        """Serve one request; returns (status, JSON body). Metrics and the access log line are written here."""
        url = urlparse(raw_path)
        route = self.routes.get((method, url.path))
        if route is None:
            return 404, {"error": f"no route {method} {url.path}"}
        trace_id = trace_id or uuid.uuid4().hex
        started = time.perf_counter()
        try:
            req: dict[str, Any] = {k: v[0] for k, v in parse_qs(url.query).items()}
            if body:
                loaded = json.loads(body)
                req.update(loaded if isinstance(loaded, dict) else {})
            status, answer = 200, route(req, trace_id)
        except Failure as exc:
            status, answer = exc.status, {"error": exc.message}
            self.log.write("ERROR", f"{method} {url.path} -> {status}: {exc.message}", trace_id)
        except Exception as exc:  # noqa: BLE001 - an unhandled bug is a 500 with its exception, as frameworks do
            status, answer = 500, {"error": f"{type(exc).__name__}: {exc}"}
            self.log.write("ERROR", f"{method} {url.path} -> 500: unhandled {type(exc).__name__}: {exc} "
                                    f"(version {self.version})", trace_id)
        elapsed = time.perf_counter() - started
        self.requests.labels(method, url.path, str(status)).inc()
        self.duration.labels(method, url.path).observe(elapsed)
        if status < 400:
            self.log.write("INFO", f"{method} {url.path} {status} {elapsed * 1000:.0f}ms", trace_id)
        return status, answer

    def sample(self, stop: threading.Event) -> None:
        """Every 100 ms: the pool's connections in use; every second: the CPU share of the last second."""
        last_cpu, last_wall, ticks = time.process_time(), time.monotonic(), 0
        while not stop.wait(0.1):
            if self.name == "inventory":
                self.in_use_samples.append(self.pool.in_use)
            ticks += 1
            if ticks % 10 == 0:
                cpu, wall = time.process_time(), time.monotonic()
                self.cpu.set(max(0.0, (cpu - last_cpu) / max(wall - last_wall, 1e-6)))
                last_cpu, last_wall = cpu, wall


def make_handler(shop: Shop) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to ``shop``."""

    class Handler(BaseHTTPRequestHandler):
        server_version = f"shop-{shop.name}"

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self, method: str) -> None:
            if method == "GET" and self.path == "/metrics":
                self._reply(200, generate_latest(shop.registry), CONTENT_TYPE_LATEST)
                return
            if method == "GET" and self.path == "/healthz":
                self._reply(200, json.dumps({"service": shop.name, "version": shop.version}).encode(),
                            "application/json")
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, answer = shop.handle(method, self.path, body, self.headers.get("X-Trace-Id"))
            self._reply(status, json.dumps(answer).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
            pass  # the shop writes its own JSON log

    return Handler


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no-op elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drill.shop.service", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=SERVICES)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--run", required=True, help="the drill's run directory (ports.json, flags, config, logs)")
    parser.add_argument("--version", default=None)
    parser.add_argument("--ttl", type=float, default=900.0, help="exit after this many seconds")
    args = parser.parse_args(argv)
    shop = Shop(args.name, Path(args.run), args.version or BASE_VERSIONS[args.name])

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        # A deploy starts the new version on the same port before the old one stops (both listen
        # for a moment, the kernel shares the connections), as a rolling deploy does.
        allow_reuse_port = True
        request_queue_size = 128

    server = Server(("127.0.0.1", args.port), make_handler(shop))
    stop = threading.Event()
    threading.Thread(target=shop.sample, args=(stop,), daemon=True).start()
    threading.Timer(args.ttl, server.shutdown).start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    shop.log.write("INFO", f"{shop.name} {shop.version} listening on 127.0.0.1:{args.port}")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
    os._exit(0)  # the ttl timer thread is not a daemon; nothing else to flush (line-buffered log)


if __name__ == "__main__":
    die_with_parent()
    raise SystemExit(main())
