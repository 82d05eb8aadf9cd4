"""The world generator: determinism, spec validity, truth consistency, families, decoys and scale."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from sandbox.generator import DECOY_KINDS, FAMILIES, GeneratorError, generate_suite, generate_world

ROOT = Path(__file__).resolve().parents[2]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
KEYS = {
    "logs": {"ts", "service", "level", "message"},
    "metrics": {"ts", "service", "name", "value"},
    "changes": {"id", "ts", "kind", "service", "author", "summary", "details"},
    "alerts": {"id", "ts", "source", "service", "severity", "title", "labels"},
    "tickets": {"key", "ts", "summary", "description", "labels", "reporter", "components", "status"},
    "chat": {"ts", "channel", "user", "text"},
}
DETAILS = {"deploy": {"version", "previous_version", "commit"}, "feature_flag": {"flag", "from", "to", "rollout_pct"},
           "config": {"key", "from", "to"}, "db_migration": {"migration", "table"}, "infra": {"resource", "action"}}
NO_CHANGE = {"dependency": "dependency", "capacity": "capacity"}


def _ts(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


def load(world: Path) -> dict:
    """Parse every file of a world, checking the format rules of the spec on the way."""
    w = yaml.safe_load((world / "world.yaml").read_text())
    out: dict = {"world": w, "truth": yaml.safe_load((world / "truth.yaml").read_text()),
                 "topology": yaml.safe_load((world / "topology.yaml").read_text())["services"]}
    assert ISO.match(str(w["window"]["start"])) or isinstance(w["window"]["start"], datetime)
    for name, keys in KEYS.items():
        records = [json.loads(line) for line in (world / f"{name}.jsonl").read_text().splitlines()]
        for rec in records:
            assert keys <= rec.keys(), (name, rec)
            assert ISO.match(rec["ts"]), rec
        stamps = [r["ts"] for r in records]
        assert stamps == sorted(stamps), f"{name}.jsonl not sorted by ts"
        out[name] = records
    return out


def window(data: dict) -> tuple[datetime, datetime]:
    raw = (world_text := data["world"]["window"])["start"], world_text["end"]
    return tuple(r.replace(tzinfo=None) if isinstance(r, datetime) else _ts(r) for r in raw)  # type: ignore[return-value]


def check_world(data: dict, family: str) -> None:
    """Assert a world is valid per spec and its truth is consistent with its files."""
    start, end = window(data)
    names = {s["name"] for s in data["topology"]}
    stores = {s["name"] for s in data["topology"] if s["tier"] == "datastore"}
    for s in data["topology"]:
        assert set(s["calls"]) <= names and s["name"] not in s["calls"]
    trigger = data["world"]["trigger"]
    assert len(trigger) == 1 and next(iter(trigger)) in ("ticket", "alert", "text")
    if "ticket" in trigger:
        assert trigger["ticket"] in {t["key"] for t in data["tickets"]}
    if "alert" in trigger:
        assert trigger["alert"] in {a["id"] for a in data["alerts"]}
    lo, hi = start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")
    for kind in ("logs", "metrics", "changes", "alerts", "tickets", "chat"):
        # Same fixed-width format everywhere, so string order is time order (and much cheaper to check).
        assert all(lo <= rec["ts"] <= hi for rec in data[kind]), kind
    assert {r["level"] for r in data["logs"]} <= {"DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
    assert not stores & {r["service"] for r in data["logs"]}, "datastores do not log"
    last_version: dict[str, str] = {}
    for c in data["changes"]:
        assert c["service"] in names and DETAILS[c["kind"]] <= c["details"].keys()
        if c["kind"] == "deploy":  # versions chain in time order per service
            assert last_version.get(c["service"], c["details"]["previous_version"]) == c["details"]["previous_version"]
            last_version[c["service"]] = c["details"]["version"]
    for a in data["alerts"]:
        assert a["source"] in ("pagerduty", "grafana", "alertmanager") and a["service"] in names
        assert re.match(r"^(P[1-4]|critical|warning)$", a["severity"])
    # One sample per service, name and minute.
    per = Counter((m["service"], m["name"], m["ts"]) for m in data["metrics"])
    assert max(per.values()) == 1
    minutes = int((end - start).total_seconds() // 60)
    series = {(m["service"], m["name"]) for m in data["metrics"]}
    assert len(data["metrics"]) == len(series) * minutes and {s for s, _ in series} == names
    # Truth.
    rc, meta = data["truth"]["root_cause"], data["truth"]["meta"]
    onset = _ts(meta["onset"])
    assert rc["service"] in names and meta["family"] == family and str(data["truth"]["notes"])
    if family in NO_CHANGE:
        assert rc["change_id"] is None and rc["category"] == NO_CHANGE[family]
        assert not [c for c in data["changes"] if c["service"] == rc["service"] and _ts(c["ts"]) < onset]
    else:
        change = next(c for c in data["changes"] if c["id"] == rc["change_id"])
        assert _ts(change["ts"]) < onset and change["service"] == rc["service"]
        # The culprit is its service's last change before the onset, by a clear margin.
        for c in data["changes"]:
            if c["service"] == rc["service"] and c["id"] != change["id"] and _ts(c["ts"]) < onset:
                assert (_ts(change["ts"]) - _ts(c["ts"])).total_seconds() >= 25 * 60
                if c["kind"] == "config" == change["kind"] and c["details"]["key"] == change["details"]["key"]:
                    assert c["details"]["to"] == change["details"]["from"], "a setting's history chains"
        assert rc["category"] == change["kind"]
        if family != "dependency_change":
            assert change["kind"] == family
    if family.startswith("dependency"):
        assert meta["alerted_service"] != rc["service"], "the alerting service is a victim"
        assert meta["affected"]


def series(data: dict, service: str, name: str) -> list[tuple[datetime, float]]:
    return [(_ts(m["ts"]), m["value"]) for m in data["metrics"] if m["service"] == service and m["name"] == name]


def mean_around(points: list[tuple[datetime, float]], onset: datetime, after_min: int = 8) -> tuple[float, float]:
    before = [v for t, v in points if t < onset]
    after = [v for t, v in points if (t - onset).total_seconds() > after_min * 60][:10]
    return sum(before) / len(before), sum(after) / len(after)


@pytest.fixture(scope="module")
def family_worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("families")
    return {f: load(generate_world(root / f, family=f, seed=7, log_lines=1500)) for f in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_is_valid_and_truth_consistent(family_worlds: dict[str, dict], family: str) -> None:
    check_world(family_worlds[family], family)


@pytest.mark.parametrize("family", FAMILIES)
def test_fault_shows_in_metrics_and_callers_name_the_callee(family_worlds: dict[str, dict], family: str) -> None:
    data = family_worlds[family]
    rc, meta = data["truth"]["root_cause"], data["truth"]["meta"]
    onset = _ts(meta["onset"])
    before, after = mean_around(series(data, rc["service"], "error_rate"), onset)
    assert after > before + 0.02, (before, after)
    if family == "capacity":
        rps_before, rps_after = mean_around(series(data, rc["service"], "requests_per_s"), onset, after_min=15)
        assert rps_after > 1.3 * rps_before
    callees = defaultdict(set)
    for s in data["topology"]:
        for c in s["calls"]:
            callees[s["name"]].add(c)
    direct = [v for v in meta["affected"] if rc["service"] in callees[v]]
    if direct:
        late = [r for r in data["logs"] if r["service"] in direct and _ts(r["ts"]) >= onset
                and r["level"] in ("WARN", "ERROR") and rc["service"] in r["message"]]
        assert len(late) >= 3, "direct callers log errors naming the failing callee"


def test_feature_flag_error_rate_follows_rollout_share(family_worlds: dict[str, dict]) -> None:
    data = family_worlds["feature_flag"]
    rc, onset = data["truth"]["root_cause"], _ts(data["truth"]["meta"]["onset"])
    change = next(c for c in data["changes"] if c["id"] == rc["change_id"])
    pct = change["details"]["rollout_pct"]
    before, after = mean_around(series(data, rc["service"], "error_rate"), onset, after_min=10)
    assert 0.4 * pct / 100 < after - before < 1.1 * pct / 100


def _suite_in_child(out: Path, hash_seed: str) -> Path:
    """Generate a small suite in a fresh interpreter with its own string-hash seed (set order differs)."""
    code = ("import sys; from pathlib import Path; from sandbox.generator import generate_suite; "
            "generate_suite(Path(sys.argv[1]), count=7, seed=4)")
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=env, cwd=ROOT, timeout=120)
    return out


def test_same_arguments_give_identical_files(tmp_path: Path) -> None:
    a = _suite_in_child(tmp_path / "a", "1")
    b = _suite_in_child(tmp_path / "b", "2")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and len(files) == 7 * 9
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    c = generate_world(tmp_path / "c", family="deploy", seed=5, log_lines=800, name="gen-0000-deploy")
    assert (a / "gen-0000-deploy" / "logs.jsonl").read_bytes() != (c / "logs.jsonl").read_bytes()


def test_suite_round_robin_and_every_decoy_kind(tmp_path: Path) -> None:
    paths = generate_suite(tmp_path, count=14, seed=3)
    assert [p.name for p in paths[:3]] == ["gen-0000-deploy", "gen-0001-feature_flag", "gen-0002-config"]
    seen: Counter[str] = Counter()
    for i, path in enumerate(paths):
        data = load(path)
        family = FAMILIES[i % len(FAMILIES)]
        check_world(data, family)
        meta, rc = data["truth"]["meta"], data["truth"]["root_cause"]
        onset = _ts(meta["onset"])
        others = [c for c in data["changes"] if c["id"] != rc["change_id"]]
        affected = {rc["service"], *meta["affected"]}
        for kind in meta["decoys"]:
            seen[kind] += 1
            if kind == "near_change":
                assert any(0 < (onset - _ts(c["ts"])).total_seconds() <= 600 for c in others)
            elif kind == "late_change":
                assert any(_ts(c["ts"]) > onset for c in others)
                assert all((_ts(c["ts"]) - onset).total_seconds() >= 240 for c in others if _ts(c["ts"]) > onset)
            elif kind == "early_victim_alert":
                first = next(a for a in data["alerts"] if a["service"] in affected)
                assert first["service"] != rc["service"]
            elif kind == "noisy_errors":
                errs = Counter(r["service"] for r in data["logs"] if r["level"] == "ERROR"
                               and r["service"] not in affected)
                assert errs and max(errs.values()) >= 15
    assert set(seen) == set(DECOY_KINDS), seen


def test_without_decoys_nothing_distracts(tmp_path: Path) -> None:
    for family in ("deploy", "dependency", "capacity"):
        data = load(generate_world(tmp_path / family, family=family, seed=5, decoys=False, log_lines=600))
        check_world(data, family)
        rc, meta = data["truth"]["root_cause"], data["truth"]["meta"]
        onset = _ts(meta["onset"])
        assert meta["decoys"] == []
        others = [c for c in data["changes"] if c["id"] != rc["change_id"]]
        assert all((onset - _ts(c["ts"])).total_seconds() >= 1800 for c in others)


def test_scale_arguments_are_honoured(tmp_path: Path) -> None:
    data = load(generate_world(tmp_path / "s", family="dependency_change", seed=2, services=6, duration_min=45,
                               log_lines=5000))
    start, end = window(data)
    assert len(data["topology"]) == 6 and (end - start).total_seconds() == 45 * 60
    assert 0.9 * 5000 <= len(data["logs"]) <= 1.1 * 5000
    assert len({m["ts"] for m in data["metrics"]}) == 45


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"family": "meteor"}, "use one of deploy"),
    ({"family": "deploy", "services": 2}, "services must be an integer from 4"),
    ({"family": "deploy", "duration_min": 5}, "duration_min must be"),
    ({"family": "deploy", "name": "Bad Name"}, "bad world name"),
])
def test_bad_arguments_say_what_to_do(tmp_path: Path, kwargs: dict, needle: str) -> None:
    with pytest.raises(GeneratorError, match=needle):
        generate_world(tmp_path / "x", seed=1, **kwargs)


@pytest.mark.parametrize("family", ["capacity", "dependency", "deploy"])
def test_hard_mode_adds_storms_second_incidents_and_harmless_origin_changes(tmp_path: Path, family: str) -> None:
    plain = load(generate_world(tmp_path / "plain", family=family, seed=5, log_lines=1500))
    hard_dir = generate_world(tmp_path / "hard", family=family, seed=5, log_lines=1500, hard=True)
    again = generate_world(tmp_path / "again", family=family, seed=5, log_lines=1500, hard=True)
    for name in ("changes.jsonl", "metrics.jsonl", "logs.jsonl", "alerts.jsonl", "truth.yaml"):
        assert (hard_dir / name).read_bytes() == (again / name).read_bytes(), name
    hard = load(hard_dir)
    rc = hard["truth"]["root_cause"]
    assert rc == plain["truth"]["root_cause"], "truth does not change"
    onset = _ts(hard["truth"]["meta"]["onset"])
    names = {s["name"] for s in hard["topology"]}
    for c in hard["changes"]:
        assert c["service"] in names and DETAILS[c["kind"]] <= c["details"].keys()
    storm = [c for c in hard["changes"] if c["service"] != rc["service"]
             and 0 < (onset - _ts(c["ts"])).total_seconds() <= 3600]
    assert len(storm) >= 8
    own = [c for c in hard["changes"] if c["service"] == rc["service"] and c["id"] != rc["change_id"]
           and 13 * 60 - 60 <= (onset - _ts(c["ts"])).total_seconds() <= 16 * 60]
    if family in ("capacity", "dependency"):
        assert own and re.search(r"exporter|backup|log", own[0]["summary"])
    notes = hard["truth"]["notes"]
    assert "second incident" in notes and "metrics gap" in notes
    start, end = window(hard)
    full = len({(m["service"], m["name"]) for m in hard["metrics"]}) * int((end - start).total_seconds() // 60)
    assert len(hard["metrics"]) < 0.96 * full  # partial telemetry: a gap and dropped samples
    flaps = [a for a in hard["alerts"] if a["labels"].get("alertname") == "Flapping"]
    assert len(flaps) >= 3
