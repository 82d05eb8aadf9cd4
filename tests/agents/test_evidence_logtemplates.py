"""Unit tests of agents.evidence.logtemplates: masks, mining, persistence, classification."""

from agents.evidence.logtemplates import classify, dump_miner, mask, mine, new_miner, template_stats
from agents.evidence.timeutil import parse_ts


def test_masks_variable_parts():
    text = mask("user 42 from 10.0.0.7:8080 took 35ms id=3f2a9c1e-1b2c-4d5e-8f90-123456789abc hash 0xdeadbeef")
    assert "42" not in text and "10.0.0.7" not in text and "35ms" not in text and "0xdeadbeef" not in text
    assert "<IP>" in text and "<UUID>" in text and "<HEX>" in text and "<NUM>" in text


def test_huge_line_is_cut():
    assert len(mask("x" * 1_000_000)) <= 2000


def test_same_shape_one_template_and_state_roundtrip():
    miner = new_miner()
    first = mine(miner, [mask("Connection refused: db-1:5432 (3 retries)"), mask("Connection refused: db-1:5432 (7 retries)")])
    assert len(set(first.values())) == 1
    restored = new_miner(dump_miner(miner))
    again = mine(restored, [mask("Connection refused: db-1:5432 (9 retries)")])
    assert set(again.values()) == set(first.values())


def test_corrupt_state_starts_fresh():
    miner = new_miner(b"not a state")
    assert mine(miner, ["hello world"]) == {"hello world": 1}


def test_classify_new_burst_gone_steady():
    assert classify(0, 5, 3600, 3600) == "new"
    assert classify(2, 40, 3600, 3600) == "burst"
    assert classify(30, 0, 3600, 3600) == "gone"
    assert classify(2, 0, 3600, 3600) == "steady"
    assert classify(30, 28, 3600, 3600) == "steady"


def test_template_stats_finds_new_error_template():
    lines = [{"ts": f"2026-01-01T10:{m:02d}:00Z", "service": "api", "level": "INFO", "message": f"served {m} requests"}
             for m in range(0, 60)]
    lines += [{"ts": f"2026-01-01T10:{m:02d}:30Z", "service": "api", "level": "ERROR",
               "message": f"NullPointerException at Handler.java:{m}"} for m in range(40, 60)]
    stats = template_stats(lines, miner=new_miner(), onset=parse_ts("2026-01-01T10:40:00Z"), before_span=2400,
                           after_span=1200, parse_ts=parse_ts)
    errors = [s for s in stats if s["level"] == "ERROR"]
    assert len(errors) == 1 and errors[0]["kind"] == "new" and errors[0]["after"] == 20
