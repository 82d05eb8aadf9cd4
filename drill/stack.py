"""The drill's processes: the shop, its customers, Prometheus, Alertmanager and ``pm serve``.

:class:`Stack` starts each in its own process group on free loopback ports under one work directory
and stops every group it started (SIGTERM, then SIGKILL) however the drill ends. The shop's
processes and the load generator also die with their parent and after a time-to-live, so even a
drill killed with SIGKILL leaves no shop behind.

Monitoring, as a team would set it up for this shop:

* Prometheus scrapes every service every 5 s (the ``service`` label set per target) and evaluates
  two alert rules every 5 s: the 5xx share of a service over 20 s above 5 %, and its p95 latency
  over 20 s above 500 ms, each for 15 s.
* Alertmanager groups by alert name and service, waits 1 s, and sends to ``pm serve``'s
  ``/webhooks/alertmanager`` with a bearer key.
* ``pm serve`` runs with ``PM_SOURCES`` pointing at this shop: metrics from Prometheus
  (``http_server_requests`` convention plus the ``plain`` gauges ``cpu_util`` and
  ``db_connections``), logs from the per-service files, alerts and changes from its own events
  store, topology from a file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from drill.shop.service import BASE_VERSIONS, DEFAULT_CONFIG, OURS, SERVICES
from sandbox.promrun import PrometheusProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "drill-key"
SCRAPE_S = 5
#: Who calls whom (the world format's topology.yaml); paygate is the outside provider.
CALLS = {"frontend": ["checkout", "inventory"], "checkout": ["inventory", "payments"], "payments": ["paygate"],
         "inventory": []}

ALERT_RULES = {
    "groups": [{
        "name": "shop",
        "interval": f"{SCRAPE_S}s",
        "rules": [
            {"alert": "ShopHighErrorRate",
             "expr": 'sum by (service) (rate(http_requests_total{code=~"5.."}[20s])) '
                     "/ sum by (service) (rate(http_requests_total[20s])) > 0.05",
             "for": "15s", "labels": {"severity": "critical"},
             "annotations": {"summary": "{{ $labels.service }}: {{ $value | humanizePercentage }} of requests fail"}},
            {"alert": "ShopHighLatency",
             "expr": "histogram_quantile(0.95, sum by (service, le) "
                     "(rate(http_request_duration_seconds_bucket[20s]))) > 0.5",
             "for": "15s", "labels": {"severity": "warning"},
             "annotations": {"summary": "{{ $labels.service }}: p95 latency {{ $value | humanizeDuration }}"}},
        ],
    }],
}


def now_iso() -> str:
    """The time now, ISO-8601 UTC with ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _die_with_parent() -> None:
    # Runs in the child before exec: SIGTERM it when the drill dies (Linux prctl PR_SET_PDEATHSIG).
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Child:
    """A process the drill started, in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                         start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(lines[-3:]) or "no output"

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL it after ``grace_s``."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever of the group is left
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)


def wait_http(url: str, timeout_s: float, child: Child | None = None, what: str = "") -> None:
    """Wait until ``url`` answers 200.

    Raises:
        RuntimeError: the child exited or ``timeout_s`` passed (its log's last lines quoted).
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise RuntimeError(f"{what or child.name} exited at start: {child.tail()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what or url} did not answer in {timeout_s:.0f}s" + (f": {child.tail()}" if child else ""))


def alertmanager_binary() -> str:
    """The Alertmanager binary (Debian's ``prometheus-alertmanager``).

    Raises:
        RuntimeError: not installed (says to run scripts/ensure-prometheus.sh).
    """
    for name in ("prometheus-alertmanager", "alertmanager"):
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
        if found:
            return found
    raise RuntimeError("Alertmanager is not installed; run bash scripts/ensure-prometheus.sh")


def logs_provider_available() -> bool:
    """Whether this checkout has the ``files`` log provider (sources/logfiles.py)."""
    return importlib.util.find_spec("sources.logfiles") is not None


class Stack:
    """Everything one drill run needs, under ``work`` (a fresh directory per fault run).

    Args:
        work: the run's directory: the shop's files (ports, flags, config, logs, SQLite), the
            monitoring configs, ``pm serve``'s home and every process's log.
        rps: the customers' steady rate at the frontend.
        ttl_s: how long any shop process may live.
        slack_url: a Slack Web API base URL (the stand-in) for ``pm serve``'s publisher, or None.
    """

    def __init__(self, work: Path, *, rps: float = 12.0, ttl_s: float = 900.0, slack_url: str | None = None) -> None:
        self.work = work
        self.rps = rps
        self.ttl_s = ttl_s
        self.slack_url = slack_url
        self.children: dict[str, Child] = {}
        self.prom: PrometheusProcess | None = None
        self.ports = {name: free_port() for name in SERVICES}
        self.am_port = free_port()
        self.pm_port = free_port()
        self.pm_url = f"http://127.0.0.1:{self.pm_port}"
        self.pm_home = work / "pm"
        self.versions = dict(BASE_VERSIONS)
        self.changes: list[dict[str, Any]] = []
        #: Every process id this stack started (a deploy adds one), to prove they are all gone.
        self.pids: list[int] = []

    # --- the shop --------------------------------------------------------------------------------

    def write_shop_files(self) -> None:
        """ports.json, flags.json, each service's config, load.json and topology.yaml."""
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "logs").mkdir(exist_ok=True)
        (self.work / "config").mkdir(exist_ok=True)
        (self.work / "ports.json").write_text(json.dumps(self.ports))
        self.write_json("flags.json", {"checkout": {"new_pricing": False}})
        for name in SERVICES:
            self.write_json(f"config/{name}.json", DEFAULT_CONFIG[name])
        self.write_json("load.json", {"rps": self.rps, "checkout_share": 0.5, "coupon_share": 0.4})
        self.write_json("thirdparty.json", {"fail_rate": 0.0, "extra_ms": 0})
        topology = {"services": [{"name": name, "calls": CALLS[name]} for name in OURS]}
        (self.work / "topology.yaml").write_text(yaml.safe_dump(topology, sort_keys=False))

    def write_json(self, relative: str, value: Any) -> None:
        """Replace a shop file atomically (the services re-read it when its mtime changes)."""
        path = self.work / relative
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(value, indent=1))
        os.replace(tmp, path)

    def read_json(self, relative: str) -> Any:
        return json.loads((self.work / relative).read_text())

    def start_service(self, name: str) -> Child:
        """Start one service at its current version; wait until its port answers with that version."""
        version = self.versions[name]
        argv = [sys.executable, "-m", "drill.shop.service", name, "--port", str(self.ports[name]),
                "--run", str(self.work), "--version", version, "--ttl", str(self.ttl_s)]
        child = Child(name, argv, self.work / "proc" / f"{name}.out", env=self._py_env())
        self.pids.append(child.proc.pid)
        url = f"http://127.0.0.1:{self.ports[name]}/healthz"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not child.alive():
                raise RuntimeError(f"{name} {version} exited at start: {child.tail()}")
            try:
                # During a deploy the old version answers on the same port too: wait for the new one.
                if httpx.get(url, timeout=1.0).json().get("version") == version:
                    return child
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.05)
        child.stop()
        raise RuntimeError(f"{name} {version} did not answer in 15s: {child.tail()}")

    def start_shop(self) -> None:
        """Start the shop's services (callees first) and its customers (``write_shop_files`` first)."""
        for name in ("paygate", "inventory", "payments", "checkout", "frontend"):
            self.children[name] = self.start_service(name)
        argv = [sys.executable, "-m", "drill.shop.load", "--url", f"http://127.0.0.1:{self.ports['frontend']}",
                "--run", str(self.work), "--duration", str(self.ttl_s)]
        self.children["load"] = Child("load", argv, self.work / "proc" / "load.out", env=self._py_env())
        self.pids.append(self.children["load"].proc.pid)

    def deploy(self, service: str, version: str) -> None:
        """A deploy: start ``version`` beside the running one, then stop the old one."""
        old = self.children[service]
        self.versions[service] = version
        self.children[service] = self.start_service(service)
        old.stop()

    # --- monitoring and pm serve -----------------------------------------------------------------

    def prometheus_config(self) -> str:
        rules = self.work / "monitoring" / "rules.yml"
        rules.parent.mkdir(parents=True, exist_ok=True)
        rules.write_text(yaml.safe_dump(ALERT_RULES, sort_keys=False))
        config = {
            "global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s",
                       "scrape_timeout": "4s"},
            "rule_files": [str(rules)],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.am_port}"]}]}]},
            "scrape_configs": [{
                "job_name": "shop",
                "static_configs": [{"targets": [f"127.0.0.1:{self.ports[name]}"], "labels": {"service": name}}
                                   for name in OURS],
            }],
        }
        return yaml.safe_dump(config, sort_keys=False)

    def start_prometheus(self) -> None:
        self.prom = PrometheusProcess(self.work / "monitoring" / "prom-data", config=self.prometheus_config())
        self.prom.start()
        if self.prom.proc is not None:
            self.pids.append(self.prom.proc.pid)

    def start_alertmanager(self) -> None:
        config = {
            "route": {"receiver": "production-master", "group_by": ["alertname", "service"], "group_wait": "1s",
                      "group_interval": "5s", "repeat_interval": "1h"},
            "receivers": [{"name": "production-master", "webhook_configs": [{
                "url": f"{self.pm_url}/webhooks/alertmanager", "send_resolved": False,
                "http_config": {"authorization": {"type": "Bearer", "credentials": API_KEY}}}]}],
        }
        path = self.work / "monitoring" / "alertmanager.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        argv = [alertmanager_binary(), f"--config.file={path}", f"--storage.path={self.work / 'monitoring' / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{self.am_port}", "--cluster.listen-address=", "--log.level=warn"]
        self.children["alertmanager"] = child = Child("alertmanager", argv, self.work / "proc" / "alertmanager.out")
        self.pids.append(child.proc.pid)
        wait_http(f"http://127.0.0.1:{self.am_port}/-/ready", 30, child)

    def sources_yaml(self) -> Path:
        """The sources.yaml ``pm serve`` reads (PM_SOURCES): this shop's systems."""
        assert self.prom is not None
        doc: dict[str, Any] = {
            "metrics": [{"kind": "prometheus", "url": self.prom.url, "convention": ["http_server_requests", "plain"],
                         "step_s": SCRAPE_S, "rate_window_s": 30}],
            "alerts": [{"kind": "events"}],
            "changes": [{"kind": "events"}],
            "topology": [{"kind": "file", "path": "topology.yaml"}],
        }
        if logs_provider_available():
            doc["logs"] = [{"kind": "files", "path": "logs/{service}.jsonl"}]
        path = self.work / "sources.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def _py_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PM_", "SLACK_", "JIRA_", "MCP_"))
               and k not in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "S3_BUCKET", "VAULT_ADDR", "API_KEYS",
                             "ANTHROPIC_API_KEY")}
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.update(extra)
        return env

    def start_pm_serve(self) -> None:
        extra = {"PM_HOME": str(self.pm_home), "API_KEYS": API_KEY, "PM_SOURCES": str(self.sources_yaml()),
                 "LOG_LEVEL": "WARNING", "POST_DEPLOY_CHECK_DELAY_MS": "300000"}
        if self.slack_url:
            extra.update(SLACK_BOT_TOKEN="xoxb-drill", SLACK_API_URL=self.slack_url, PM_DEFAULT_CHANNEL="C0DRILL")
        self.pm_home.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(self.pm_port),
                "--worker", "yes", "--schedules", "no"]
        self.children["pm-serve"] = child = Child("pm serve", argv, self.work / "proc" / "pm-serve.out",
                                                  env=self._py_env(**extra))
        self.pids.append(child.proc.pid)
        wait_http(f"{self.pm_url}/healthz", 90, child, "pm serve")

    def post_change(self, kind: str, service: str, summary: str, details: dict[str, Any], *,
                    author: str = "ci") -> str:
        """Report a change to ``POST /webhooks/change`` as CI or the flag service would; returns its id."""
        change_id = f"{kind.replace('_', '-')}-{service}-{len(self.changes) + 1}-{int(time.time()) % 100000}"
        record = {"id": change_id, "ts": now_iso(), "kind": kind, "service": service, "author": author,
                  "summary": summary, "details": details}
        resp = httpx.post(f"{self.pm_url}/webhooks/change", json=[record],
                          headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
        if resp.status_code // 100 != 2:
            raise RuntimeError(f"POST /webhooks/change: HTTP {resp.status_code} {resp.text[:200]}")
        self.changes.append(record)
        return change_id

    # --- the whole -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start Alertmanager, Prometheus and ``pm serve``, then the shop and its customers.

        The monitoring goes first so that its start (pm serve's imports take seconds of CPU) does
        not slow the shop's first minute, which is the baseline every investigation compares with.
        """
        self.write_shop_files()
        self.start_alertmanager()
        self.start_prometheus()
        self.start_pm_serve()
        self.start_shop()

    def stop(self) -> None:
        """Stop everything this stack started (the customers first, pm serve last but one)."""
        order = ["load", "frontend", "checkout", "payments", "inventory", "paygate", "alertmanager", "pm-serve"]
        for name in order + [n for n in self.children if n not in order]:
            child = self.children.pop(name, None)
            if child is not None:
                child.stop()
        if self.prom is not None:
            self.prom.stop()
            self.prom = None
