"""Replay an incident world as what real systems would hold (``pm worlds replay WORLD --out DIR``).

The world's sources become the files and payloads that real systems take in, so the same incident
can be investigated through the real-source providers (``pm investigate --sources``) and compared
with the sandbox (bench/live.py):

=====================  ===========================================================================
``metrics.om``         every metric sample as OpenMetrics text, one gauge family per metric name,
                       ``name{service="svc"} value ts_seconds``; ready for
                       ``promtool tsdb create-blocks-from openmetrics metrics.om DATA_DIR``
``logs/<svc>.jsonl``   each service's log lines in the world shape (``ts, level, message, host?,
                       trace_id?``; the service is the file), in time order (``--logs one-file``:
                       ``logs/all.jsonl`` with every line, ``service`` kept, in the world's order)
``changes.json``       the change records, one JSON list for ``POST /webhooks/change``
``alerts.json``        one Alertmanager webhook (version 4) payload holding every world alert, for
                       ``POST /webhooks/alertmanager``; fingerprint = the world alert id
``topology.yaml``      copied (served by ``kind: file``); ``services: []`` when the world has none
``tickets.jsonl``      copied; tickets are not a replayed source (see the trigger below)
``sources.yaml``       metrics (prometheus), logs (files), changes and alerts (events), topology (file)
``replay.json``        the manifest: counts, renamed metrics, the window, and the ``pm investigate``
                       arguments that ask what the world's trigger asks (``REPLAY.md`` says it in words)
=====================  ===========================================================================

Metric names that are not valid Prometheus names (``[a-zA-Z_:][a-zA-Z0-9_:]*``) are sanitised the
one way :func:`prom_name` says (every other character becomes ``_``, a leading digit gets a ``_``
in front); the manifest lists every renamed metric. Two world names that sanitise to the same name
are refused, since their samples would merge.

The trigger: an alert stays an alert (``--alert`` :func:`alert_id`, the id the alert store gives an
Alertmanager alert); free text stays text; a ticket becomes ``--text "<summary> <description>"
--at <ticket time>``, since no ticket tracker is replayed. Every trigger carries the world's window
as ``--start/--end`` so both runs read exactly the same span.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from sandbox.errors import WorldError
from sandbox.promrun import Sample, build_blocks, write_openmetrics
from sandbox.world import World, iso, load_world, parse_ts

#: A valid Prometheus metric name.
_PROM_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
#: A service name usable as a log file name (the files provider fills ``{service}`` with it).
_FILE_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+=-]*")
#: Default Prometheus URL written into sources.yaml when none is given (the bench writes the real one).
DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"
#: The Alertmanager receiver and group key the replayed payload names.
RECEIVER = "production-master"


def prom_name(name: str) -> str:
    """``name`` as a valid Prometheus metric name (unchanged when it already is one).

    Every character outside ``[a-zA-Z0-9_:]`` becomes ``_``; a name starting with a digit (or empty)
    gets a leading ``_``.
    """
    if _PROM_NAME.fullmatch(name):
        return name
    out = re.sub(r"[^a-zA-Z0-9_:]", "_", name)
    return out if out and not out[0].isdigit() else "_" + out


def slug(value: str) -> str:
    """Lowercase, every run of non-alphanumerics one ``-``, no ``-`` at either end (an alertname)."""
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-") or "alert"


def metric_samples(world: World) -> tuple[list[Sample], dict[str, str]]:
    """The world's metric samples as ``(name, {"service": svc}, epoch, value)`` and the renamed names.

    Raises:
        WorldError: two metric names sanitise to the same Prometheus name.
    """
    renamed: dict[str, str] = {}
    owner: dict[str, str] = {}
    samples: list[Sample] = []
    for (service, name), series in world.metrics.items():
        target = prom_name(name)
        if owner.setdefault(target, name) != name:
            raise WorldError(f"metrics.jsonl: metrics {owner[target]!r} and {name!r} both become the Prometheus name "
                             f"{target!r}; rename one of them")
        if target != name:
            renamed[name] = target
        labels = {"service": service}
        for t, (_, value) in zip(series.times, series.points, strict=True):
            samples.append((target, labels, t, float(value)))
    return samples, renamed


def write_logs(world: World, folder: Path, layout: str = "per-service") -> dict[str, int]:
    """Write the log lines; return line counts per service.

    ``per-service``: ``folder/<service>.jsonl`` (world log shape, no ``service`` key). ``one-file``:
    ``folder/all.jsonl`` with every line (``service`` kept) in the world's own order, which keeps the
    order of lines of different services within the same second (per-service files cannot).

    Raises:
        WorldError: a service name cannot be a file name (it holds ``/`` or starts with a dot).
    """
    folder.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    keys = ("ts", "level", "message", "host", "trace_id")
    if layout == "one-file":
        with open(folder / "all.jsonl", "w", encoding="utf-8") as out:
            for line in world.logs.lines:
                record = {k: line[k] for k in ("ts", "service", *keys[1:]) if line.get(k) is not None}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                counts[line["service"]] = counts.get(line["service"], 0) + 1
        return dict(sorted(counts.items()))
    for service, index in sorted(world.logs_by_service.items()):
        if not _FILE_SAFE.fullmatch(service):
            raise WorldError(f"logs.jsonl: service {service!r} cannot name a log file; use letters, digits, . _ -")
        with open(folder / f"{service}.jsonl", "w", encoding="utf-8") as out:
            for line in index.lines:
                record = {k: line[k] for k in keys if line.get(k) is not None}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        counts[service] = len(index.lines)
    return counts


#: Log layouts: the files entry's path for each.
LOG_PATHS = {"per-service": "logs/{service}.jsonl", "one-file": "logs/all.jsonl"}


def change_records(world: World) -> list[dict[str, Any]]:
    """The world's changes in the shape ``POST /webhooks/change`` takes (``{id, ts, kind, service, author,
    summary, details}``), in time order."""
    keys = ("id", "ts", "kind", "service", "author", "summary", "details")
    return [{k: change.get(k) for k in keys if k in change} for change in world.changes]


def alertmanager_payload(world: World) -> dict[str, Any]:
    """One Alertmanager webhook (version 4) payload holding every world alert, all firing.

    Each alert's labels are the world alert's labels (as strings) plus ``service``, ``severity`` and
    ``alertname`` (the world's ``alertname`` label when it has one, else a slug of the title); its
    ``annotations.summary`` is the title, ``startsAt`` the alert time, ``fingerprint`` the world id.
    """
    alerts = []
    for alert in world.alerts:
        labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items() if v is not None}
        title = str(alert.get("title") or "")
        if alert.get("service"):
            labels["service"] = str(alert["service"])
        if alert.get("severity"):
            labels["severity"] = str(alert["severity"])
        labels["alertname"] = labels.get("alertname") or slug(title or str(alert["id"]))
        alerts.append({
            "status": "firing", "labels": labels, "annotations": {"summary": title},
            "startsAt": str(alert["ts"]), "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
            "fingerprint": str(alert["id"]),
        })
    return {
        "version": "4", "status": "firing", "receiver": RECEIVER,
        "groupKey": f'{{}}:{{replay="{world.name}"}}', "truncatedAlerts": 0,
        "groupLabels": {"replay": world.name}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "", "alerts": alerts,
    }


def alert_id(world_alert_id: str) -> str:
    """The id the alert store gives the replayed alert: ``am-`` + its fingerprint, lowercased, letters and
    digits only, at most 40 of them (commands/webhooks.py names Alertmanager alerts so).

    tests/sandbox/test_replay.py holds it to what the webhook normaliser really gives.
    """
    return "am-" + ("".join(c for c in world_alert_id.lower() if c.isalnum())[:40] or "x")


def investigate_args(world: World) -> tuple[list[str], str]:
    """The ``pm investigate --sources`` arguments that ask what the world's trigger asks, and a note.

    Raises:
        WorldError: the trigger names a ticket the world does not hold.
    """
    window = ["--start", world.window["start"], "--end", world.window["end"]]
    trigger = world.trigger
    if trigger.get("alert"):
        return (["--alert", alert_id(trigger["alert"]), *window],
                f"alert {trigger['alert']} replayed to Alertmanager's webhook as fingerprint {trigger['alert']}")
    if trigger.get("ticket"):
        ticket = next((t for t in world.tickets if t.get("key") == trigger["ticket"]), None)
        if ticket is None:
            raise WorldError(f"world.yaml: trigger ticket {trigger['ticket']!r} is not in tickets.jsonl")
        text = f"{ticket.get('summary', '')} {ticket.get('description', '')}"
        return (["--text", text, "--at", str(ticket["ts"]), *window],
                f"ticket {trigger['ticket']} (no ticket tracker is replayed): its summary and description as "
                "--text, its time as --at")
    return ["--text", str(trigger.get("text", "")), *window], "the world's own text"


def prometheus_settings(world: World, renamed: dict[str, str]) -> dict[str, Any]:
    """The replay-specific settings of the ``prometheus`` entry (sources/prometheus.py).

    ``gauges``: every world metric name (sanitised), so each is read as the plain gauge it was written
    as, whatever the convention's defaults list. ``now`` and ``lookback_s``: a replay lives in the
    past, so "now" is just after the end of the data (the window's end or the last sample, whichever
    is later) and the look-back reaches the first sample, as the sandbox's ``metrics.list`` sees every sample.
    ``step_s``: the samples' own interval (the median gap), so the step grid meets one sample a step.
    ``step_offset_s`` (only when not 0): where in the step the samples sit (the median of ``ts mod step``;
    Nezha's are 10 s past the minute); a grid on multiples of the step alone would stamp each sample up
    to one step late, so the provider shifts its grid by it (sources/prometheus.py ``_grid``).
    """
    names = sorted({renamed.get(name, name) for _, name in world.metrics})
    starts = [s.times[0] for s in world.metrics.values() if s.times]
    ends = [s.times[-1] for s in world.metrics.values() if s.times]
    gaps = sorted(b - a for s in world.metrics.values() for a, b in zip(s.times, s.times[1:], strict=False) if b > a)
    step = max(1, round(gaps[len(gaps) // 2])) if gaps else 60
    w0, w1 = parse_ts(world.window["start"]), parse_ts(world.window["end"])
    now = max([w1, *ends]) + 1.0  # a range [t0, now) that holds the last sample too
    out: dict[str, Any] = {"now": iso(now), "lookback_s": int(now - min([w0, *starts])) + step, "step_s": step}
    phases = sorted(round(t) % step for s in world.metrics.values() for t in s.times)
    if phases and phases[len(phases) // 2]:
        out["step_offset_s"] = phases[len(phases) // 2]
    if names:
        out["gauges"] = names
    return out


def sources_doc(prometheus_url: str, *, topology: bool = True, prometheus: dict[str, Any] | None = None,
                logs_path: str = LOG_PATHS["per-service"]) -> dict[str, Any]:
    """The ``sources.yaml`` mapping for a replayed world (relative paths are taken from its folder).

    Args:
        prometheus_url: the ``metrics`` entry's URL.
        topology: whether a topology.yaml is there to serve.
        prometheus: more settings of the ``metrics`` entry (:func:`prometheus_settings`).
        logs_path: the ``files`` entry's path (:data:`LOG_PATHS`).
    """
    doc: dict[str, Any] = {
        "metrics": [{"kind": "prometheus", "url": prometheus_url, "convention": "plain", **(prometheus or {})}],
        "logs": [{"kind": "files", "path": logs_path}],
        "changes": [{"kind": "events"}],
        "alerts": [{"kind": "events"}],
    }
    if topology:
        doc["topology"] = [{"kind": "file", "path": "topology.yaml"}]
    return doc


def write_sources(out: Path, prometheus_url: str, prometheus: dict[str, Any] | None = None,
                  logs_path: str | None = None) -> Path:
    """(Re)write ``out/sources.yaml``; ``prometheus`` and ``logs_path`` default to what ``out/replay.json`` says."""
    import yaml

    path = out / "sources.yaml"
    kept = json.loads((out / "replay.json").read_text(encoding="utf-8")) if (out / "replay.json").exists() else {}
    if prometheus is None:
        prometheus = kept.get("prometheus")
    logs_path = logs_path or (kept.get("logs") or {}).get("path") or LOG_PATHS["per-service"]
    doc = sources_doc(prometheus_url, topology=(out / "topology.yaml").exists(), prometheus=prometheus,
                      logs_path=logs_path)
    path.write_text("# Written by `pm worlds replay`; see REPLAY.md.\n" + yaml.safe_dump(doc, sort_keys=False),
                    encoding="utf-8")
    return path


def replay(world_dir: str | Path, out: str | Path, *, prometheus_url: str = DEFAULT_PROMETHEUS_URL,
           blocks: bool = False, logs: str = "per-service") -> dict[str, Any]:
    """Write the replay of one world into ``out`` (created; files already there are overwritten).

    Args:
        world_dir: the incident world directory.
        out: the folder to write.
        prometheus_url: the Prometheus URL written into sources.yaml.
        blocks: also build TSDB blocks into ``out/prometheus-data`` with promtool.
        logs: ``per-service`` (default) or ``one-file`` (see :func:`write_logs`).

    Returns:
        The manifest (also written to ``out/replay.json``).

    Raises:
        WorldError: the world is malformed, a metric or service name cannot be replayed.
        SandboxError: ``blocks`` and promtool is missing or refused the file.
    """
    if logs not in LOG_PATHS:
        raise WorldError(f"logs layout {logs!r} unknown; use {' or '.join(LOG_PATHS)}")
    world = load_world(world_dir)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    samples, renamed = metric_samples(world)
    written = write_openmetrics(samples, folder / "metrics.om")
    shutil.rmtree(folder / "logs", ignore_errors=True)  # a layout written before must not linger
    lines = write_logs(world, folder / "logs", logs)
    changes = change_records(world)
    (folder / "changes.json").write_text(json.dumps(changes, indent=1) + "\n", encoding="utf-8")
    payload = alertmanager_payload(world)
    (folder / "alerts.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    src = Path(world_dir)
    for name in ("topology.yaml", "tickets.jsonl"):
        if (src / name).exists():
            shutil.copyfile(src / name, folder / name)
        elif (folder / name).exists():
            (folder / name).unlink()
    if not (folder / "topology.yaml").exists():
        # No call graph known, said as the sandbox says it (an empty topology), not as a missing source.
        (folder / "topology.yaml").write_text("services: []\n", encoding="utf-8")
    prom = prometheus_settings(world, renamed)
    write_sources(folder, prometheus_url, prom, LOG_PATHS[logs])
    args, note = investigate_args(world)
    times = [t for s in world.metrics.values() for t in (s.times[:1] + s.times[-1:])]
    manifest: dict[str, Any] = {
        "world": world.name, "source": str(Path(world_dir).resolve()), "window": dict(world.window),
        "trigger": dict(world.trigger), "investigate": args, "trigger_note": note,
        "metrics": {"file": "metrics.om", "samples": written, "series": len(world.metrics),
                    "first_ts": min(times) if times else None, "last_ts": max(times) if times else None,
                    "renamed": renamed},
        "logs": {"folder": "logs", "layout": logs, "path": LOG_PATHS[logs], "lines": lines},
        "changes": {"file": "changes.json", "count": len(changes), "post": "/webhooks/change"},
        "alerts": {"file": "alerts.json", "count": len(payload["alerts"]), "post": "/webhooks/alertmanager",
                   "ids": {a["id"]: alert_id(str(a["id"])) for a in world.alerts}},
        "tickets": {"file": "tickets.jsonl" if (folder / "tickets.jsonl").exists() else None,
                    "count": len(world.tickets), "replayed": False},
        "sources": "sources.yaml", "prometheus": prom,
    }
    if blocks:
        build_blocks(folder / "metrics.om", folder / "prometheus-data")
        manifest["metrics"]["data_dir"] = "prometheus-data"
    (folder / "replay.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    (folder / "REPLAY.md").write_text(_readme(manifest), encoding="utf-8")
    return manifest


def _readme(m: dict[str, Any]) -> str:
    """REPLAY.md: what is where and how to load it, in words."""
    quoted = " ".join(json.dumps(a) if (" " in a or not a) else a for a in m["investigate"])
    renamed = ", ".join(f"{k} -> {v}" for k, v in m["metrics"]["renamed"].items()) or "none"
    first, last = m["metrics"]["first_ts"], m["metrics"]["last_ts"]
    span = f"{first:.0f}..{last:.0f} (epoch s)" if first is not None else "no samples"
    return f"""# Replay of world `{m['world']}`

Window {m['window']['start']} .. {m['window']['end']}; trigger {json.dumps(m['trigger'])}.

| file | holds | load it with |
|---|---|---|
| metrics.om | {m['metrics']['samples']} samples, {m['metrics']['series']} series, {span} | `promtool tsdb create-blocks-from openmetrics metrics.om DATA` then `prometheus --storage.tsdb.path=DATA --storage.tsdb.retention.time=100y` |
| logs/ | {sum(m['logs']['lines'].values())} lines, {len(m['logs']['lines'])} services | `kind: files`, `path: "{m['logs']['path']}"` |
| changes.json | {m['changes']['count']} changes | `POST /webhooks/change` on `pm serve` (bearer key from API_KEYS) |
| alerts.json | {m['alerts']['count']} alerts (one Alertmanager v4 payload) | `POST /webhooks/alertmanager` on `pm serve` |
| topology.yaml | copied | `kind: file` |
| tickets.jsonl | {m['tickets']['count']} tickets, copied, not replayed | - |

Renamed metrics (invalid Prometheus names): {renamed}.

Investigate (the trigger: {m['trigger_note']}; the world's window, so both runs read the same span):

    pm investigate --sources sources.yaml {quoted} --json

`sources.yaml` names the Prometheus URL given to `pm worlds replay --prometheus-url`; the events
entries read the store of the `pm serve` the changes and alerts were posted to (same PM_HOME /
DATABASE_URL).
"""
