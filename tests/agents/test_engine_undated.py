"""The engine on reports that carry no usable time: undated text with no alerts, and a late ticket.

Worlds come from the sandbox generator; truth.yaml is read by the test only.
"""

import json

import pytest
import yaml

from agents import engine
from agents.evidence.timeutil import fmt_ts, parse_ts
from sandbox.generator import generate_world
from sandbox.tools import WorldTools


def _world(tmp_path, family, seed):
    world = generate_world(tmp_path / f"w-{family}", family=family, seed=seed, decoys=True)
    truth = yaml.safe_load((world / "truth.yaml").read_text())["root_cause"]
    return world, (truth["service"], truth["change_id"])


# Seeds where the trigger-only anchor (no metric burst) gets the answer wrong, so these tests can fail.
@pytest.mark.parametrize(("family", "seed"), [("deploy", 18), ("dependency", 13), ("config", 12)])
def test_undated_text_trigger_without_alerts_still_finds_the_culprit(tmp_path, family, seed):
    world, want = _world(tmp_path, family, seed)
    spec = yaml.safe_load((world / "world.yaml").read_text())
    spec["trigger"] = {"text": "customers report errors, please investigate"}
    (world / "world.yaml").write_text(yaml.safe_dump(spec))
    (world / "alerts.jsonl").write_text("")
    report = engine.run_all(WorldTools(world), None, None)
    assert (report["hypotheses"][0]["service"], report["hypotheses"][0]["change_id"]) == want


@pytest.mark.parametrize(("family", "seed"), [("deploy", 13), ("config", 15)])
def test_a_ticket_filed_long_after_the_onset_still_finds_the_culprit(tmp_path, family, seed):
    world, want = _world(tmp_path, family, seed)
    spec = yaml.safe_load((world / "world.yaml").read_text())
    onset = yaml.safe_load((world / "truth.yaml").read_text())["meta"]["onset"]
    tickets = [json.loads(line) for line in (world / "tickets.jsonl").read_text().splitlines() if line.strip()]
    key = "LATE-1"
    late = fmt_ts(parse_ts(onset) + 50 * 60)
    tickets.append({"key": key, "ts": late, "summary": "errors since this morning", "description": "",
                    "labels": [], "reporter": "x", "components": [], "status": "Open"})
    (world / "tickets.jsonl").write_text("".join(json.dumps(t) + "\n" for t in sorted(tickets, key=lambda t: t["ts"])))
    spec["trigger"] = {"ticket": key}
    (world / "world.yaml").write_text(yaml.safe_dump(spec))
    report = engine.run_all(WorldTools(world), None, None)
    assert (report["hypotheses"][0]["service"], report["hypotheses"][0]["change_id"]) == want
