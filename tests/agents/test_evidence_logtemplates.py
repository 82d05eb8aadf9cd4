"""Unit tests of agents.evidence.logtemplates: masks, mining, persistence, classification."""

from agents.evidence.logtemplates import (
    classify,
    dump_miner,
    mask,
    mine,
    new_miner,
    template_stats,
    template_text,
)
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
               "message": f"NullPointerException at Handler.java:42 for order {m}"} for m in range(40, 60)]
    stats = template_stats(lines, miner=new_miner(), onset=parse_ts("2026-01-01T10:40:00Z"), before_span=2400,
                           after_span=1200, parse_ts=parse_ts)
    errors = [s for s in stats if s["level"] == "ERROR"]
    assert len(errors) == 1 and errors[0]["kind"] == "new" and errors[0]["after"] == 20


def test_generic_masks_hosts_sizes_dates_ipv6_lists():
    assert mask("13.client-channel.google.com:443 open through proxy proxy.cse.cuhk.edu.hk:5070 HTTPS") == \
        "<HOST> open through proxy <HOST> HTTPS"
    assert mask("27694 bytes (27.0 KB) sent, 474 bytes sent") == "<SIZE> bytes sent, <NUM> bytes sent"
    assert mask("lifetime <1 sec") == mask("lifetime 01:07:37").replace("<TIME>", "<DUR>")
    assert mask("connection from 1.2.3.4 at Sun Jul 10 03:04:05 2005") == "connection from <IP> at <TS>"
    assert mask("addr fe80::c6b3:1ff:fecd:7f up") == "addr <IP> up"
    assert mask("client 10.0.0.1,10.0.0.2 GET") == "client <IP> GET"
    # Digits inside a word belong to the word: the interface name stays readable and whole.
    assert mask("Link Up on awdl0 IO80211Family") == "Link Up on awdl0 IO80211Family"


def _templates(messages: list[str]) -> tuple[dict[str, int], object]:
    miner = new_miner()
    return mine(miner, [mask(m) for m in messages]), miner


def test_few_plain_words_at_a_wildcard_are_constants():
    messages = [f"[instance: 3f2a9c1e-1b2c-4d5e-8f90-{i:012d}] VM {state} (Lifecycle Event)"
                for i, state in enumerate(["Started", "Paused", "Started", "Paused", "Paused"])]
    assignment, miner = _templates(messages)
    ids = {assignment[mask(m)] for m in messages}
    assert len(ids) == 2
    assert {template_text(miner, i) for i in ids} == {"[instance: <*>] VM Started (Lifecycle Event)",
                                                      "[instance: <*>] VM Paused (Lifecycle Event)"}


def test_many_words_at_a_wildcard_stay_one_parameter():
    users = ["root", "admin", "guest", "oracle", "test", "ftp"]
    messages = [f"Failed password for {u} from 10.0.0.{i} port {4000 + i} ssh2" for i, u in enumerate(users)]
    assignment, miner = _templates(messages)
    ids = {assignment[mask(m)] for m in messages}
    assert len(ids) == 1
    assert template_text(miner, ids.pop()) == "Failed password for <*> from <*> port <*> ssh2"


def test_variable_length_parameter_runs_merge():
    messages = ["en0: Supported channels 1 2 3", "en0: Supported channels 1 2 3 4 5 6 7 8",
                "host-a:80 close, 10 bytes sent", "host-b:80 close, 2048 bytes (2.0 KB) sent"]
    assignment, miner = _templates(messages)
    assert assignment[mask(messages[0])] == assignment[mask(messages[1])]
    assert assignment[mask(messages[2])] == assignment[mask(messages[3])]
    assert assignment[mask(messages[0])] != assignment[mask(messages[2])]
    assert template_text(miner, assignment[mask(messages[0])]) == "en0: Supported channels <*>"


def test_split_ids_are_stable_across_runs():
    messages = ["Location icon should now be in state 'Active'", "Location icon should now be in state 'Inactive'"]
    first, miner = _templates(messages)
    again = mine(new_miner(dump_miner(miner)), [mask(m) for m in reversed(messages)])
    assert first == again and len(set(first.values())) == 2


def test_level_aliases_are_reported_by_their_canonical_name():
    from agents.evidence.logtemplates import new_miner, template_stats
    from agents.evidence.timeutil import parse_ts

    lines = [{"ts": "2026-01-01T00:10:00Z", "service": "a", "level": "CRITICAL", "message": "failed to decode x"},
             {"ts": "2026-01-01T00:11:00Z", "service": "b", "level": "WARNING", "message": "slow disk on y"}]
    stats = template_stats(lines, miner=new_miner(None), onset=parse_ts("2026-01-01T00:05:00Z"),
                           before_span=300.0, after_span=600.0, parse_ts=parse_ts)
    assert {(s["service"], s["level"]) for s in stats} == {("a", "FATAL"), ("b", "WARN")}
