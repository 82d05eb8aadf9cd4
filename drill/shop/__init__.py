"""The drill's shop: five HTTP services on loopback and a load generator.

``frontend`` → ``checkout`` → ``payments`` → ``paygate`` (the outside payment provider, run here but
not ours: not scraped, no changes reported) and ``checkout`` / ``frontend`` → ``inventory`` (a SQLite
store behind a small connection pool). Every service but ``paygate`` exports Prometheus metrics in
the prometheus-client ``http_requests_total`` / ``http_request_duration_seconds`` style plus the
``cpu_util`` and ``db_connections`` gauges, and writes JSON log lines to ``logs/<service>.jsonl``.
"""
