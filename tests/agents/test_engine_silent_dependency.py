"""A failing dependency with no telemetry of its own, known only by the names its callers' errors give it.

Worlds come from the sandbox generator's dependency family; the failing datastore's own metrics and logs and
the topology file are removed, so the only trace of it is in its callers' error lines ("Connection refused:
elasticsearch:9200"). truth.yaml is read by the test only.
"""

import json

import pytest
import yaml

from agents import engine
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
