"""An independent writer of incident worlds (issue #3), to test that the evidence engine generalises.

Written from the world format alone (/work/shared/spec/world-format.md) and the two shared example
worlds, without reading ``sandbox/gen_*.py`` or the engine, and deliberately different from them in
everything the spec leaves open: service names and counts (5-25), topology shapes (layered, chain,
star, mesh), metric step (15/30/60 s) and extra metric names, log styles (plain, key=value, JSON in the
message, multi-line stack traces, Go/Java/Python/Node/Envoy flavoured errors, callees named in many
phrasings and aliases), noise (always-noisy templates, periodic jobs, a daily traffic shape), alert
sources and severities, tickets and chat with misleading human guesses, change ids and details of
every kind. Families: deploy, feature_flag (errors only in the rolled-out share), config,
db_migration, infra, dependency with and without a change on the callee, capacity (no change).
Decoys: harmless changes near the onset (also on the alerting victim), a change after the onset
(also a rollback of the culprit), noisy unrelated errors, an unrelated error burst near the onset,
alerts on victims before the origin.

Usage: .venv/bin/python bench/altworlds.py --count N --seed S --out DIR
Each world gets a truth.yaml (root_cause per the spec, plus an ``alt`` block: family, variant, decoys).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FAMILIES = ("deploy", "feature_flag", "config", "db_migration", "dependency_change", "dependency",
            "capacity", "infra")

# ------------------------------------------------------------------ vocabulary

DOMAIN_NOUNS = [
    "ledger", "billing", "invoice", "cart", "inventory", "catalog", "pricing", "search", "auth", "identity",
    "session", "profile", "recommend", "notify", "mailer", "sms", "shipping", "fulfilment", "warehouse",
    "tax", "fraud", "risk", "payouts", "reporting", "analytics", "media", "thumbnail", "geo", "routing",
    "quotes", "loyalty", "coupons", "reviews", "ratings", "feed", "timeline", "upload", "export", "audit",
    "webhooks", "tenant", "accounts", "kyc", "orders", "payments", "checkout", "availability", "listing",
    "favorites", "messaging", "settlement", "refunds", "subscriptions", "entitlements", "pricing-rules",
]
ENTRY_NAMES = ["web-bff", "mobile-gateway", "public-api", "storefront", "edge-proxy", "admin-portal",
               "partner-api", "graphql-gw", "www", "app-backend"]
DATASTORES = [("pg-{n}", "postgres"), ("postgres-{n}", "postgres"), ("mysql-{n}", "mysql"),
              ("redis-{n}", "redis"), ("kafka-{n}", "kafka"), ("mongo-{n}", "mongo"),
              ("rabbitmq", "rabbit"), ("opensearch", "search"), ("memcached", "redis"),
              ("cassandra-{n}", "cassandra")]
DS_SUFFIX = ["main", "core", "primary", "sessions", "events", "cache", "ledger", "orders", "users", "shard1"]
EXTERNALS = ["stripe-api", "adyen", "twilio", "sendgrid", "s3", "maps-provider", "tax-provider",
             "smtp-relay", "fx-rates-api", "identity-provider"]
SUFFIXES = ["", "", "-svc", "-api", "-service", "-srv"]
PEOPLE = ["priya", "tomasz", "wei.zhang", "oluwaseun", "marta", "j.doe", "kenji", "ines", "rafael", "yusuf",
          "sofia.k", "dmitri", "amara", "lucas", "noor", "henrik", "valentina", "arjun", "mei", "pablo"]
BOTS = ["argocd", "spinnaker", "github-actions[bot]", "terraform-cloud", "flux", "launchdarkly-sync",
        "jenkins", "atlantis"]
LANGS = ("go", "java", "python", "node")
PATHS = ["/v1/items", "/api/v2/charge", "/internal/quote", "/v3/lookup", "/api/orders", "/rpc/Get",
         "/healthz/deep", "/v1/batch", "/api/search", "/graphql", "/v2/accounts/{id}", "/sync"]
JAVA_CLASSES = ["Order", "Cart", "Invoice", "Quote", "Account", "Shipment", "Payment", "Listing", "Rate"]
FIELDS = ["currency", "tenant_id", "discount_code", "region", "locale", "customer_ref", "sku", "tier"]
TABLES = ["orders", "invoices", "line_items", "accounts", "sessions", "shipments", "payments", "listings",
          "events", "ledger_entries"]


def iso(epoch: float) -> str:
    """ISO-8601 UTC with a Z suffix."""
    return dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hhmm(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC).strftime("%H:%M")


def hexid(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def alnum(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(n))


# ------------------------------------------------------------------ model


@dataclass
class Svc:
    name: str
    kind: str  # app | entry | datastore | external
    tier: str
    calls: list[str] = field(default_factory=list)
    lang: str = "go"
    style: str = "plain"  # plain | kv | json | nginx
    hosts: list[str] = field(default_factory=list)
    port: int = 8080
    engine: str = ""  # datastore flavour
    base_rps: float = 50.0
    base_err: float = 0.002
    base_lat: float = 80.0
    base_cpu: float = 0.3
    base_mem: float = 0.45
    pool: int = 50
    base_conn: float = 15.0
    metrics: list[str] = field(default_factory=list)
    log_rate: float = 3.0  # INFO lines per minute
    noisy_err: bool = False
    worker: bool = False


@dataclass
class Effect:
    """A change of a service's signals from ``start`` (ramping over ``ramp`` s) until ``end``."""

    start: float
    end: float
    ramp: float = 60.0
    err: float = 0.0
    lat: float = 1.0
    cpu: float = 0.0
    mem: float = 0.0
    conn: float = 0.0  # fraction of pool added
    rps: float = 1.0
    flap: float = 0.0  # > 0: on for the first half of every ``flap`` seconds (an intermittent fault)

    def level(self, t: float) -> float:
        if t < self.start or t >= self.end:
            return 0.0
        if self.flap and (t - self.start) % self.flap >= self.flap / 2:
            return 0.0
        return min(1.0, (t - self.start) / self.ramp) if self.ramp > 0 else 1.0


@dataclass
class World:
    rng: random.Random
    name: str
    start: float
    end: float
    step: int
    services: dict[str, Svc]
    alias: dict[str, str]
    onset: float = 0.0
    effects: dict[str, list[Effect]] = field(default_factory=dict)
    logs: list[dict] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)
    tickets: list[dict] = field(default_factory=list)
    chat: list[dict] = field(default_factory=list)
    crons: list[tuple[str, int, int]] = field(default_factory=list)  # (service, period s, offset s)
    decoys: list[str] = field(default_factory=list)
    change_seq: int = 0
    change_style: str = "chg"
    people: list[str] = field(default_factory=list)
    millis: bool = False

    def callers(self, name: str) -> list[str]:
        return [s.name for s in self.services.values() if name in s.calls]

    def apps(self) -> list[Svc]:
        return [s for s in self.services.values() if s.kind in ("app", "entry")]


# ------------------------------------------------------------------ topology


def build_topology(rng: random.Random, n: int) -> tuple[dict[str, Svc], str]:
    """``n`` services (apps, entries, datastores, externals) calling each other in one of four shapes."""
    n_data = max(1, round(n * rng.uniform(0.12, 0.25)))
    n_ext = rng.choice([0, 0, 1, 1, 2]) if n >= 8 else rng.choice([0, 1])
    n_app = max(3, n - n_data - n_ext)
    n_entry = rng.randint(1, max(1, min(3, n_app // 4)))
    suffix = rng.choice(SUFFIXES)
    nouns = rng.sample(DOMAIN_NOUNS, n_app)
    names: list[str] = []
    for i in range(n_app):
        if i < n_entry:
            names.append(rng.choice([e for e in ENTRY_NAMES if e not in names]))
        else:
            mix = suffix if rng.random() < 0.8 else rng.choice(SUFFIXES)
            nm = nouns[i] + mix
            if rng.random() < 0.1:
                nm = nouns[i] + "-worker"
            names.append(nm if nm not in names else nouns[i] + "-2")
    world_lang = rng.choice(LANGS + ("mixed", "mixed"))
    svcs: dict[str, Svc] = {}
    for i, nm in enumerate(names):
        entry = i < n_entry
        lang = rng.choice(LANGS) if world_lang == "mixed" else (world_lang if rng.random() < 0.8 else rng.choice(LANGS))
        style = "nginx" if entry and rng.random() < 0.35 else rng.choice(["plain", "kv", "json", "plain"])
        tier = rng.choice(["edge", "frontend", "public"]) if entry else ""
        svcs[nm] = Svc(name=nm, kind="entry" if entry else "app", tier=tier, lang=lang, style=style,
                       port=rng.choice([8080, 8000, 9090, 3000, 50051, 80]), worker=nm.endswith("worker"))
    apps = list(svcs)
    shape = rng.choice(["layered", "chain", "star", "mesh"])
    inner = apps[n_entry:]
    if shape == "layered":
        layers = rng.randint(2, 4)
        layer_of = {nm: 1 + (k * layers) // max(1, len(inner)) for k, nm in enumerate(inner)}
        for nm in apps[:n_entry]:
            layer_of[nm] = 0
        for nm in apps:
            deeper = [m for m in inner if layer_of[m] == layer_of[nm] + 1] or [m for m in inner if layer_of[m] > layer_of[nm]]
            if deeper:
                svcs[nm].calls = rng.sample(deeper, min(len(deeper), rng.randint(1, 3)))
    elif shape == "chain":
        seq = apps[n_entry - 1:]
        for a, b in zip(seq, seq[1:], strict=False):
            svcs[a].calls.append(b)
        for k, nm in enumerate(inner):
            later = inner[k + 2:]
            if later and rng.random() < 0.3:
                svcs[nm].calls.append(rng.choice(later))
        for nm in apps[: n_entry - 1]:
            svcs[nm].calls.append(inner[0])
    elif shape == "star":
        for nm in apps[:n_entry]:
            svcs[nm].calls = [m for m in inner if rng.random() < 0.8] or inner[:1]
        for k, nm in enumerate(inner):
            later = inner[k + 1:]
            if later and rng.random() < 0.3:
                svcs[nm].calls.append(rng.choice(later))
    else:  # mesh
        for k, nm in enumerate(apps):
            later = apps[max(k + 1, n_entry):]
            if later:
                svcs[nm].calls = rng.sample(later, min(len(later), rng.randint(1, 4)))
    # every inner app has a caller
    for k, nm in enumerate(inner):
        if not any(nm in svcs[o].calls for o in apps):
            earlier = apps[: n_entry + k]
            svcs[rng.choice(earlier)].calls.append(nm)
    for nm in inner:
        svcs[nm].tier = rng.choice(["core", "backend", "api", "internal"]) if not svcs[nm].worker else "worker"
    # datastores
    used: set[str] = set()
    for _ in range(n_data):
        pattern, eng = rng.choice(DATASTORES)
        for _try in range(10):
            nm = pattern.format(n=rng.choice(DS_SUFFIX))
            if nm not in used and nm not in svcs:
                break
            pattern, eng = rng.choice(DATASTORES)
        if nm in used or nm in svcs:
            continue
        used.add(nm)
        port = {"postgres": 5432, "mysql": 3306, "redis": 6379, "kafka": 9092, "mongo": 27017, "rabbit": 5672,
                "search": 9200, "cassandra": 9042}[eng]
        svcs[nm] = Svc(name=nm, kind="datastore", tier=rng.choice(["datastore", "data", "storage"]), engine=eng,
                       port=port, lang="", style="")
        users = rng.sample(inner or apps, min(len(inner or apps), rng.randint(1, 3)))
        for u in users:
            svcs[u].calls.append(nm)
    for nm in rng.sample(EXTERNALS, n_ext):
        svcs[nm] = Svc(name=nm, kind="external", tier="external", port=443, lang="", style="")
        for u in rng.sample(inner or apps, min(len(inner or apps), rng.randint(1, 2))):
            svcs[u].calls.append(nm)
    for s in svcs.values():
        s.calls = list(dict.fromkeys(s.calls))
    return svcs, shape


def dress_services(rng: random.Random, w: World, host_style: str) -> None:
    """Baselines, metric names and hosts per service."""
    for s in w.services.values():
        reps = rng.randint(2, 6)
        if host_style == "k8s":
            rs = hexid(rng, rng.choice([9, 10]))
            s.hosts = [f"{s.name}-{rs}-{''.join(rng.choice('bcdfghjklmnpqrstvwxz2456789') for _ in range(5))}"
                       for _ in range(reps)]
        elif host_style == "vm":
            s.hosts = [f"ip-10-{rng.randint(0, 40)}-{rng.randint(0, 255)}-{rng.randint(2, 254)}" for _ in range(reps)]
        elif host_style == "numbered":
            s.hosts = [f"{s.name}-{i:02d}" for i in range(1, reps + 1)]
        else:
            s.hosts = [f"{s.name}-{i}.{rng.choice(['prod', 'prd', 'live'])}.internal" for i in range(reps)]
        if s.kind == "entry":
            s.base_rps = rng.uniform(300, 1500)
        elif s.kind == "app":
            s.base_rps = rng.uniform(20, 600)
        elif s.kind == "datastore":
            s.base_rps = rng.uniform(200, 4000)
        s.base_err = rng.choice([0.0005, 0.001, 0.002, 0.004, 0.008])
        s.base_lat = rng.uniform(4, 30) if s.kind == "datastore" else rng.uniform(25, 350)
        s.base_cpu = rng.uniform(0.12, 0.5)
        s.base_mem = rng.uniform(0.25, 0.62)
        s.pool = rng.choice([20, 32, 50, 64, 100, 200])
        s.base_conn = s.pool * rng.uniform(0.1, 0.45)
        s.log_rate = rng.uniform(1.0, 5.0)
        if s.kind == "external":
            s.metrics = []
            continue
        if s.kind == "datastore":
            conn = "connected_clients" if s.engine == "redis" else "db_connections"
            names = ["cpu_util", "mem_util", conn, "latency_p95_ms"]
            if rng.random() < 0.5:
                names.append("requests_per_s")
            if s.engine in ("postgres", "mysql") and rng.random() < 0.5:
                names.append("replication_lag_s")
            if rng.random() < 0.3:
                names.append("error_rate")
            s.metrics = names
            continue
        names = ["requests_per_s", "error_rate", "latency_p95_ms", "cpu_util"]
        if rng.random() < 0.7:
            names.append("mem_util")
        if any(w.services[c].kind == "datastore" and w.services[c].engine in ("postgres", "mysql")
               for c in s.calls) and rng.random() < 0.8:
            names.append("db_connections")
        if s.lang == "java" and rng.random() < 0.7:
            names.append("gc_pause_ms")
        if s.worker or rng.random() < 0.15:
            names.append("queue_depth")
        if rng.random() < 0.3:
            names.append("latency_p50_ms")
        if rng.random() < 0.2:
            names.append("latency_p99_ms")
        if rng.random() < 0.2:
            names.append("http_5xx_per_s")
        if rng.random() < 0.2:
            names.append("thread_pool_active")
        s.metrics = names


# ------------------------------------------------------------------ log text


def wrap(s: Svc, level: str, summary: str, err: str = "", **extra: Any) -> str:
    """A message in the service's log style."""
    if s.style == "json":
        body: dict[str, Any] = {"level": level.lower(), "msg": summary}
        if err:
            if "\n" in err:
                head, _, stack = err.partition("\n")
                body["error"] = head
                body["stacktrace"] = stack
            else:
                body["error"] = err
        body.update(extra)
        return json.dumps(body)
    if s.style == "kv":
        parts = [f"level={level.lower()}", f'msg="{summary}"']
        if err:
            head = err.split("\n", 1)[0].replace('"', "'")
            parts.append(f'err="{head}"')
        parts += [f"{k}={v}" for k, v in extra.items()]
        text = " ".join(parts)
        if err and "\n" in err:
            text += "\n" + err.split("\n", 1)[1]
        return text
    base = f"{summary}: {err}" if err else summary
    if extra:
        base += " " + " ".join(f"[{k}={v}]" for k, v in extra.items())
    return base


def stack(s: Svc, rng: random.Random, head: str) -> str:
    """Append a language-flavoured stack trace to an exception head."""
    cls = rng.choice(JAVA_CLASSES)
    pkg = s.name.replace("-", "")
    if s.lang == "java":
        frames = [f"\tat com.acme.{pkg}.{cls}Service.handle({cls}Service.java:{rng.randint(40, 400)})",
                  f"\tat com.acme.{pkg}.web.{cls}Controller.post({cls}Controller.java:{rng.randint(20, 200)})",
                  "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)",
                  "\tat jakarta.servlet.http.HttpServlet.service(HttpServlet.java:658)",
                  "\t... 48 common frames omitted"]
        return head + "\n" + "\n".join(frames)
    if s.lang == "python":
        return ("Traceback (most recent call last):\n"
                f'  File "/app/{pkg}/handlers.py", line {rng.randint(30, 300)}, in post\n'
                f"    result = service.{rng.choice(['compute', 'apply', 'load'])}(payload)\n"
                f'  File "/app/{pkg}/service.py", line {rng.randint(30, 300)}, in compute\n'
                f"    return self._inner(payload)\n{head}")
    if s.lang == "node":
        return (head + f"\n    at {rng.choice(['computeTotal', 'handle', 'resolve'])} (/srv/app/dist/{pkg}.js:"
                f"{rng.randint(10, 300)}:{rng.randint(3, 40)})\n    at processTicksAndRejections (node:internal/process/task_queues:95:5)")
    return (head + f"\n\ngoroutine {rng.randint(100, 99999)} [running]:\n"
            f"main.(*handler).ServeHTTP(0xc000{hexid(rng, 6)}, {{0x1a2b3c0, 0xc00012e000}})\n"
            f"\t/src/{pkg}/handler.go:{rng.randint(20, 300)} +0x{hexid(rng, 3)}")


def own_error(s: Svc, rng: random.Random, flavour: str, ctx: dict[str, Any]) -> tuple[str, str]:
    """(level, message) of an error the faulty service raises itself; ``flavour`` says what broke."""
    f = ctx.get("field", "currency")
    cls = ctx.get("cls", "Order")
    if flavour == "code":
        heads = {
            "java": f'java.lang.NullPointerException: Cannot invoke "com.acme.{cls}.get{f.title().replace("_", "")}()" because "{cls.lower()}" is null',
            "python": f"KeyError: '{f}'",
            "node": f"TypeError: Cannot read properties of undefined (reading '{f}')",
            "go": "panic: runtime error: invalid memory address or nil pointer dereference [recovered]",
        }
        head = heads[s.lang or "go"]
        if rng.random() < 0.6:
            return "ERROR", wrap(s, "ERROR", rng.choice(["unhandled exception", "request failed", "handler error"]),
                                 stack(s, rng, head), path=rng.choice(PATHS), status=500)
        return "ERROR", wrap(s, "ERROR", "request failed", head, status=500)
    if flavour == "flag":
        head = {"java": f"java.lang.IllegalStateException: {cls} {f} missing in new pipeline",
                "python": f"ValueError: unsupported {f} in v2 path",
                "node": f"TypeError: {f}.toUpperCase is not a function",
                "go": f"new {cls.lower()} path: unexpected nil {f}"}[s.lang or "go"]
        return "ERROR", wrap(s, "ERROR", "request failed", head, flag=ctx["flag"], variant=ctx.get("variant", "on"),
                             status=500)
    if flavour == "config_pool":
        msg = rng.choice([f"timeout acquiring connection from pool (max={ctx['to']})",
                          f"HikariPool-1 - Connection is not available, request timed out after 30000ms (total={ctx['to']}, active={ctx['to']}, idle=0)",
                          f"connection pool exhausted: {ctx['to']}/{ctx['to']} in use"])
        return "ERROR", wrap(s, "ERROR", "db call failed", msg)
    if flavour == "config_timeout":
        callee = ctx["callee_alias"]
        msg = rng.choice([f"context deadline exceeded after {ctx['to']}ms calling {callee}",
                          f"Read timed out after {ctx['to']} ms (GET http://{callee}/v1/...)",
                          f"timeout of {ctx['to']}ms exceeded calling {callee}"])
        return "ERROR", wrap(s, "ERROR", "dependency call failed", msg)
    if flavour == "config_bad":
        msg = rng.choice([f"invalid value for {ctx['key']}: {ctx['to']!r}",
                          f"failed to parse {ctx['key']}={ctx['to']}: expected duration",
                          f"config {ctx['key']} rejected: {ctx['to']} is not a valid endpoint; falling back to deny"])
        return "ERROR", wrap(s, "ERROR", "request failed", msg, status=500)
    if flavour == "migration":
        table = ctx["table"]
        msg = rng.choice([f'ERROR: column "{f}" of relation "{table}" does not exist',
                          f"Lock wait timeout exceeded; try restarting transaction (table {table})",
                          "canceling statement due to statement timeout",
                          f'duplicate key value violates unique constraint "{table}_{f}_key"',
                          f"slow query: {rng.randint(3000, 20000)} ms UPDATE {table} SET ..."])
        return "ERROR", wrap(s, "ERROR", "query failed", msg)
    if flavour == "saturation":
        msg = rng.choice(["rejected execution: thread pool is full (active=200, queued=1000)",
                          "503 Service Unavailable: server overloaded, shedding load",
                          "worker timeout: request took longer than 30s",
                          f"timeout acquiring connection from pool after 5000ms (pool={s.pool})",
                          "GC overhead limit exceeded",
                          "too many open files"])
        return rng.choice(["ERROR", "ERROR", "WARN"]), wrap(s, "ERROR", "overloaded", msg)
    if flavour == "oom":
        return "FATAL", wrap(s, "FATAL", rng.choice(["process exiting", "container killed"]),
                             rng.choice(["OOMKilled: container exceeded memory limit 2Gi",
                                         "java.lang.OutOfMemoryError: Java heap space",
                                         "fatal error: runtime: out of memory"]))
    if flavour == "nochange":
        msg = {"app/disk": rng.choice(["write /var/lib/app/spool: no space left on device",
                                       "failed to persist session: ENOSPC: no space left on device"]),
               "app/cert": rng.choice(["tls: failed to verify certificate: x509: certificate has expired",
                                       "client certificate for upstream mTLS expired at 00:00:00Z"]),
               "app/node": rng.choice(["health check failed: kubelet reports node NotReady",
                                       "readiness probe failed: connection refused"])}[ctx["why"]]
        return "ERROR", wrap(s, "ERROR", "request failed", msg, status=503)
    if flavour == "infra":
        msg = rng.choice(["liveness probe failed: HTTP probe failed with statuscode: 503",
                          "failed to mount secret volume: secret not found",
                          "Back-off restarting failed container",
                          "x509: certificate signed by unknown authority (listener :8443)",
                          "node not ready: pod evicted; rescheduling"])
        return "ERROR", wrap(s, "ERROR", "instance unhealthy", msg)
    raise ValueError(flavour)


def callee_error(caller: Svc, rng: random.Random, callee: Svc, alias: str, mode: str) -> tuple[str, str]:
    """(level, message) a caller logs when a call to ``callee`` fails; phrasing by language and mode."""
    p = callee.port
    path = rng.choice(PATHS)
    lang = caller.lang or "go"
    if callee.kind == "datastore" and mode in ("refused", "timeout"):
        eng = callee.engine
        options = {
            "postgres": [f'could not connect to server: Connection refused\n\tIs the server running on host "{alias}" and accepting TCP/IP connections on port 5432?',
                         f"pq: dial tcp {alias}:5432: i/o timeout",
                         f"org.postgresql.util.PSQLException: Connection to {alias}:5432 refused.",
                         f"psycopg2.OperationalError: connection to server at \"{alias}\", port 5432 failed: timeout expired"],
            "mysql": [f"dial tcp {alias}:3306: connect: connection refused",
                      f"com.mysql.cj.jdbc.exceptions.CommunicationsException: Communications link failure to {alias}:3306",
                      f"(2003, \"Can't connect to MySQL server on '{alias}' (110)\")"],
            "redis": [f"redis.exceptions.ConnectionError: Error 111 connecting to {alias}:6379. Connection refused.",
                      f"dial tcp {alias}:6379: i/o timeout",
                      f"io.lettuce.core.RedisCommandTimeoutException: Command timed out after 1 second(s) ({alias})"],
            "kafka": [f"[Producer clientId=producer-1] Connection to node 2 ({alias}:9092) could not be established. Broker may not be available.",
                      f"kafka: failed to produce to {alias}: request timed out"],
            "mongo": [f"MongoServerSelectionError: connect ECONNREFUSED {alias}:27017",
                      f"pymongo.errors.ServerSelectionTimeoutError: {alias}:27017: timed out"],
            "rabbit": [f"AMQP connection to {alias}:5672 closed: connection refused"],
            "search": [f"ConnectionTimeout caused by - ReadTimeoutError(HTTPConnectionPool(host='{alias}', port=9200): Read timed out.)"],
            "cassandra": [f"com.datastax.oss.driver.api.core.AllNodesFailedException: All 3 node(s) tried for the query failed ({alias}:9042)"],
        }[eng]
        return "ERROR", wrap(caller, "ERROR", rng.choice(["db error", "storage call failed", "query failed"]),
                             rng.choice(options))
    if caller.style == "nginx":
        if mode in ("timeout", "saturated"):
            return "ERROR", (f'upstream timed out (110: Connection timed out) while reading response header from upstream, '
                             f'client: 10.{rng.randint(0, 9)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}, server: _, '
                             f'request: "GET {path} HTTP/1.1", upstream: "http://{alias}:{p}{path}"')
        if mode == "refused":
            return "ERROR", (f"connect() failed (111: Connection refused) while connecting to upstream, "
                             f'upstream: "http://{alias}:{p}{path}"')
        return "WARN", (f'upstream_cluster=outbound|{p}||{alias} response_code=503 response_flags=UF,URX '
                        f'"upstream connect error or disconnect/reset before headers. reset reason: connection failure"')
    if mode == "circuit":
        msg = {"java": f"io.github.resilience4j.circuitbreaker.CallNotPermittedException: CircuitBreaker '{alias}' is OPEN and does not permit further calls",
               "go": f"circuit breaker '{alias}' is open",
               "python": f"pybreaker.CircuitBreakerError: circuit open for {alias}",
               "node": f"Breaker is open: {alias}"}[lang]
        return "WARN" if rng.random() < 0.4 else "ERROR", wrap(caller, "ERROR", "call rejected", msg)
    if mode == "refused":
        msg = {"java": f"java.net.ConnectException: Connection refused (calling {alias}:{p})",
               "go": f"dial tcp {alias}:{p}: connect: connection refused",
               "python": f"requests.exceptions.ConnectionError: HTTPConnectionPool(host='{alias}', port={p}): Max retries exceeded with url: {path} (Caused by NewConnectionError('Failed to establish a new connection: [Errno 111] Connection refused'))",
               "node": f"FetchError: request to http://{alias}:{p}{path} failed, reason: connect ECONNREFUSED 10.0.{rng.randint(0, 9)}.{rng.randint(2, 250)}:{p}"}[lang]
    elif mode in ("timeout", "saturated"):
        msg = {"java": f"feign.RetryableException: Read timed out executing POST http://{alias}{path}",
               "go": f'Post "http://{alias}:{p}{path}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
               "python": f"httpx.ReadTimeout: upstream {alias} timed out",
               "node": f"Error: timeout of 2000ms exceeded (url=http://{alias}{path})"}[lang]
        if rng.random() < 0.25:
            msg = rng.choice([f"upstream timed out: {alias}", f"giving up on {alias} after 3 retries (deadline exceeded)"])
    elif mode == "tls":
        msg = rng.choice([f'Get "https://{alias}:{p}{path}": x509: certificate has expired or is not yet valid',
                          f"javax.net.ssl.SSLHandshakeException: PKIX path building failed talking to {alias}",
                          f"ssl.SSLCertVerificationError: certificate verify failed ({alias})"])
    else:  # 5xx
        code = rng.choice([500, 502, 503, 503])
        msg = rng.choice([
            {"java": f"org.springframework.web.client.HttpServerErrorException$InternalServerError: {code} from POST http://{alias}{path}",
             "go": f"unexpected status {code} from {alias}",
             "python": f"requests.exceptions.HTTPError: {code} Server Error for url: http://{alias}{path}",
             "node": f"HTTPError: Response code {code} (Server Error) from {alias}"}[lang],
            f"{code} from {alias}",
            f"{alias} returned HTTP {code}",
            f"rpc error: code = Unavailable desc = {alias}: upstream returned {code}",
        ])
    return "ERROR", wrap(caller, "ERROR", rng.choice(["call failed", "downstream error", "request failed",
                                                      "dependency error"]), msg, upstream=alias)


def info_line(s: Svc, rng: random.Random, t: float, status: int = 200, extra: dict | None = None) -> str:
    """A routine INFO line (mostly request logs) in the service's style."""
    path = rng.choice(PATHS).replace("{id}", str(rng.randint(1000, 99999)))
    method = rng.choice(["GET", "GET", "POST", "PUT"])
    dur = int(max(1, rng.gauss(s.base_lat * 0.6, s.base_lat * 0.2)))
    if s.kind == "datastore":
        return rng.choice([f"checkpoint complete: wrote {rng.randint(100, 9000)} buffers",
                           f"connection authorized: user=app database={s.name}",
                           f"automatic vacuum of table \"{rng.choice(TABLES)}\": index scans: 1",
                           "Background saving terminated with success", f"DB saved on disk ({rng.randint(1, 99)} changes)"])
    if rng.random() < 0.2:
        other = rng.choice([f"cache hit ratio {rng.randint(60, 99)}%", f"refreshed {rng.randint(10, 500)} entries",
                            f"consumer lag {rng.randint(0, 40)}", "config reloaded (no changes)",
                            f"flushed {rng.randint(10, 900)} spans to collector", "healthcheck ok"])
        return wrap(s, "INFO", other)
    if s.style == "nginx":
        return (f'10.{rng.randint(0, 9)}.{rng.randint(0, 255)}.{rng.randint(1, 254)} - - "{method} {path} HTTP/1.1" '
                f"{status} {rng.randint(200, 9000)} {dur / 1000:.3f}")
    extra = extra or {}
    if s.style == "json":
        return json.dumps({"level": "info", "msg": "request completed", "method": method, "path": path,
                           "status": status, "latency_ms": dur, **extra})
    if s.style == "kv":
        tail = " ".join(f"{k}={v}" for k, v in extra.items())
        return f'level=info msg="handled request" method={method} path={path} status={status} duration={dur}ms {tail}'.strip()
    tail = " ".join(f"{k}={v}" for k, v in extra.items())
    return f"{method} {path} -> {status} in {dur}ms {tail}".strip()


# ------------------------------------------------------------------ changes


def new_change_id(w: World) -> str:
    w.change_seq += 1
    r = w.rng
    if w.change_style == "chg":
        return f"chg-{r.randint(1000, 9999)}{w.change_seq}"
    if w.change_style == "CHG":
        return f"CHG{dt.datetime.fromtimestamp(int(w.start), tz=dt.UTC):%Y%m%d}-{w.change_seq:03d}"
    if w.change_style == "typed":
        return f"c{w.change_seq}-{hexid(r, 6)}"
    return f"{hexid(r, 8)}-{hexid(r, 4)}"


def version_pair(rng: random.Random) -> tuple[str, str]:
    style = rng.choice(["semver", "semver", "calver", "sha", "build"])
    if style == "semver":
        a, b, c = rng.randint(0, 9), rng.randint(0, 60), rng.randint(0, 30)
        return f"{a}.{b}.{c + 1}", f"{a}.{b}.{c}"
    if style == "calver":
        return f"2026.{rng.randint(1, 11)}.{rng.randint(2, 28)}", f"2026.{rng.randint(1, 11)}.1"
    if style == "sha":
        return f"sha-{hexid(rng, 7)}", f"sha-{hexid(rng, 7)}"
    n = rng.randint(1000, 9000)
    return f"build-{n + rng.randint(1, 9)}", f"build-{n}"


HARMLESS = {
    "deploy": ["bump logging library", "copy changes on receipt email", "add metrics for cache", "refactor handler tests",
               "update base image", "routine dependency bumps", "fix typo in error message", "upgrade postgres driver",
               "increase retry jitter", "rotate internal docs link"],
    "config": [("log.level", "INFO", "DEBUG"), ("cache.ttl_seconds", 300, 600), ("tracing.sample_rate", 0.01, 0.05),
               ("feature.banner_text", "Holiday sale", "Winter sale"), ("http.server.idle_timeout", "60s", "90s"),
               ("metrics.push_interval", "15s", "30s"), ("db.pool.max_size", 40, 60)],
    "feature_flag": ["dark-mode", "new-footer", "beta-onboarding", "search-suggestions-v2", "show-ratings",
                     "async-audit-log"],
    "infra": [("hpa/{s}", "min replicas 3->4"), ("node-pool/general-b", "rotate nodes"), ("dns/{s}.internal", "TTL 300->60"),
              ("alb/{s}-public", "add WAF rule"), ("k8s/{s}", "bump requests cpu 500m->600m")],
    "db_migration": [("add_index_{t}_created_at_concurrently", None), ("add_nullable_column_{t}_note", None)],
}


def add_change(w: World, ts: float, kind: str, service: str, *, harmful: dict | None = None,
               summary: str | None = None, details: dict | None = None, author: str | None = None) -> dict:
    """Append a change record of ``kind``; harmless unless the caller passes the harmful details."""
    r = w.rng
    author = author or (r.choice(BOTS) if r.random() < 0.35 else r.choice(w.people))
    if details is None:
        if kind == "deploy":
            v, pv = version_pair(r)
            details = {"version": v, "previous_version": pv, "commit": hexid(r, r.choice([7, 12, 40]))}
            summary = summary or r.choice([f"{service} {v}: {r.choice(HARMLESS['deploy'])}", f"Deploy {service} {v}",
                                           f"release {v}", f"{r.choice(HARMLESS['deploy'])} ({service})"])
        elif kind == "config":
            key, a, b = r.choice(HARMLESS["config"])
            details = {"key": key, "from": a, "to": b}
            summary = summary or r.choice([f"set {key}={b} on {service}", f"{service}: tune {key}", f"config: {key} {a} -> {b}"])
        elif kind == "feature_flag":
            flag = f"{service.split('-')[0]}.{r.choice(HARMLESS['feature_flag'])}"
            pct = r.choice([5, 10, 25, 50, 100])
            details = {"flag": flag, "from": "off" if pct < 100 else "50%", "to": "on" if pct < 100 else "100%",
                       "rollout_pct": pct}
            summary = summary or f"Enable {flag} for {pct}% of traffic"
        elif kind == "infra":
            res, act = r.choice(HARMLESS["infra"])
            details = {"resource": res.format(s=service), "action": act}
            summary = summary or f"{act} ({res.format(s=service)})"
        else:
            mig, _ = r.choice(HARMLESS["db_migration"])
            table = r.choice(TABLES)
            details = {"migration": f"{r.randint(20260101, 20261122)}_{mig.format(t=table)}", "table": table}
            summary = summary or f"run migration {details['migration']}"
    rec = {"id": new_change_id(w), "ts": iso(ts), "kind": kind, "service": service, "author": author,
           "summary": summary, "details": details}
    if harmful is not None:
        rec.update(harmful.get("extra", {}))
    w.changes.append(rec)
    return rec


# ------------------------------------------------------------------ fault injection


def chain_up(w: World, origin: str, rng: random.Random, max_paths: int = 2) -> list[list[str]]:
    """Caller paths from ``origin`` up to an entry service (origin first)."""
    paths = []
    for _ in range(max_paths * 3):
        path = [origin]
        cur = origin
        for _hop in range(8):
            callers = [c for c in w.callers(cur) if c not in path]
            if not callers:
                break
            cur = rng.choice(callers)
            path.append(cur)
        if path not in paths:
            paths.append(path)
        if len(paths) >= max_paths:
            break
    return paths


@dataclass
class Fault:
    family: str
    variant: str
    origin: str
    change: dict | None
    onset: float
    end: float
    victims: list[tuple[str, str, int]]  # (service, callee it names, depth)
    trigger_service: str
    own_flavour: str | None
    victim_mode: str
    ctx: dict[str, Any]
    err: float


def pick_origin(w: World, family: str, rng: random.Random) -> str:
    apps = [s for s in w.apps() if s.kind == "app"] or w.apps()
    if family == "dependency":
        deps = [s for s in w.services.values() if s.kind in ("datastore", "external")]
        inner = [s for s in apps if any(w.services[c].kind in ("app", "entry") for c in w.callers(s.name))]
        if inner and (not deps or rng.random() < 0.3):
            return rng.choice(inner).name  # an app that breaks with no change (disk, cert, bad node)
        return rng.choice(deps).name
    if family == "dependency_change":
        deep = [s for s in apps if w.callers(s.name) and all(c != s.name for c in w.callers(s.name))]
        deep = [s for s in deep if any(w.services[c].kind in ("app", "entry") for c in w.callers(s.name))]
        return rng.choice(deep or apps).name
    if family == "db_migration":
        dbs = [s for s in apps if any(w.services[c].kind == "datastore" and w.services[c].engine in
                                      ("postgres", "mysql", "mongo", "cassandra") for c in s.calls)]
        return rng.choice(dbs or apps).name
    if family == "capacity":
        return rng.choice(apps + [s for s in w.apps() if s.kind == "entry"][:1]).name
    return rng.choice(apps).name


def inject(w: World, family: str, rng: random.Random) -> Fault:
    """Choose the origin, write the culprit change (if any) and the effects on origin and callers."""
    origin = pick_origin(w, family, rng)
    o = w.services[origin]
    onset = w.onset
    end = w.end + 3600
    change = None
    ctx: dict[str, Any] = {"field": rng.choice(FIELDS), "cls": rng.choice(JAVA_CLASSES)}
    own_flavour: str | None = "code"
    victim_mode = rng.choice(["5xx", "5xx", "timeout", "circuit"])
    err = rng.uniform(0.08, 0.5)
    variant = ""
    eff = Effect(start=onset, end=end, ramp=rng.choice([0, 30, 60, 120]), err=err, lat=rng.uniform(1.0, 2.5))
    if family == "deploy":
        v, pv = version_pair(rng)
        variant = rng.choice(["code", "code", "latency", "canary", "rollout"])
        summary = rng.choice([f"{origin} {v}: {rng.choice(['new pricing rules', 'migrate to SDK v3', 'refactor request parsing', 'support multi-currency', 'drop legacy endpoint'])}",
                              f"Deploy {origin} {v}", f"release {v}", f"{origin}: {rng.choice(HARMLESS['deploy'])}"])
        change = add_change(w, onset - rng.uniform(60, 600), "deploy", origin, harmful={}, summary=summary,
                            details={"version": v, "previous_version": pv, "commit": hexid(rng, rng.choice([7, 12, 40]))})
        if variant == "latency":
            eff.err, eff.lat, eff.cpu = rng.uniform(0.02, 0.08), rng.uniform(3, 8), rng.uniform(0.15, 0.35)
            own_flavour, victim_mode = "saturation", "timeout"
        elif variant == "rollout":  # a slow rolling update: errors grow as new pods replace old ones
            eff.ramp = rng.uniform(600, 1200)
        elif variant == "canary":  # only the canary instance runs the new version
            ctx["only_host"] = o.hosts[0]
            eff.err = rng.uniform(0.6, 0.95) / len(o.hosts)
            eff.lat = 1.1
    elif family == "feature_flag":
        pct = rng.choice([5, 10, 20, 25, 30, 50])
        flag = rng.choice([f"{origin.split('-')[0]}.{rng.choice(['new-checkout-flow', 'v2-tax-engine', 'async-capture', 'batch-writes', 'smart-routing', 'cache-v2'])}",
                           f"enable_{rng.choice(['new_pricing', 'fast_path', 'graph_search', 'split_payments'])}",
                           f"FF_{origin.upper().replace('-', '_')}_{rng.choice(['V2', 'REWRITE', 'BULK'])}"])
        details = rng.choice([{"flag": flag, "from": "off", "to": "on", "rollout_pct": pct},
                              {"flag": flag, "from": "0%", "to": f"{pct}%", "rollout_pct": pct},
                              {"flag": flag, "from": False, "to": True, "rollout_pct": pct}])
        change = add_change(w, onset - rng.uniform(20, 300), "feature_flag", origin, harmful={},
                            summary=rng.choice([f"Roll out {flag} to {pct}%", f"ramp {flag} {pct}%", f"{flag}: start experiment"]),
                            details=details, author=rng.choice(w.people + ["launchdarkly-sync"]))
        fail = rng.uniform(0.6, 1.0)
        eff.err = pct / 100 * fail
        eff.lat = rng.uniform(1.0, 1.4)
        own_flavour = "flag"
        ctx.update(flag=flag, pct=pct)
        variant = f"{pct}%"
    elif family == "config":
        variant = rng.choice(["pool", "timeout", "bad"])
        if variant == "pool":
            key = rng.choice(["db.pool.max_size", "spring.datasource.hikari.maximum-pool-size", "DB_MAX_CONNS"])
            frm, to = rng.choice([40, 50, 64, 100]), rng.choice([2, 4, 5])
            eff.lat, eff.conn = rng.uniform(3, 10), 1.0
            victim_mode = "timeout"
        elif variant == "timeout":
            key = rng.choice(["http.client.timeout_ms", "upstream.read_timeout_ms", "GRPC_DEADLINE_MS"])
            frm, to = rng.choice([2000, 3000, 5000]), rng.choice([50, 80, 100])
            callees = [c for c in o.calls if w.services[c].kind == "app"] or o.calls
            if not callees:
                variant = "bad"
            else:
                ctx["callee"] = rng.choice(callees)
                ctx["callee_alias"] = w.alias[ctx["callee"]]
        if variant == "bad":
            key = rng.choice(["payments.endpoint", "auth.jwks_url", "rate_limit.rules", "routing.table", "cache.ttl"])
            frm, to = rng.choice([("https://pay.internal/v2", "https://pay.internal/v2/"), ("30s", "30"),
                                  ("[...12 rules]", "[]"), ("eu-west-1", "eu-west-1,")])
        ctx.update(key=key, to=to)
        own_flavour = {"pool": "config_pool", "timeout": "config_timeout", "bad": "config_bad"}[variant]
        change = add_change(w, onset - rng.uniform(20, 240), "config", origin, harmful={},
                            summary=rng.choice([f"{origin}: set {key}", f"tune {key} for {origin}", f"update {origin} settings",
                                                f"config push {origin}"]),
                            details={"key": key, "from": frm, "to": to})
    elif family == "db_migration":
        table = rng.choice(TABLES)
        mig = rng.choice([f"add_column_{ctx['field']}_to_{table}", f"drop_column_{ctx['field']}_from_{table}",
                          f"backfill_{table}_{ctx['field']}", f"add_index_{table}_{ctx['field']}",
                          f"rename_{table}_{ctx['field']}"])
        migration = rng.choice([f"{rng.randint(20260101, 20261122)}{rng.randint(100000, 235959)}_{mig}",
                                f"V{rng.randint(40, 400)}__{mig}", f"{rng.randint(100, 999):04d}_{mig}"])
        change = add_change(w, onset - rng.uniform(0, 360), "db_migration", origin, harmful={},
                            summary=rng.choice([f"migrate {table}", f"run {migration}", f"schema change on {table}"]),
                            details={"migration": migration, "table": table})
        ctx["table"] = table
        own_flavour = "migration"
        eff.lat, eff.conn = rng.uniform(2, 6), rng.uniform(0.3, 0.9)
        eff.err = rng.uniform(0.05, 0.35)
        victim_mode = rng.choice(["5xx", "timeout"])
        db = next((c for c in o.calls if w.services[c].kind == "datastore"), None)
        if db and rng.random() < 0.5:
            w.effects.setdefault(db, []).append(Effect(start=onset, end=end, ramp=60, cpu=rng.uniform(0.1, 0.3),
                                                       lat=rng.uniform(1.2, 2.0)))
            variant = "db-busy"
    elif family == "infra":
        res, act = rng.choice([("k8s/{s}", "reduce memory limit 2Gi->512Mi"), ("node-pool/{s}-pool", "migrate to arm64 nodes"),
                               ("secret/{s}-tls", "rotate TLS certificate"), ("sg/{s}", "tighten security group egress"),
                               ("istio/{s}", "enable strict mTLS")])
        res = res.format(s=origin)
        change = add_change(w, onset - rng.uniform(60, 480), "infra", origin, harmful={},
                            summary=rng.choice([f"{act} for {origin}", f"terraform apply: {res}", f"{res}: {act}"]),
                            details={"resource": res, "action": act},
                            author=rng.choice(["terraform-cloud", "atlantis"] + w.people))
        variant = act
        if "memory" in act:
            own_flavour, eff.mem, eff.err = "oom", 0.45, rng.uniform(0.05, 0.3)
            victim_mode = "refused"
        elif "TLS" in act or "mTLS" in act:
            own_flavour, victim_mode = "infra", "tls"
            eff.rps = 0.4
        else:
            own_flavour = "infra"
            victim_mode = rng.choice(["refused", "timeout"])
    elif family == "dependency_change":
        kind = rng.choice(["deploy", "deploy", "config", "infra"])
        variant = kind
        if kind == "deploy":
            v, pv = version_pair(rng)
            change = add_change(w, onset - rng.uniform(60, 600), "deploy", origin, harmful={},
                                summary=rng.choice([f"Deploy {origin} {v}", f"{origin} {v}: new serializer"]),
                                details={"version": v, "previous_version": pv, "commit": hexid(rng, 12)})
            own_flavour = "code"
        elif kind == "config":
            key = rng.choice(["server.max_threads", "grpc.max_concurrent_streams", "db.pool.max_size"])
            change = add_change(w, onset - rng.uniform(30, 240), "config", origin, harmful={},
                                summary=f"{origin}: lower {key}", details={"key": key, "from": 200, "to": 4})
            own_flavour = "config_pool" if "pool" in key else "saturation"
            ctx.update(key=key, to=4)
            eff.lat = rng.uniform(3, 8)
        else:
            change = add_change(w, onset - rng.uniform(60, 480), "infra", origin, harmful={},
                                summary=f"scale down {origin}", details={"resource": f"deployment/{origin}",
                                                                         "action": "replicas 6->1"})
            own_flavour = "saturation"
            eff.cpu, eff.lat = 0.5, rng.uniform(3, 6)
        victim_mode = rng.choice(["5xx", "timeout", "circuit"])
    elif family == "dependency":
        variant = o.kind + ("/" + o.engine if o.engine else "")
        own_flavour = None
        if o.kind == "app":
            own_flavour, variant = "nochange", "app/" + rng.choice(["disk", "cert", "node"])
            ctx["why"] = variant
        victim_mode = rng.choice(["refused", "timeout", "timeout", "5xx"]) if o.kind == "external" else rng.choice(["refused", "timeout"])
        eff.err = 0.0 if o.kind == "datastore" else err
        eff.lat = rng.uniform(3, 20)
        eff.cpu = rng.choice([0.0, 0.3, 0.5])
        eff.conn = rng.choice([0.0, -0.8, 0.9])
        if o.kind != "app" and rng.random() < 0.3:  # intermittent: up and down every few minutes
            eff.flap = rng.choice([120.0, 240.0, 360.0])
            ctx["flap"] = eff.flap
            variant += "+flap"
    elif family == "capacity":
        variant = rng.choice(["cpu", "memory", "connections"])
        own_flavour = "oom" if variant == "memory" else "saturation"
        victim_mode = "timeout"
        eff.err = rng.uniform(0.03, 0.25)
        eff.lat = rng.uniform(3, 10)
        if variant == "cpu":
            eff.cpu = 0.98 - o.base_cpu
        elif variant == "memory":
            eff.mem = 0.97 - o.base_mem
            eff.ramp = rng.uniform(300, 900)
        else:
            eff.conn = 1.0
            if "db_connections" not in o.metrics:
                o.metrics.append("db_connections")
        surge = rng.uniform(1.8, 3.5)
        ramp_start = onset - rng.uniform(240, 900)
        # the surge: every service on the way from the entries to the origin gets more traffic
        surged = list(dict.fromkeys(s for path in chain_up(w, origin, rng, 3) for s in path))
        for s in surged:
            w.effects.setdefault(s, []).append(Effect(start=ramp_start, end=end, ramp=onset - ramp_start,
                                                      rps=surge, cpu=0.05))
        eff.rps = 1.0
        ctx["surge"] = surge
    w.effects.setdefault(origin, []).append(eff)
    # victims: callers along one or two paths up, errors attenuating
    victims: list[tuple[str, str, int]] = []
    paths = chain_up(w, origin, rng, rng.choice([1, 2, 2]))
    seen = set()
    for path in paths:
        for depth, (svc, callee) in enumerate(zip(path[1:], path, strict=False), start=1):
            if svc in seen:
                continue
            seen.add(svc)
            victims.append((svc, callee, depth))
            # Callers of a slow origin time out, so their error rate may exceed the origin's own (as in real
            # incidents); callers of an origin that fails fast only pass on its errors, diluted.
            slow = family in ("db_migration", "capacity", "dependency") or variant in ("latency", "pool", "timeout")
            strength = (err if slow else eff.err) * (0.75 ** depth) * rng.uniform(0.5, 0.9)
            if family == "dependency" and o.kind == "datastore":
                strength = rng.uniform(0.1, 0.4) * (0.8 ** (depth - 1))
            w.effects.setdefault(svc, []).append(Effect(start=onset + 20 * depth, end=end, ramp=60 + eff.ramp * 0.5,
                                                        err=strength, lat=1 + (eff.lat - 1) * 0.5 ** depth + 0.2,
                                                        flap=eff.flap))
    entries = [v for v, _, _ in victims if w.services[v].kind == "entry"]
    if family in ("dependency", "dependency_change"):
        trigger_service = entries[0] if entries else (victims[-1][0] if victims else origin)
    elif family == "capacity":
        trigger_service = origin if rng.random() < 0.5 or not victims else rng.choice(victims)[0]
    else:
        trigger_service = origin if rng.random() < 0.45 or not victims else rng.choice([v for v, _, _ in victims])
    ctx["ramp"] = eff.ramp
    return Fault(family=family, variant=variant, origin=origin, change=change, onset=onset, end=end,
                 victims=victims, trigger_service=trigger_service, own_flavour=own_flavour,
                 victim_mode=victim_mode, ctx=ctx, err=eff.err)


# ------------------------------------------------------------------ signals


def traffic(w: World, t: float, phase: float, amp: float) -> float:
    """Daily traffic shape: one sine over 24 h peaking at ``phase`` hours UTC."""
    hour = (t % 86400) / 3600
    return 1 + amp * math.sin(2 * math.pi * (hour - phase + 6) / 24)


def write_metrics(w: World, path: Path) -> None:
    rng = w.rng
    phase, amp = rng.uniform(8, 20), rng.uniform(0.1, 0.35)
    rows = []
    n = int((w.end - w.start) // w.step)
    for s in w.services.values():
        if not s.metrics:
            continue
        noisy_lat = rng.random() < 0.2
        mem_walk = 0.0
        for k in range(n + 1):
            t = w.start + k * w.step
            load = traffic(w, t, phase, amp)
            err, lat, cpu, mem, conn, rps = 0.0, 1.0, 0.0, 0.0, 0.0, 1.0
            for e in w.effects.get(s.name, []):
                lv = e.level(t)
                if lv:
                    err += e.err * lv * rng.uniform(0.75, 1.2)
                    lat *= 1 + (e.lat - 1) * lv
                    cpu += e.cpu * lv
                    mem += e.mem * lv
                    conn += e.conn * lv
                    rps *= 1 + (e.rps - 1) * lv
            for svc, period, offset in w.crons:
                if svc == s.name and (t - w.start - offset) % period < 120:
                    cpu += 0.25
                    lat *= 1.3
            mem_walk = max(-0.05, min(0.08, mem_walk + rng.gauss(0, 0.004)))
            r = s.base_rps * load * rps * rng.gauss(1, 0.04)
            sat = max(0.0, cpu - 0.3) if cpu > 0.3 else 0.0
            vals = {
                "requests_per_s": round(max(0.0, r), 2),
                "error_rate": round(min(1.0, max(0.0, s.base_err * rng.uniform(0.4, 1.8)
                                                 + (rng.uniform(0, 0.04) if s.noisy_err and rng.random() < 0.15 else 0)
                                                 + err)), 4),
                "latency_p95_ms": round(s.base_lat * (1 + 0.2 * (load - 1)) * lat * rng.gauss(1, 0.06)
                                        * (rng.uniform(1.5, 3) if noisy_lat and rng.random() < 0.04 else 1), 1),
                "latency_p50_ms": round(s.base_lat * 0.45 * lat ** 0.8 * rng.gauss(1, 0.05), 1),
                "latency_p99_ms": round(s.base_lat * 2.2 * lat * rng.gauss(1, 0.12), 1),
                "cpu_util": round(min(1.0, max(0.01, s.base_cpu * (0.7 + 0.3 * load * rps) + cpu + sat * 0 + rng.gauss(0, 0.02))), 3),
                "mem_util": round(min(1.0, max(0.05, s.base_mem + mem_walk + mem + rng.gauss(0, 0.006))), 3),
                "db_connections": int(min(s.pool, max(0, s.base_conn * load * rps + conn * s.pool + rng.gauss(0, 1.5)))),
                "connected_clients": int(max(0, s.base_conn * 3 * load * (1 + conn) + rng.gauss(0, 3))),
                "gc_pause_ms": round(max(1.0, rng.gauss(12, 4) * (1 + 4 * mem) * (1 + cpu)), 1),
                "queue_depth": int(max(0, rng.gauss(20, 8) * (lat if lat > 1.5 else 1) * (1 + 3 * cpu))),
                "http_5xx_per_s": round(max(0.0, r * (s.base_err + err) * rng.uniform(0.7, 1.1)), 2),
                "thread_pool_active": int(min(200, max(1, rng.gauss(30, 6) * load * lat ** 0.7))),
                "replication_lag_s": round(max(0.0, rng.gauss(0.3, 0.15) * (1 + 5 * cpu)), 2),
            }
            if s.kind == "datastore" and "error_rate" in s.metrics:
                vals["error_rate"] = round(min(1.0, rng.uniform(0, 0.0008) + err + (0.3 if conn < -0.3 else 0) * min(1, -conn)), 4)
            for name in s.metrics:
                rows.append((t, s.name, name, vals[name]))
    rows.sort(key=lambda r: r[0])
    with path.open("w") as fh:
        for t, svc, name, value in rows:
            fh.write(json.dumps({"ts": iso(t), "service": svc, "name": name, "value": value}) + "\n")


def log(w: World, t: float, s: Svc, level: str, message: str, trace: bool = False, host: str | None = None) -> None:
    stamp = iso(t)
    if w.millis:  # e.g. 2026-02-20T08:00:01.234Z: still ISO-8601 UTC with a Z
        stamp = f"{stamp[:-1]}.{int((t % 1) * 1000):03d}Z"
    rec = {"ts": stamp, "service": s.name, "level": level, "message": message}
    if host:
        rec["host"] = host
    elif s.hosts and w.rng.random() < 0.92:
        rec["host"] = w.rng.choice(s.hosts)
    if trace:
        rec["trace_id"] = hexid(w.rng, 32)
    w.logs.append(rec)


def write_routine_logs(w: World) -> None:
    """INFO traffic, always-noisy templates, periodic jobs."""
    rng = w.rng
    traced = rng.random() < 0.5
    for s in w.services.values():
        if s.kind == "external":
            continue
        if s.kind == "datastore" and rng.random() < 0.5:
            continue  # many datastores ship no logs here
        t = w.start + rng.uniform(0, 30)
        while t < w.end:
            log(w, t, s, "INFO", info_line(s, rng, t), trace=traced and s.kind != "datastore")
            if rng.random() < 0.03:
                log(w, t + 1, s, "DEBUG", wrap(s, "DEBUG", f"gc cycle {rng.randint(1, 999)} done"))
            t += rng.expovariate(s.log_rate / 60)
    # always-noisy templates
    apps = w.apps()
    noisy_templates = [
        lambda s: ("WARN", wrap(s, "WARN", "failed to export spans", "dial tcp otel-collector:4317: connect: connection refused")),
        lambda s: ("ERROR", wrap(s, "ERROR", "statsd flush failed", "write udp 127.0.0.1:8125: connection refused")),
        lambda s: ("WARN", wrap(s, "WARN", f"deprecated endpoint /v1/legacy called by client {rng.randint(100, 999)}")),
        lambda s: ("ERROR", wrap(s, "ERROR", "token validation failed", "jwt: token is expired", status=401)),
        lambda s: ("ERROR", wrap(s, "ERROR", "webhook delivery failed", f"POST https://hooks.partner-{rng.randint(1, 40)}.example.com: 404")),
        lambda s: ("WARN", wrap(s, "WARN", f"slow request {rng.randint(1200, 4000)}ms on {rng.choice(PATHS)}")),
        lambda s: ("ERROR", wrap(s, "ERROR", "validation error", f"invalid {rng.choice(FIELDS)} in request body", status=400)),
    ]
    for _ in range(rng.randint(1, 4)):
        s = rng.choice(apps)
        tmpl = rng.choice(noisy_templates)
        rate = rng.uniform(0.3, 3.0)
        burst = rng.random() < 0.3
        t = w.start + rng.uniform(0, 120)
        while t < w.end:
            lvl, msg = tmpl(s)
            log(w, t, s, lvl, msg)
            gap = rng.expovariate(rate / 60)
            if burst and rng.random() < 0.05:
                for j in range(rng.randint(5, 20)):
                    lvl, msg = tmpl(s)
                    log(w, t + j * 2, s, lvl, msg)
            t += gap
        w.decoys.append(f"noisy:{s.name}")
    # a service that names a healthy callee in noisy WARNs all along
    cands = [s for s in apps if s.calls]
    if cands and rng.random() < 0.5:
        s = rng.choice(cands)
        callee = w.services[rng.choice(s.calls)]
        t = w.start + rng.uniform(0, 300)
        while t < w.end:
            _, msg = callee_error(s, rng, callee, w.alias[callee.name], rng.choice(["timeout", "5xx"]))
            log(w, t, s, "WARN", msg)
            t += rng.expovariate(rng.uniform(0.2, 1.0) / 60)
        w.decoys.append(f"noisy-naming:{s.name}->{callee.name}")
    for s in rng.sample(apps, min(len(apps), rng.randint(0, 2))):
        s.noisy_err = True
    # periodic jobs
    for _ in range(rng.randint(0, 2)):
        s = rng.choice(apps)
        period = rng.choice([600, 900, 1800])
        offset = rng.randint(0, period - 1)
        job = rng.choice(["reconcile", "nightly-export", "cache-warmup", "sync-catalog", "expire-sessions"])
        w.crons.append((s.name, period, offset))
        t = w.start + offset
        while t < w.end:
            log(w, t, s, "INFO", wrap(s, "INFO", f"job {job} started"))
            for j in range(rng.randint(0, 6)):
                log(w, t + 5 + j * 7, s, rng.choice(["WARN", "ERROR"]),
                    wrap(s, "ERROR", f"job {job}: record {rng.randint(1, 99999)} failed", "validation error: missing field"))
            log(w, t + rng.uniform(60, 110), s, "INFO", wrap(s, "INFO", f"job {job} finished"))
            t += period
        w.decoys.append(f"cron:{s.name}:{period}")


def write_fault_logs(w: World, f: Fault) -> None:
    rng = w.rng
    o = w.services[f.origin]
    stop = f.ctx.get("stop", w.end)
    shape = Effect(start=f.onset, end=stop, ramp=max(f.ctx.get("ramp", 0.0), 1.0), flap=f.ctx.get("flap", 0.0))

    def live(t: float) -> bool:
        """Whether the fault shows at ``t`` (intermittent faults pause, slow rollouts grow)."""
        return rng.random() < shape.level(t)

    if f.own_flavour and o.kind in ("app", "entry"):
        per_min = max(2.0, min(40.0, 4 + f.err * 60))
        t = f.onset + rng.uniform(0, 20)
        while t < stop:
            if live(t):
                lvl, msg = own_error(o, rng, f.own_flavour, f.ctx)
                log(w, t, o, lvl, msg, host=f.ctx.get("only_host"))
            t += rng.expovariate(per_min / 60)
        if f.family == "feature_flag":
            t = f.onset
            while t < stop:  # the control share keeps working
                log(w, t, o, "INFO", info_line(o, rng, t, 200, {"flag": f.ctx["flag"], "variant": "off"}))
                t += rng.expovariate(4 / 60)
        if f.family == "capacity" and f.variant == "memory":
            t = f.onset
            while t < stop:
                log(w, t, o, "WARN", wrap(o, "WARN", "container restarted", f"exit code 137, restart count {rng.randint(1, 9)}"))
                t += rng.uniform(120, 300)
    elif o.kind == "datastore" and w.services[o.name].hosts and rng.random() < 0.6:
        t = f.onset + 10
        msgs = {"postgres": ["FATAL: sorry, too many clients already", "LOG: checkpoints are occurring too frequently",
                             "PANIC: could not write to file \"pg_wal/xlogtemp\": No space left on device"],
                "redis": ["MISCONF Redis is configured to save RDB snapshots, but it is currently not able to persist on disk",
                          "Connection with replica lost."],
                "mysql": ["[ERROR] InnoDB: Cannot allocate memory for the buffer pool", "Too many connections"]}
        options = msgs.get(o.engine, ["node unhealthy: heartbeat missed"])
        while t < stop:
            if live(t):
                log(w, t, o, "ERROR", rng.choice(options))
            t += rng.expovariate(2 / 60)
    for svc, callee, depth in f.victims:
        v = w.services[svc]
        c = w.services[callee]
        per_min = max(1.0, min(25.0, (3 + f.err * 40) * 0.7 ** depth))
        t = f.onset + 20 * depth + rng.uniform(0, 30)
        mode = f.victim_mode if depth == 1 else rng.choice(["5xx", "timeout", "circuit"])
        warn_only = rng.random() < 0.2  # some callers log failed calls as warnings (they retry)
        while t < stop:
            m = mode if rng.random() < 0.8 else rng.choice(["5xx", "timeout", "circuit"])
            lvl, msg = callee_error(v, rng, c, w.alias[callee], m)
            lvl = "WARN" if warn_only else lvl
            if live(t - 20 * depth):
                log(w, t, v, lvl, msg, trace=rng.random() < 0.3)
            t += rng.expovariate(per_min / 60)


# ------------------------------------------------------------------ decoys, alerts, tickets, chat


def add_decoy_changes(w: World, f: Fault) -> None:
    rng = w.rng
    apps = [s.name for s in w.apps()]
    others = [s for s in apps if s != f.origin]
    kinds = ["deploy", "deploy", "deploy", "config", "feature_flag", "infra", "db_migration"]
    db_clients = set(w.callers(f.origin)) if w.services[f.origin].kind == "datastore" else set()
    for _ in range(rng.randint(2, 8)):
        svc = rng.choice(apps)
        ts = rng.uniform(w.start + 60, w.end - 60)
        if svc == f.origin and (f.change and abs(ts - f.onset) < 1800 or -1200 < ts - f.onset < 0):
            svc = rng.choice(others)  # no harmless change on the origin just before the onset
        kind = rng.choice(kinds)
        if svc in db_clients and kind in ("db_migration", "config", "infra") and -1800 < ts - f.onset < 0:
            kind = "deploy"
        add_change(w, ts, kind, svc)
    # near the onset, on other services; never a schema or config change by a client of a failing datastore
    # just before it fails (that would be a plausible cause, not a decoy)
    for _ in range(rng.randint(1, 3)):
        svc = rng.choice(others)
        kind = rng.choice(kinds)
        if svc in db_clients and kind in ("db_migration", "config", "infra"):
            kind = "deploy"
        add_change(w, f.onset - rng.uniform(30, 720), kind, svc)
        w.decoys.append(f"near:{svc}")
    if rng.random() < 0.4 and f.trigger_service != f.origin:
        add_change(w, f.onset - rng.uniform(60, 600), rng.choice(["deploy", "config"]), f.trigger_service)
        w.decoys.append(f"on-trigger-service:{f.trigger_service}")
    if rng.random() < 0.35 and f.victims:
        v = rng.choice(f.victims)[0]
        add_change(w, f.onset - rng.uniform(30, 400), rng.choice(["deploy", "feature_flag"]), v)
        w.decoys.append(f"on-victim:{v}")
    if rng.random() < 0.6:
        svc = rng.choice(apps)
        add_change(w, f.onset + rng.uniform(120, 1200), rng.choice(kinds), svc)
        w.decoys.append(f"after-onset:{svc}")


def unrelated_burst(w: World, f: Fault) -> None:
    """An error burst near the onset on a service outside the fault's path (logs only)."""
    rng = w.rng
    involved = {f.origin} | {v for v, _, _ in f.victims}
    cands = [s for s in w.apps() if s.name not in involved]
    if not cands:
        return
    s = rng.choice(cands)
    t = f.onset + rng.uniform(-300, 120)
    end = t + rng.uniform(300, 900)
    job = rng.choice(["email digest", "report export", "search reindex", "thumbnail backfill"])
    while t < end:
        log(w, t, s, "ERROR", wrap(s, "ERROR", f"{job} batch failed", rng.choice(
            ["S3 PutObject: SlowDown: Please reduce your request rate", "quota exceeded for project reporting",
             "record too large (1.2MB > 1MB)", "lock not acquired: another run in progress"])))
        t += rng.expovariate(8 / 60)
    w.decoys.append(f"unrelated-burst:{s.name}")


def alert_record(w: World, ts: float, svc: str, what: str, sev_hi: bool) -> dict:
    rng = w.rng
    source = rng.choice(["pagerduty", "grafana", "alertmanager"])
    if source == "pagerduty":
        aid = rng.choice([f"P{alnum(rng, 6)}", f"pd-{rng.randint(1000, 99999)}", f"Q{alnum(rng, 13)}"])
        sev = rng.choice(["P1", "P2"]) if sev_hi else rng.choice(["P3", "P4"])
    elif source == "grafana":
        aid = f"grafana-{hexid(rng, 10)}"
        sev = "critical" if sev_hi else "warning"
    else:
        aid = f"am-{hexid(rng, 16)}"
        sev = "critical" if sev_hi else "warning"
    titles = {
        "errors": [f"High error rate on {svc}", f"[FIRING:1] HighErrorRate {svc}", f"{svc} 5xx ratio > 5%",
                   f"{svc} availability SLO burn rate fast (14.4x)", f"Error budget burn: {svc}"],
        "latency": [f"p95 latency above SLO on {svc}", f"[FIRING:1] HighLatency {svc}", f"{svc} slow responses",
                    f"Latency SLO burn on {svc}"],
        "cpu": [f"CPU saturation on {svc}", f"[FIRING:1] CPUThrottlingHigh {svc}", f"{svc} cpu > 90%"],
        "memory": [f"[FIRING:1] KubeContainerOOMKilled {svc}", f"Memory usage > 95% on {svc}"],
        "noise": [f"Disk usage 85% on {svc}", f"Certificate for {svc} expires in 14 days", "Watchdog",
                  f"[FIRING:1] KubePodNotReady {svc}", f"{svc} consumer lag high"],
    }
    labels: dict[str, Any] = {"service": svc, "env": rng.choice(["production", "prod", "prd"])}
    if source == "alertmanager":
        labels.update(alertname=rng.choice(["HighErrorRate", "SLOBurn", "Latency", "Saturation"]),
                      namespace=rng.choice(["default", "shop", "core", "payments"]), severity=sev)
    if rng.random() < 0.4:
        labels["team"] = rng.choice(["sre", "payments", "platform", "growth", "core"])
    return {"id": aid, "ts": iso(ts), "source": source, "service": svc, "severity": sev,
            "title": rng.choice(titles[what]), "labels": labels}


def write_alerts(w: World, f: Fault) -> dict | None:
    """Alerts; returns the alert to use as trigger, if any."""
    rng = w.rng
    what = {"capacity": "cpu" if f.variant == "cpu" else "memory" if f.variant == "memory" else "latency"}.get(
        f.family, rng.choice(["errors", "errors", "latency"]))
    trig_ts = f.onset + rng.uniform(90, 420)
    trig = alert_record(w, trig_ts, f.trigger_service, "errors" if f.trigger_service != f.origin else what, True)
    w.alerts.append(trig)
    if f.victims and rng.random() < 0.5:
        v = rng.choice(f.victims)[0]
        if v != f.trigger_service:
            w.alerts.append(alert_record(w, f.onset + rng.uniform(60, 200), v, "errors", rng.random() < 0.5))
            w.decoys.append(f"victim-alert-first:{v}")
    if f.trigger_service != f.origin and w.services[f.origin].kind != "external" and rng.random() < 0.5:
        w.alerts.append(alert_record(w, trig_ts + rng.uniform(30, 400), f.origin, what, rng.random() < 0.5))
    for _ in range(rng.randint(0, 3)):
        s = rng.choice(list(w.services))
        w.alerts.append(alert_record(w, rng.uniform(w.start, w.end - 60), s, "noise", False))
    return trig


def time_phrase(rng: random.Random, onset: float, now: float | None) -> str:
    """When it started, as a human writes it; relative only where the text has a time of its own (a ticket)."""
    options = [f"since about {hhmm(onset)} UTC", f"starting {hhmm(onset)}Z", f"since ~{hhmm(onset)} UTC",
               "since a while ago", f"from {hhmm(onset)} (UTC)"]
    if now is not None:
        options.append(f"for the last {max(5, (int((now - onset) // 60) // 5) * 5)} minutes or so")
    return rng.choice(options)


def write_tickets_chat(w: World, f: Fault, trig_alert: dict) -> dict:
    """Tickets and chat; returns the world.yaml trigger."""
    rng = w.rng
    project = rng.choice(["SUP", "OPS", "INC", "CS", "PLAT", "HELP", "ESC"])
    sym = {"deploy": "errors", "feature_flag": "some users get errors", "config": "failures", "db_migration": "timeouts",
           "dependency": "errors", "dependency_change": "errors", "capacity": "very slow pages", "infra": "errors"}[f.family]
    ts_t = f.onset + rng.uniform(300, 2400)
    decoy_changes = [c for c in w.changes if c is not f.change and c["service"] != f.origin]
    wrong_guess = rng.choice(decoy_changes) if decoy_changes else None
    guesses = [
        "Probably the network again?",
        f"Might be related to {wrong_guess['summary']!r} ({wrong_guess['service']})" if wrong_guess else "",
        f"I think {f.trigger_service} is broken, it was deployed recently." if f.trigger_service != f.origin else "",
        "Looks like the same thing as last week's DNS issue.",
        "",
    ]
    trigger_kind = rng.choice(["ticket", "ticket", "alert", "text"])
    tsvc = f.trigger_service
    key = f"{project}-{rng.randint(100, 99999)}"
    desc = (f"{rng.choice(['Customers report', 'Support sees', 'Merchants say', 'Several users complain about'])} {sym} "
            f"on {tsvc} {time_phrase(rng, f.onset, ts_t)}. {rng.choice(guesses)}").strip()
    if rng.random() < 0.5:
        desc += f" Alert {trig_alert['id']} is firing."
    ticket = {"key": key, "ts": iso(ts_t), "summary": rng.choice([f"{tsvc}: {sym}", f"[prod] {sym} on {tsvc}",
                                                                   f"{tsvc.title()} broken for customers"]),
              "description": desc, "labels": rng.sample(["prod", "customer-impact", "p1", "urgent", "sev2"], 2),
              "reporter": rng.choice(["support-bot", "zendesk-sync"] + w.people),
              "components": [tsvc], "status": rng.choice(["Open", "To Do", "In Progress"])}
    w.tickets.append(ticket)
    for _ in range(rng.randint(0, 3)):
        s = rng.choice(list(w.services))
        w.tickets.append({"key": f"{project}-{rng.randint(100, 99999)}", "ts": iso(rng.uniform(w.start - 86400 * 3, w.end)),
                          "summary": rng.choice([f"{s}: flaky integration test", f"Feature request: export from {s}",
                                                 f"{s} error in logs (token expired)", f"Upgrade {s} base image"]),
                          "description": "see title", "labels": [], "reporter": rng.choice(w.people), "components": [s],
                          "status": rng.choice(["Open", "Backlog", "Done"])})
    chan = rng.choice([f"#inc-{tsvc}", "#sre", f"#{tsvc}-oncall", "#incidents", "#prod-alerts"])
    t = float(parse_iso(trig_alert["ts"])) + 20
    w.chat.append({"ts": iso(t), "channel": chan, "user": rng.choice(["pagerduty", "grafana", "alertmanager"]),
                   "text": f"[FIRING] {trig_alert['title']} ({trig_alert['id']})"})
    thread = iso(t)
    lines = [f"looking at {tsvc}", "anyone deploy anything?",
             f"I'd roll back {wrong_guess['service']}, that change went out right before" if wrong_guess else "checking dashboards",
             f"{tsvc} pods look fine to me, cpu normal" if tsvc != f.origin else f"{tsvc} error rate is up",
             "could be the cloud provider, status page says degraded networking in one AZ",
             "customers on mobile only?"]
    for line in rng.sample(lines, rng.randint(2, len(lines))):
        t += rng.uniform(30, 240)
        msg = {"ts": iso(t), "channel": chan, "user": rng.choice(w.people), "text": line}
        if rng.random() < 0.6:
            msg["thread_ts"] = thread
        w.chat.append(msg)
    for c in w.changes:
        if c["kind"] == "deploy" and rng.random() < 0.5:
            w.chat.append({"ts": c["ts"], "channel": "#deploys", "user": "deploybot",
                           "text": f"{c['author']} deployed {c['service']} {c['details'].get('version')}"})
    if trigger_kind == "ticket":
        return {"ticket": key}
    if trigger_kind == "alert":
        return {"alert": trig_alert["id"]}
    return {"text": rng.choice([f"{tsvc} is throwing {sym} {time_phrase(rng, f.onset, None)}",
                                f"users cannot use {tsvc} - {sym} {time_phrase(rng, f.onset, None)}, please check",
                                f"{sym} on {tsvc}"])}


def parse_iso(value: str) -> float:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def add_rollback(w: World, f: Fault, trig_ts: float) -> None:
    """A rollback of the culprit after the report: the fault stops a little later (a change after onset)."""
    rng = w.rng
    if not f.change or f.change["kind"] != "deploy":
        return
    ts = trig_ts + rng.uniform(300, 1200)
    if ts > w.end - 300:
        return
    d = f.change["details"]
    add_change(w, ts, "deploy", f.change["service"], summary=f"Rollback {f.change['service']} to {d['previous_version']}",
               details={"version": d["previous_version"], "previous_version": d["version"], "commit": hexid(rng, 12)})
    stop = ts + rng.uniform(60, 180)
    f.ctx["stop"] = stop
    for effs in w.effects.values():
        for e in effs:
            if e.start >= f.onset - 1:
                e.end = stop
    w.decoys.append("rollback-after-onset")


# ------------------------------------------------------------------ world


def generate_world(out: Path, family: str, seed: int, name: str) -> Path:
    """Write one world of ``family`` into ``out`` (created); deterministic per ``seed``."""
    rng = random.Random(seed)
    n = rng.randint(5, 25)
    svcs, shape = build_topology(rng, n)
    step = rng.choice([15, 30, 30, 60, 60])
    duration = rng.choice({15: [60, 75, 90], 30: [90, 120, 150], 60: [120, 180, 240]}[step])
    day = dt.datetime(2025, 3, 1, tzinfo=dt.UTC) + dt.timedelta(days=rng.randint(0, 600),
                                                                         hours=rng.randint(0, 23))
    start = day.timestamp()
    alias_style = rng.choice(["same", "same", "same", "svc", "fqdn", "mixed"])
    alias = {}
    for nm, s in svcs.items():
        a = nm
        style = alias_style if alias_style != "mixed" else rng.choice(["same", "svc", "fqdn"])
        if s.kind in ("app", "entry") and style == "svc" and not nm.endswith("-svc"):
            a = nm + "-svc"
        elif s.kind in ("app", "entry", "datastore") and style == "fqdn":
            a = f"{nm}.{rng.choice(['prod', 'default', 'shop'])}.svc.cluster.local"
        alias[nm] = a
    w = World(rng=rng, name=name, start=start, end=start + duration * 60, step=step, services=svcs, alias=alias)
    w.people = rng.sample(PEOPLE, 6)
    w.millis = rng.random() < 0.25
    w.change_style = rng.choice(["chg", "CHG", "typed", "uuid"])
    dress_services(rng, w, rng.choice(["k8s", "vm", "numbered", "fqdn"]))
    w.onset = start + duration * 60 * rng.uniform(0.45, 0.72) + rng.uniform(0, 59)
    f = inject(w, family, rng)
    trig_alert = write_alerts(w, f)
    add_decoy_changes(w, f)
    if rng.random() < 0.3:
        add_rollback(w, f, parse_iso(trig_alert["ts"]))
    write_routine_logs(w)
    write_fault_logs(w, f)
    if rng.random() < 0.35:
        unrelated_burst(w, f)
    if f.change and w.services[f.origin].kind == "app" and rng.random() < 0.12:
        w.logs = [r for r in w.logs if r["service"] != f.origin]  # its log shipping is broken: metrics only
        w.decoys.append("silent-origin")
    trigger = write_tickets_chat(w, f, trig_alert)
    out.mkdir(parents=True, exist_ok=True)
    write_metrics(w, out / "metrics.jsonl")
    topo_omitted = rng.random() < 0.08
    if not topo_omitted:
        tiers = rng.random() < 0.7
        topo = {"services": [{"name": s.name, "calls": s.calls, **({"tier": s.tier} if tiers else {})}
                             for s in svcs.values()]}
        (out / "topology.yaml").write_text(yaml.safe_dump(topo, sort_keys=False, default_flow_style=None))
    else:
        w.decoys.append("no-topology")
    world = {"name": name, "window": {"start": iso(w.start), "end": iso(w.end)}, "trigger": trigger}
    if rng.random() < 0.5:
        world["domain"] = rng.choice(["Commerce/Checkout", "Platform/Core", "Payments", "Growth/Web", "Logistics"])
    (out / "world.yaml").write_text(yaml.safe_dump(world, sort_keys=False))
    for fname, recs in (("logs.jsonl", w.logs), ("changes.jsonl", w.changes), ("alerts.jsonl", w.alerts),
                        ("tickets.jsonl", w.tickets), ("chat.jsonl", w.chat)):
        recs.sort(key=lambda r: r["ts"])
        with (out / fname).open("w") as fh:
            for r in recs:
                fh.write(json.dumps(r) + "\n")
    category = {"dependency_change": "dependency"}.get(family, family)
    truth = {"root_cause": {"change_id": f.change["id"] if f.change else None, "service": f.origin,
                            "category": category},
             "notes": f"alt writer: {family} ({f.variant}) on {f.origin}, onset {iso(f.onset)}, "
                      f"trigger on {f.trigger_service}",
             "alt": {"family": family, "variant": str(f.variant), "shape": shape, "services": len(svcs),
                     "step": step, "onset": iso(f.onset), "trigger_service": f.trigger_service,
                     "trigger": next(iter(trigger)), "decoys": w.decoys}}
    (out / "truth.yaml").write_text(yaml.safe_dump(truth, sort_keys=False))
    return out


def generate_suite(out: Path, count: int, seed: int) -> list[Path]:
    """``count`` worlds, families in turn, named ``alt{seed}-{i:03d}``."""
    worlds = []
    for i in range(count):
        family = FAMILIES[i % len(FAMILIES)]
        name = f"alt{seed}-{i:03d}"  # neutral: the family is in truth.yaml only
        worlds.append(generate_world(out / name, family, seed * 100_003 + i, name))
    return worlds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    worlds = generate_suite(Path(args.out), args.count, args.seed)
    # The marker bench/rca_alt.py --keep looks for, so it reuses this suite instead of writing it again.
    (Path(args.out) / f".alt-suite-{args.seed}-{args.count}").write_text("written by bench/altworlds.py\n")
    print(f"wrote {len(worlds)} worlds to {args.out}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
