"""Word pools for the world generator: service names, resources, people and phrasings.

Several phrasings per template on purpose: the evidence engine is trained and
tested on these worlds and must not learn one generator's wording. Every
template is a ``str.format`` pattern over the fields that
:func:`sandbox.gen_text.fill` provides (``callee``, ``port``, ``ms``, ``res``,
``n``, ``status``, ``id``, ``ip``, ``flag``, ``key``, ``table``, ``col``, ...).
"""

from __future__ import annotations

# Application service names, grouped by business domain so a world reads like one company.
APP_POOLS: dict[str, tuple[str, ...]] = {
    "commerce": (
        "checkout", "payments", "orders", "cart", "inventory", "pricing", "catalog", "shipping",
        "search", "reviews", "media", "recommendations", "coupons", "returns", "wishlist", "tax",
    ),
    "bookings": (
        "booking", "calendar", "scheduler", "availability", "notifications", "geo", "reminders",
        "resources", "staff", "invoices", "forms", "sessions",
    ),
    "fintech": (
        "ledger", "accounts", "transfers", "fraud", "kyc", "statements", "cards", "fx-rates",
        "limits", "settlement", "onboarding", "risk-scoring",
    ),
    "media": (
        "playback", "transcoder", "subtitles", "playlists", "thumbnails", "drm", "uploads",
        "feed", "comments", "likes", "profiles", "ads",
    ),
    "platform": (
        "auth", "users", "gateway", "email", "sms", "audit", "billing", "webhooks", "exports",
        "config-api", "tenants", "permissions", "rate-limiter", "identity",
    ),
}

# Entry points; kept apart so the frontend tier gets frontend-sounding names more often.
FRONTEND_NAMES = (
    "web-frontend", "api-gateway", "mobile-bff", "storefront", "edge-proxy", "partner-api",
    "admin-portal", "public-api", "web-bff",
)

# (name, port, kind). kind: sql | cache | queue | search | doc
DATASTORES = (
    ("mysql-legacy", 3306, "sql"), ("postgres-orders", 5432, "sql"), ("postgres-main", 5432, "sql"),
    ("postgres-billing", 5432, "sql"), ("mysql-users", 3306, "sql"), ("redis-cache", 6379, "cache"),
    ("redis-sessions", 6379, "cache"), ("memcached", 11211, "cache"), ("kafka", 9092, "queue"),
    ("rabbitmq", 5672, "queue"), ("elasticsearch", 9200, "search"), ("opensearch", 9200, "search"),
    ("mongo-profiles", 27017, "doc"), ("cassandra-events", 9042, "doc"),
)

RESOURCES = (
    "tenant", "sku", "currency", "timezone", "locale", "coupon", "resource", "slot_id", "order",
    "invoice", "user", "cart", "session", "item", "price", "account",
)

PEOPLE = ("ana", "bo", "chen", "dev-bot", "eli", "fay", "gus", "hana", "ivan", "jo", "kim", "lena",
          "mo", "nia", "omar", "priya", "deploy-bot", "renovate[bot]")

TICKET_PROJECTS = ("SCHED", "PAY", "OPS", "INC", "SUP", "CORE", "BOOK", "PLAT", "SHOP")

DOMAINS = ("Bookings/Server", "Commerce/Backend", "Payments/Platform", "Media/Streaming",
           "Platform/Core", "Growth/Web")

# ---------------------------------------------------------------------------------------------
# Background INFO/DEBUG lines (steady traffic). Two house styles: plain text and key=value.
INFO_PLAIN = (
    "healthcheck ok", "cache hit ratio {pct}%", "user {id} session refreshed",
    "processed batch of {n3} messages", "GET /api/{res}/{id} 200 {ms}ms", "POST /api/{res} 201 {ms}ms",
    "GET /api/{res}?page={n} 200 {ms}ms", "PUT /api/{res}/{id} 204 {ms}ms",
    "scheduled job sync-{res} finished in {ms}ms", "connection pool stats: active={n} idle={n3}",
)
INFO_KV = (
    "msg=\"request completed\" method=GET path=/api/{res}/{id} status=200 duration_ms={ms}",
    "msg=\"request completed\" method=POST path=/api/{res} status=201 duration_ms={ms}",
    "msg=healthcheck status=ok", "msg=\"cache stats\" hit_ratio=0.{pct}",
    "msg=\"batch processed\" size={n3}", "msg=\"session refreshed\" user_id={id}",
    "msg=\"job finished\" job=sync-{res} duration_ms={ms}",
)
DEBUG_LINES = ("cache miss for key {res}:{id}", "feature flags reloaded ({n3} flags)",
               "opened connection to {peer}", "retry budget: {n}/10 used")

# Steady background noise: present before and after the onset, on every service.
NOISE = (
    "Slow query detected: {ms_slow}ms on {res}", "Failed to emit metric: connection reset",
    "Deprecated API /v1/{res} called by client {id}", "Retrying request to {peer} after timeout (attempt {n})",
    "Slow query detected ({ms_slow} ms) on table {res}s", "statsd flush failed: buffer full, dropped {n3} points",
    "Client {id} sent malformed header X-Request-Id", "TLS session resumption failed for {peer}, doing full handshake",
)

# Unrelated noisy errors used as decoys (a burst or a steady stream on a bystander service).
NOISY_DECOY = (
    "Failed to refresh feature cache: HTTP {status} from config-service",
    "Failed to publish audit event: topic audit-events not found",
    "License check failed: HTTP {status} from license-server, using cached entitlement",
    "Could not load translations for locale {locale}: file not found",
    "Webhook delivery to partner {id} failed: HTTP {status}",
    "Schema registry lookup failed for subject {res}-value, using cached schema",
    "Exporter error: failed to push spans to otel-collector:4317 (deadline exceeded)",
)

# ---------------------------------------------------------------------------------------------
# Errors a caller logs when its callee fails; every one names the callee in some form.
CALLER_ERRORS_APP = (
    "Upstream {callee} returned {status} for /api/{res}", "Call to {callee} timed out after {ms_to}ms",
    "Circuit breaker OPEN for {callee}", "timeout calling {callee} ({ms_to} ms)",
    "Error talking to {callee}: deadline exceeded", "{callee} unavailable: connection reset by peer",
    "POST http://{callee}.svc.cluster.local/api/{res} failed: {status} Service Unavailable",
    "Retrying request to {callee} after timeout (attempt {n})",
    "grpc call {callee}.Get{Res} failed: UNAVAILABLE", "HTTP {status} from {callee} on GET /api/{res}/{id}",
    "msg=\"upstream error\" upstream={callee} status={status} path=/api/{res}",
)
CALLER_ERRORS_STORE = {
    "sql": (
        "Connection refused: {callee}:{port} ({n} retries)", "could not connect to server: {callee}:{port} (timeout)",
        "Failed to acquire connection to {callee} within {ms_to}ms", "Lost connection to {callee} during query",
        "sqlalchemy.exc.OperationalError: ({callee}) server closed the connection unexpectedly",
        "Query on {callee} timed out after {ms_to}ms: SELECT * FROM {res}s",
    ),
    "cache": (
        "Connection refused: {callee}:{port} ({n} retries)",
        "redis.exceptions.ConnectionError: Error 111 connecting to {callee}:{port}. Connection refused.",
        "dial tcp {ip}:{port}: connect: connection refused ({callee})", "Cache {callee} timeout after {ms_to}ms",
        "cache backend {callee} unavailable, serving from origin",
    ),
    "queue": (
        "Failed to publish to {callee}: broker not available", "Connection refused: {callee}:{port} ({n} retries)",
        "Producer for {callee} timed out after {ms_to}ms, message requeued",
        "consumer group lost connection to {callee}, rebalancing",
    ),
    "search": (
        "Search request to {callee} failed: HTTP {status}", "Connection refused: {callee}:{port} ({n} retries)",
        "{callee} query timed out after {ms_to}ms (index {res}s)",
    ),
    "doc": (
        "Connection refused: {callee}:{port} ({n} retries)", "No reachable servers for {callee} after {ms_to}ms",
        "Read from {callee} timed out ({ms_to} ms)",
    ),
}

# ---------------------------------------------------------------------------------------------
# Errors at the origin, by family. Each world picks one or two and keeps them.
DEPLOY_ERRORS = (
    "ValueError: invalid literal for int() with base 10: '{res}'",
    "NullPointerException at com.acme.{Res}Service.resolve({Res}Service.java:{line})",
    "TypeError: Cannot read properties of undefined (reading '{res}')",
    "KeyError: '{res}_id' in handler /api/{res}",
    "panic: runtime error: index out of range [{n}] with length {n}",
    "AttributeError: 'NoneType' object has no attribute '{res}'",
    "Unhandled exception in POST /api/{res}: serialization of {Res} failed",
    "failed to decode {res} response: unexpected end of JSON input",
    "500 Internal Server Error on GET /api/{res}/{id}: IllegalStateException",
)
FLAG_ERRORS = (
    "NullPointerException in {Res}V2Handler (flag {flag} on)",
    "Error rendering {res} with new layout: missing field '{res}_label'",
    "TypeError: {res}.formatV2 is not a function",
    "Unhandled exception in experimental {res} path: KeyError '{res}_v2'",
    "request failed in {flag} variant: IndexError: list index out of range",
)
MIGRATION_ERRORS = (
    "column \"{col}\" does not exist at character {n3}",
    "relation \"{table}_v2\" does not exist",
    "duplicate key value violates unique constraint \"idx_{table}_{col}\"",
    "Lock wait timeout exceeded; try restarting transaction (table {table})",
    "null value in column \"{col}\" of relation \"{table}\" violates not-null constraint",
    "deadlock detected while updating {table}",
    "ERROR 1054 (42S22): Unknown column '{col}' in 'field list'",
)
# Harmful config changes: (key, from, to, error templates it produces).
BAD_CONFIGS = (
    ("http.client.timeout_ms", "2000", "50", ("Request to {peer} timed out after 50ms",
                                              "timeout waiting for {peer} response (50 ms budget)")),
    ("db.pool.max_size", "50", "2", ("Timed out waiting for a free DB connection (pool size 2)",
                                     "connection pool exhausted: 2/2 in use, {n} waiting")),
    ("auth.jwks_url", "https://idp.internal/jwks", "https://idp.internal/jwks.json",
     ("JWT validation failed: unable to fetch signing keys (HTTP 404)", "401 Unauthorized: invalid token signature")),
    ("rate_limit.rps", "500", "5", ("429 Too Many Requests: rate limit 5 rps exceeded for client {id}",
                                    "Request rejected by limiter (limit=5/s)")),
    ("tls.min_version", "TLS1.2", "TLS1.3", ("TLS handshake failed with {peer}: protocol version not supported",
                                             "SSL: UNSUPPORTED_PROTOCOL talking to {peer}")),
    ("serializer.format", "json", "avro", ("Failed to deserialize {res} payload: unknown magic byte",
                                           "SerializationException: unexpected format for {Res}")),
    ("region", "eu-west-1", "eu-west-9", ("Unknown region 'eu-west-9' in endpoint config",
                                          "Could not resolve endpoint {res}.eu-west-9.internal")),
)
# Spontaneous failures of an app service (no change there).
APP_FAILURE_ERRORS = (
    "java.lang.OutOfMemoryError: Java heap space", "worker process exited unexpectedly (signal 9), restarting",
    "disk usage 100% on /var/lib/{svc}: no space left on device", "Too many open files (accept4)",
    "Health check failed: /ready returned 503", "certificate for {svc}.internal expired, handshake refused",
    "event loop blocked for {ms_slow}ms", "Failed to acquire lease: etcd cluster unavailable",
)
CAPACITY_ERRORS = {
    "cpu": ("Thread pool exhausted: {n3}/{n3} workers busy", "request queue full ({n3} pending), shedding load",
            "event loop lag {ms_slow}ms exceeds threshold", "Rejected request: server overloaded (503)"),
    "mem": ("GC overhead limit exceeded", "OOMKilled: container {svc} restarted (memory limit reached)",
            "java.lang.OutOfMemoryError: unable to create new native thread",
            "memory pressure: evicting {n3} cache entries"),
    "conn": ("connection pool timeout after {ms_to}ms: {n3}/{n3} in use", "too many connections (max_connections={n3})",
             "FATAL: sorry, too many clients already", "Timed out acquiring connection from pool"),
}
CAPACITY_STORE_CALLER = {
    "cpu": ("Query on {callee} timed out after {ms_to}ms: SELECT * FROM {res}s", "{callee} responding slowly ({ms_slow} ms)",
            "Call to {callee} timed out after {ms_to}ms"),
    "mem": ("{callee} OOM command not allowed when used memory > 'maxmemory'", "Connection reset by {callee}:{port}"),
    "conn": ("FATAL: sorry, too many clients already ({callee})", "too many connections to {callee}:{port}",
             "Failed to acquire connection to {callee} within {ms_to}ms"),
}

# ---------------------------------------------------------------------------------------------
# Changes.
DEPLOY_SUMMARIES = (
    "Deploy {svc} {version}", "{svc} {version}: improve retry policy", "Release {svc}: fix typo in email template",
    "{svc} {version}: migrate to new SDK", "Bump {svc} to {version}", "{svc} {version}: refactor {res} handling",
    "Release {svc} {version} (dependency updates)", "{svc} {version}: add {res} pagination",
)
HARMLESS_CONFIGS = (
    ("log.level", "INFO", "DEBUG", "Tune {svc} log level"), ("cache.ttl_s", "300", "600", "Raise {svc} cache TTL"),
    ("http.client.timeout_ms", "2000", "2500", "Relax {svc} client timeout"),
    ("metrics.interval_s", "30", "15", "Scrape {svc} metrics more often"),
    ("db.pool.max_size", "40", "50", "Grow {svc} DB pool"), ("log.sampling", "0.1", "0.2", "Sample more {svc} logs"),
)
FLAG_NAMES = ("newHeader", "betaSearch", "darkMode", "newPricing", "fastCheckout", "v2Layout", "smartRetry",
              "asyncExport", "newOnboarding", "compactCards")
FLAG_SUMMARIES = ("Roll out {flag} to {to}", "Enable {flag} for {to} of traffic", "Ramp {flag} {from_} -> {to}",
                  "{flag}: rollout {to}")
MIGRATION_SUMMARIES = ("Run migration {migration} on {svc}", "{svc}: apply schema migration {migration}",
                       "Migrate {table} table ({migration})")
MIGRATION_ACTIONS = ("add_{col}_to_{table}", "rename_{col}_in_{table}", "drop_legacy_{col}_from_{table}",
                     "add_index_{table}_{col}", "split_{table}_{col}")
COLUMNS = ("region", "discount_code", "tenant_id", "external_ref", "status_v2", "currency_code", "archived_at")
INFRA_ACTIONS = (
    ("scale_down", "Scale {svc} from {n} to {m} nodes"), ("failover", "Failover {svc} primary to replica"),
    ("upgrade", "Upgrade {svc} engine version"), ("resize", "Resize {svc} instance class"),
    ("rotate_certs", "Rotate TLS certificates on {svc}"), ("scale_up", "Scale {svc} from {n} to {m} nodes"),
)

# ---------------------------------------------------------------------------------------------
# Alerts, tickets, chat.
ALERT_TITLES = {
    "errors": ("High error rate on {svc}", "Error budget burn on {svc}", "{svc} 5xx ratio above 5%",
               "[{svc}] HTTP error rate critical", "{svc}: elevated 5xx responses"),
    "latency": ("Latency SLO burn on {svc}", "{svc} p95 latency above 500ms", "Slow responses on {svc}"),
    "saturation_cpu": ("CPU saturation on {svc}", "{svc} pods throttled", "{svc} CPU above 90% for 5m"),
    "saturation_mem": ("{svc} memory usage above 90%", "{svc} containers near memory limit", "OOM risk on {svc}"),
    "saturation_conn": ("Connection pool near limit on {svc}", "{svc} connections above 95% of max",
                        "{svc} connection saturation"),
    "noise": ("Disk usage 85% on {svc}", "Certificate for {svc} expires in 14 days", "{svc} consumer lag high"),
}
TICKET_SUMMARIES = ("{svc}: errors since this morning", "Customers report failures on {svc}", "{svc} returning 5xx",
                    "Slow responses and errors in {svc}", "[{svc}] users cannot complete requests",
                    "Outage: {svc} failing intermittently")
TICKET_DESCRIPTIONS = (
    "Since about {hhmm} UTC users see errors when using {svc}.{alert_ref} Please investigate.",
    "Support got several reports that {svc} fails since ~{hhmm} UTC.{alert_ref} Can someone look?",
    "Starting around {hhmm} UTC requests to {svc} fail or hang.{alert_ref}",
)
TEXT_TRIGGERS = ("{svc} is throwing 500s since about {hhmm} UTC", "users say {svc} is slow and failing since {hhmm}",
                 "something is wrong with {svc} since ~{hhmm} UTC, errors everywhere",
                 "{svc} error rate jumped around {hhmm} UTC, please investigate")
CHAT_ONCALL = ("anyone touched {svc} today?", "looking at {svc} now", "seeing 5xx on the {svc} dashboard",
               "is this related to the earlier alerts?", "ack, investigating {svc}")
