"""bench/altworlds.py: the independent world writer's output loads and its truth points at real records."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from bench.altworlds import FAMILIES, generate_suite
from sandbox.world import load_world


def test_one_world_per_family_loads_and_truth_is_consistent(tmp_path: Path):
    worlds = generate_suite(tmp_path, len(FAMILIES), seed=7)
    families = set()
    for path in worlds:
        world = load_world(path)
        truth = yaml.safe_load((path / "truth.yaml").read_text())
        cause, alt = truth["root_cause"], truth["alt"]
        families.add(alt["family"])
        assert world.logs.lines and world.metrics and world.changes
        changes = {c["id"]: c for c in world.changes}
        if alt["family"] in ("capacity", "dependency"):
            assert cause["change_id"] is None
        else:
            assert changes[cause["change_id"]]["service"] == cause["service"]
            assert changes[cause["change_id"]]["ts"] < alt["onset"]
        kind, ref = next(iter(world.trigger.items()))
        if kind == "ticket":
            assert ref in {t["key"] for t in world.tickets}
        elif kind == "alert":
            assert ref in {a["id"] for a in world.alerts}
    assert families == set(FAMILIES)


def test_same_seed_writes_the_same_worlds(tmp_path: Path):
    first = generate_suite(tmp_path / "a", 1, seed=11)
    second = generate_suite(tmp_path / "b", 1, seed=11)
    for a, b in zip(first, second, strict=True):
        for name in ("changes.jsonl", "truth.yaml", "world.yaml"):
            assert (a / name).read_text() == (b / name).read_text()
        assert [json.loads(x)["ts"] for x in (a / "logs.jsonl").read_text().splitlines()[:50]] == \
            [json.loads(x)["ts"] for x in (b / "logs.jsonl").read_text().splitlines()[:50]]
