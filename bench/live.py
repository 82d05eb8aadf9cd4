"""Live parity: every world investigated through real systems (replayed) and through the sandbox.

For each world: ``sandbox/replay.py`` writes it as real systems hold it; promtool builds TSDB blocks
from its OpenMetrics file and a real Prometheus (Debian's package) serves them on a loopback port
(one per world: worlds share service and metric names); a ``pm serve`` subprocess (one per world, its
own PM_HOME, API_KEYS set, PM_ALERT_NAME_PATTERNS matching nothing so no alert starts an
investigation) takes the changes on ``POST /webhooks/change`` and the alerts on
``POST /webhooks/alertmanager``; then the world is investigated twice —

* live: ``pm investigate --sources sources.yaml --alert am-... | --text ... --start W0 --end W1 --json``
  (metrics from Prometheus, logs from per-service files, changes and alerts from the events store,
  topology from the file);
* sandbox: ``pm investigate --world DIR --json``;

both as subprocesses by default (``--mode subprocess``, the honest end to end) or both in process
(``--mode inprocess``: ``engine.run_all`` over the MCP gateway of either config, timed like
bench/rca.py, engine only). Top-1 ``(service, change_id)``, verdict and confidence are compared; wall
time per world is printed with the live/sandbox ratio, and Prometheus's own
``prometheus_http_requests_total`` (read from its /metrics before and after the live investigation,
by handler) gives the HTTP requests that really reached it.

Suites: ``--count N --seed S`` (bench/rca.py's generator), ``--alt-count N --alt-seed S`` (the
independent writer, bench/altworlds.py), ``--nezha DIR`` (read in place; ``--nezha-only tt-001,...``
or ``--nezha-limit N``), the shared examples (``--examples``), or ``--worlds DIR ...``.

Usage: .venv/bin/python bench/live.py [--count 20] [--seed 202] [--examples] [--nezha DIR --nezha-limit 10]
       [--alt-count 0 --alt-seed 14] [--worlds DIR ...] [--mode subprocess|inprocess] [--keep DIR] [--quiet]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.rca import truth_of  # noqa: E402
from sandbox.promrun import PrometheusProcess, build_blocks, free_port  # noqa: E402
from sandbox.replay import replay  # noqa: E402

API_KEY = "live-bench-key"
#: No alert name matches it, so the replayed alerts are kept as history and start nothing.
NO_ALERT_PATTERN = "pm-live-bench-starts-no-investigation"
#: Most change records per POST /webhooks/change (the listener takes at most 1,000).
CHANGE_CHUNK = 500
#: Alerts per Alertmanager payload posted.
ALERT_CHUNK = 500
_DROP_ENV = ("REDIS_URL", "RABBITMQ_URL", "PM_WORLD", "MCP_CONFIG", "PM_SOURCES", "DATABASE_URL", "ANTHROPIC_API_KEY",
             "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "JIRA_URL")


def child_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``pm`` subprocess: its own PM_HOME, nothing that reaches elsewhere."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    env.update(PM_HOME=str(home), PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING", **extra)
    return env


class PmServe:
    """``pm serve`` on a free loopback port with its own PM_HOME (a context manager; ``.url``)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "serve.log"

    def __enter__(self) -> PmServe:
        self.home.mkdir(parents=True, exist_ok=True)
        env = child_env(self.home, API_KEYS=API_KEY, PM_ALERT_NAME_PATTERNS=NO_ALERT_PATTERN)
        # pm serve does not migrate; an operator runs `pm db upgrade` first, so does the bench.
        subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade"], env=env, cwd=ROOT, check=True,
                       capture_output=True, timeout=120)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--worker", "no", "--schedules", "no"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pm serve exited: {self.log.read_text()[-500:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError("pm serve did not answer /healthz in 60 s")

    def post(self, path: str, body: Any) -> None:
        """POST ``body`` as JSON with the bearer key; raise unless 2xx."""
        r = httpx.post(f"{self.url}{path}", json=body, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
        if r.status_code // 100 != 2:
            raise RuntimeError(f"POST {path}: HTTP {r.status_code} {r.text[:300]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def post_events(serve: PmServe, out: Path) -> tuple[int, int]:
    """Post the replayed changes and alerts; return (changes, alerts) posted."""
    changes = json.loads((out / "changes.json").read_text())
    for i in range(0, len(changes), CHANGE_CHUNK):
        serve.post("/webhooks/change", changes[i:i + CHANGE_CHUNK])
    payload = json.loads((out / "alerts.json").read_text())
    alerts = payload["alerts"]
    for i in range(0, len(alerts), ALERT_CHUNK):  # the listener takes bodies up to 1 MiB by default
        serve.post("/webhooks/alertmanager", {**payload, "groupKey": f"{payload['groupKey']}#{i}",
                                              "alerts": alerts[i:i + ALERT_CHUNK]})
    return len(changes), len(alerts)


def events_provider(sources_path: Path, section: str) -> Any:
    """The ``events`` provider of ``section`` in the bench's sources.yaml (to wait for the store and check ids)."""
    from sources.registry import build_provider
    from store.sources_file import load_sources

    sources = load_sources(sources_path)
    entry = next(e for e in sources.entries if e.section == section)
    return build_provider(entry, sources)


def wait_stored(sources_path: Path, changes: int, alerts: int, timeout_s: float = 60.0) -> None:
    """Wait until the listener has kept every posted change and alert (it processes after its 202)."""
    ch, al = events_provider(sources_path, "changes"), events_provider(sources_path, "alerts")
    deadline = time.monotonic() + timeout_s
    while True:
        got = (len(ch.changes_list()["changes"]), len(al.alerts_list()["alerts"]))
        if got == (changes, alerts):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the events store holds {got} (changes, alerts), expected {(changes, alerts)}")
        time.sleep(0.1)


def bench_sources(out: Path, prom_url: str, database_url: str) -> Path:
    """The replay's sources.yaml with the real Prometheus URL and the events entries on pm serve's database."""
    path = out / "sources.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["metrics"][0]["url"] = prom_url
    for section in ("changes", "alerts"):
        doc[section][0]["database_url"] = {"env": "PM_LIVE_EVENTS_DB"}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.environ["PM_LIVE_EVENTS_DB"] = database_url  # read by this process and handed to children
    return path


def prom_requests(url: str) -> dict[str, float]:
    """``prometheus_http_requests_total`` by handler, from Prometheus's own /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{"):
            handler = re.search(r'handler="([^"]*)"', line)
            key = handler.group(1) if handler else "?"
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def request_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Requests per handler between two readings (the /metrics read itself left out)."""
    delta = {k: int(after.get(k, 0) - before.get(k, 0)) for k in after}
    delta.pop("/metrics", None)
    return {k: v for k, v in sorted(delta.items()) if v}


def run_pm(args: list[str], home: Path, timeout: float = 900) -> tuple[dict[str, Any], float]:
    """Run ``pm investigate ... --json`` as a subprocess; return (report, wall seconds)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bot.cli", "investigate", *args, "--json"], cwd=ROOT,
                          env=child_env(home), capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"pm investigate {' '.join(args[:3])}: exit {done.returncode}: {done.stderr.strip()[-400:]}")
    return json.loads(done.stdout), elapsed


def live_inprocess(sources_path: Path, args: list[str]) -> tuple[dict[str, Any], float]:
    """The engine over the sources' MCP gateway, in this process (timed like bench/rca.py: engine only)."""
    from agents import engine
    from agents.gateway import open_gateway
    from agents.sources_gateway import gateway_config
    from commands.live import live_trigger
    from store.sources_file import load_sources

    opts = dict(zip(args[::2], args[1::2], strict=True))
    sources = load_sources(sources_path)
    trigger = live_trigger(text=opts.get("--text"), alert=opts.get("--alert"), at=opts.get("--at"),
                           start=opts.get("--start"), end=opts.get("--end"), lookback_s=sources.lookback_s,
                           lookahead_s=sources.lookahead_s)
    tools = open_gateway(gateway_config(sources), variables={"python": sys.executable})
    try:
        started = time.perf_counter()
        report = engine.run_all(tools, trigger, trigger.get("window"))
        return report, time.perf_counter() - started
    finally:
        tools.close()


def sandbox_inprocess(world: Path) -> tuple[dict[str, Any], float]:
    """The engine over the sandbox's in-process MCP servers (bench/rca.py's path)."""
    from agents import engine
    from bench.rca import open_tools

    tools = open_tools(world, "inprocess")
    try:
        started = time.perf_counter()
        report = engine.run_all(tools, None, None)
        return report, time.perf_counter() - started
    finally:
        if hasattr(tools, "close"):
            tools.close()


def top(report: dict[str, Any]) -> tuple[Any, Any]:
    ranked = report.get("hypotheses") or []
    return (ranked[0]["service"], ranked[0]["change_id"]) if ranked else (None, None)


def feature_diff(sandbox: dict[str, Any], live: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The top hypothesis's features (the confidence model's inputs) that differ: name -> (sandbox, live)."""
    a = ((sandbox.get("hypotheses") or [{}])[0].get("features")) or {}
    b = ((live.get("hypotheses") or [{}])[0].get("features")) or {}
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def one_world(world: Path, work: Path, mode: str, logs: str = "per-service") -> dict[str, Any]:
    """Replay, serve, investigate live and in the sandbox; return the comparison row."""
    out = work / "replay"
    started = time.perf_counter()
    manifest = replay(world, out, logs=logs)
    build_blocks(out / "metrics.om", work / "prom-data")
    setup_replay = time.perf_counter() - started
    with PrometheusProcess(work / "prom-data") as prom, PmServe(work / "serve-home") as serve:
        sources_path = bench_sources(out, prom.url, f"sqlite:///{(work / 'serve-home' / 'pm.sqlite3').resolve()}")
        n_changes, n_alerts = post_events(serve, out)
        wait_stored(sources_path, n_changes, n_alerts)
        args = list(manifest["investigate"])
        if args[0] == "--alert":
            events_provider(sources_path, "alerts").alerts_get(id=args[1])  # the id really is in the store
        setup = time.perf_counter() - started
        before = prom_requests(prom.url)
        if mode == "subprocess":
            live, t_live = run_pm(["--sources", str(sources_path), *args], work / "live-home")
        else:
            live, t_live = live_inprocess(sources_path, args)
        requests = request_delta(before, prom_requests(prom.url))
    if mode == "subprocess":
        sandbox, t_sandbox = run_pm(["--world", str(world)], work / "sandbox-home")
    else:
        sandbox, t_sandbox = sandbox_inprocess(world)
    truth = truth_of(world) if (world / "truth.yaml").exists() else {}
    want = (truth.get("service"), truth.get("change_id"))
    return {
        "world": world.name, "trigger": args[0].lstrip("-"), "sandbox": top(sandbox), "live": top(live),
        "sandbox_top3": [(h["service"], h["change_id"]) for h in sandbox.get("hypotheses", [])[:3]],
        "live_top3": [(h["service"], h["change_id"]) for h in live.get("hypotheses", [])[:3]],
        "verdict": (sandbox.get("verdict"), live.get("verdict")),
        "confidence": (sandbox.get("confidence"), live.get("confidence")),
        "t_sandbox": t_sandbox, "t_live": t_live, "setup_s": setup, "replay_s": setup_replay,
        "prom_requests": requests, "truth": want,
        "missing": (sandbox.get("missing_sources"), live.get("missing_sources")),
        "feature_diff": feature_diff(sandbox, live),
    }


def print_row(row: dict[str, Any], *, quiet: bool) -> None:
    same = row["sandbox"] == row["live"]
    total = sum(row["prom_requests"].values())
    ratio = row["t_live"] / row["t_sandbox"] if row["t_sandbox"] else float("nan")
    print(f"  {'same' if same else 'DIFF'} {row['world']:<30} sandbox={row['sandbox']} live={row['live']} "
          f"verdict={row['verdict'][0]}/{row['verdict'][1]} conf={row['confidence'][0]}/{row['confidence'][1]} "
          f"t={row['t_sandbox']:.2f}s/{row['t_live']:.2f}s x{ratio:.2f} prom_requests={total}", flush=True)
    if row["feature_diff"] and (not quiet or row["confidence"][0] != row["confidence"][1]):
        print(f"       features that differ (sandbox, live): {row['feature_diff']}")
    if row["missing"][0] != row["missing"][1]:
        print(f"       missing_sources sandbox={row['missing'][0]}\n                       live={row['missing'][1]}")
    if not quiet and (not same or row["verdict"][0] != row["verdict"][1]):
        print(f"       sandbox top-3 {row['sandbox_top3']}\n       live    top-3 {row['live_top3']}\n"
              f"       truth {row['truth']}  missing sandbox={row['missing'][0]} live={row['missing'][1]}")
        print(f"       prometheus requests by handler {row['prom_requests']}")


def summarise(title: str, rows: list[dict[str, Any]], mode: str) -> None:
    """Print the parity figures of one suite."""
    n = len(rows)
    if not n:
        return
    same = sum(r["sandbox"] == r["live"] for r in rows)
    verdict = sum(r["verdict"][0] == r["verdict"][1] for r in rows)
    conf = sum(r["confidence"][0] == r["confidence"][1] for r in rows)
    ratios = [r["t_live"] / r["t_sandbox"] for r in rows if r["t_sandbox"]]
    reqs = [sum(r["prom_requests"].values()) for r in rows]
    handlers: dict[str, int] = {}
    for r in rows:
        for k, v in r["prom_requests"].items():
            handlers[k] = handlers.get(k, 0) + v
    hit_s = sum(r["sandbox"] == r["truth"] or r["sandbox"][0] == r["truth"][0] and r["truth"][1] is None
                and r["world"].startswith("tt-") for r in rows)
    hit_l = sum(r["live"] == r["truth"] or r["live"][0] == r["truth"][0] and r["truth"][1] is None
                and r["world"].startswith("tt-") for r in rows)
    print(f"\n== {title}: {n} worlds ({mode})")
    print(f"top-1 parity {same}/{n} = {same / n:.1%}   verdict same {verdict}/{n}   confidence same {conf}/{n}")
    print(f"top-1 right vs truth: sandbox {hit_s}/{n}, live {hit_l}/{n}")
    print(f"wall time per world: sandbox mean {statistics.mean(r['t_sandbox'] for r in rows):.2f} s, "
          f"live mean {statistics.mean(r['t_live'] for r in rows):.2f} s; live/sandbox ratio median "
          f"{statistics.median(ratios):.2f}, max {max(ratios):.2f}")
    print(f"Prometheus HTTP requests per investigation: mean {statistics.mean(reqs):.1f}, min {min(reqs)}, "
          f"max {max(reqs)}; by handler (total) {handlers}")
    print(f"setup per world (replay + promtool + prometheus + pm serve + posting): "
          f"mean {statistics.mean(r['setup_s'] for r in rows):.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="generated worlds (bench/rca.py's generator); 0: none")
    parser.add_argument("--seed", type=int, default=202)
    parser.add_argument("--alt-count", type=int, default=0, help="worlds by the independent writer (altworlds)")
    parser.add_argument("--alt-seed", type=int, default=14)
    parser.add_argument("--examples", action="store_true", help="also the worlds in /work/shared/worlds")
    parser.add_argument("--nezha", default=None, help="the Nezha TrainTicket worlds' folder (read in place)")
    parser.add_argument("--nezha-only", default=None, help="comma-separated world names, e.g. tt-001,tt-002")
    parser.add_argument("--nezha-limit", type=int, default=0, help="the first N Nezha worlds (0: all)")
    parser.add_argument("--worlds", nargs="*", default=[], help="more world directories")
    parser.add_argument("--mode", choices=("subprocess", "inprocess"), default="subprocess")
    parser.add_argument("--logs", choices=("per-service", "one-file"), default="per-service",
                        help="replayed log layout (one-file keeps the world's order of same-second lines)")
    parser.add_argument("--keep", default=None, help="generate into (or reuse worlds already in) this folder")
    parser.add_argument("--only", default=None, help="only worlds whose name contains this text")
    parser.add_argument("--json-out", default=None, help="write every row as JSON here")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    suites: dict[str, list[Path]] = {}
    with tempfile.TemporaryDirectory(prefix="pm-live-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp) / "worlds"
        if args.count > 0:
            from bench.rca import suite

            (folder / f"gen-{args.seed}").mkdir(parents=True, exist_ok=True)
            suites[f"generated seed {args.seed}"] = suite(folder / f"gen-{args.seed}", args.count, args.seed)
        if args.alt_count > 0:
            from bench.rca_alt import suite as alt_suite

            (folder / f"alt-{args.alt_seed}").mkdir(parents=True, exist_ok=True)
            suites[f"alt seed {args.alt_seed}"] = alt_suite(folder / f"alt-{args.alt_seed}", args.alt_count,
                                                            args.alt_seed)
        if args.examples:
            suites["shared examples"] = [Path(p) for p in sorted(glob.glob("/work/shared/worlds/example-*"))]
        if args.nezha:
            nezha = [Path(p) for p in sorted(glob.glob(str(Path(args.nezha) / "tt-*")))]
            if args.nezha_only:
                wanted = set(args.nezha_only.split(","))
                nezha = [w for w in nezha if w.name in wanted]
            elif args.nezha_limit:
                nezha = nezha[: args.nezha_limit]
            suites["nezha-tt"] = nezha
        if args.worlds:
            suites["given worlds"] = [Path(p) for p in args.worlds]
        everything: list[dict[str, Any]] = []
        for title, worlds in suites.items():
            if args.only:
                worlds = [w for w in worlds if args.only in w.name]
            print(f"\n{title}: {len(worlds)} worlds", flush=True)
            rows = []
            for world in worlds:
                work = Path(tmp) / "runs" / world.name
                try:
                    row = one_world(world, work, args.mode, args.logs)
                except Exception as exc:  # noqa: BLE001 - one broken world is reported, the rest still run
                    print(f"  FAIL {world.name}: {type(exc).__name__}: {exc}", flush=True)
                    row = None
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                if row is not None:
                    row["suite"] = title
                    rows.append(row)
                    print_row(row, quiet=args.quiet)
            summarise(title, rows, f"{args.mode}, logs {args.logs}")
            everything += rows
        if len(suites) > 1:
            summarise("everything", everything, f"{args.mode}, logs {args.logs}")
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(everything, indent=1, default=list))


if __name__ == "__main__":
    main()
