"""A failing dependency with no telemetry of its own, known only by the names its callers' errors give it.

Worlds come from the sandbox generator's dependency family; the failing datastore's own metrics and logs and
the topology file are removed, so the only trace of it is in its callers' error lines ("Connection refused:
elasticsearch:9200"). truth.yaml is read by the test only.
"""

import json

import pytest
import yaml

from agents import engine
from agents.evidence.timeutil import fmt_ts
from sandbox.generator import generate_world
from sandbox.tools import WorldTools


def _silent_world(tmp_path, seed):
    world = generate_world(tmp_path / "w", family="dependency", seed=seed, decoys=True)
    culprit = yaml.safe_load((world / "truth.yaml").read_text())["root_cause"]["service"]
    for name in ("metrics.jsonl", "logs.jsonl"):
        rows = [line for line in (world / name).read_text().splitlines()
                if line.strip() and json.loads(line)["service"] != culprit]
        (world / name).write_text("".join(row + "\n" for row in rows))
    (world / "topology.yaml").unlink(missing_ok=True)
    return world, culprit


# Seeds where, before peers were discovered, a victim of the silent datastore was blamed (so these can fail).
@pytest.mark.parametrize("seed", [1, 11, 14])
def test_silent_dependency_named_by_its_callers_is_blamed(tmp_path, seed):
    world, culprit = _silent_world(tmp_path, seed)
    report = engine.run_all(WorldTools(world), None, None)
    top = report["hypotheses"][0]
    assert (top["service"], top["change_id"]) == (culprit, None)
    assert top["category"] == "dependency"
    assert any(f"errors name {culprit}" in item["summary"] for item in top["evidence"])


def _correlate(callee_onset):
    """tax-svc's errors name fx-rates-api, an external API; tax-svc had a config change 2 min before."""
    onset = 1_000_000.0
    ctx = {"topology": [{"name": "tax-svc", "calls": ["fx-rates-api"]}, {"name": "fx-rates-api", "calls": []},
                        {"name": "web", "calls": ["tax-svc"]}, {"name": "batch", "calls": []}]}
    services = {"tax-svc": {"score": 1.2, "onset": onset, "new_errors": 2, "has_metrics": True, "metric_score": 1.2,
                            "new_error_first": [onset + 10]},
                "web": {"score": 0.9, "onset": onset + 30, "new_errors": 1, "has_metrics": True, "metric_score": 0.9},
                # An unrelated service that leads the origins (a noisy batch job).
                "batch": {"score": 3.0, "onset": onset - 60, "new_errors": 3, "has_metrics": True, "metric_score": 3.0}}
    if callee_onset is not None:
        services["fx-rates-api"] = {"score": 1.5, "onset": callee_onset, "new_errors": 0, "has_metrics": True,
                                    "metric_score": 1.5}
    sig = {"onset": fmt_ts(onset), "services": services, "mentions": {"tax-svc": {"fx-rates-api": 40.0}}}
    chg = {"changes": [{"id": "chg-1", "service": "tax-svc", "kind": "config", "ts": fmt_ts(onset - 140)}]}
    return engine.correlate(ctx, sig, chg)


def test_a_change_on_the_victim_of_a_silent_callee_still_counts():
    cor = _correlate(None)
    tax = next(o for o in cor["origins"] if o["service"] == "tax-svc")
    assert tax["victim_of"] == ["fx-rates-api"]
    assert cor["origins"][0]["service"] != "tax-svc"
    change = next(c for c in cor["changes"] if c["id"] == "chg-1")
    assert any(r in change["reasons"] for r in ("on the origin service", "on a service that is a candidate origin"))
    # The same caller when the callee shows a failure of its own: the caller is its victim and no candidate origin;
    # its change counts only as one on the origin's call path.
    cor = _correlate(1_000_000.0 - 20)
    other = next(c for c in cor["changes"] if c["id"] == "chg-1")
    assert not any(r in other["reasons"] for r in ("on the origin service", "on a service that is a candidate origin"))
    assert other["score"] < change["score"]
