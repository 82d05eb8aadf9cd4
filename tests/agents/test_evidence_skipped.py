"""Unit tests of agents.evidence.skipped and the code-location masking it relies on."""

from agents.evidence.logtemplates import mask, mine, new_miner, template_stats
from agents.evidence.skipped import binomial_cdf, find_skipped
from agents.evidence.timeutil import parse_ts


def test_code_locations_stay_whole_but_other_numbers_are_masked():
    assert mask("t.s.TravelServiceImpl#457 [getTickets] took 35 ms") == "t.s.TravelServiceImpl#457 [getTickets] took <NUM> ms"
    assert mask("at Handler.java:42 after 5 tries") == "at Handler.java:42 after <NUM> tries"
    assert mask("[dispatcherServlet]#175 failed") == "[dispatcherServlet]#175 failed"
    # Not a code location: a bare '#' number and a host:port stay masked.
    assert mask("job #37 done") == "job #<NUM> done"
    assert mask("connect db-1:5432 failed") == "connect <HOST> failed"


def test_two_statements_of_one_message_are_two_templates():
    miner = new_miner()
    texts = [mask(f"c.s.Impl#{line} [calc][distance {n}]") for line in (451, 457, 460, 470) for n in range(5)]
    assignment = mine(miner, texts)
    assert len(set(assignment.values())) == 4


def test_binomial_cdf():
    assert abs(binomial_cdf(0, 3, 0.5) - 0.125) < 1e-12
    assert binomial_cdf(3, 3, 0.5) == 1.0


def _line(minute: int, second: int, message: str) -> dict:
    return {"ts": f"2026-01-01T10:{minute:02d}:{second:02d}Z", "service": "travel", "level": "INFO", "message": message}


def _stats(lines):
    return template_stats(lines, miner=new_miner(), onset=parse_ts("2026-01-01T10:20:00Z"), before_span=1200,
                          after_span=600, parse_ts=parse_ts, recent_from=parse_ts("2026-01-01T10:20:00Z"))


def test_follower_silent_while_leader_goes_on_is_found():
    lines = []
    for minute in range(0, 30):
        lines.append(_line(minute, 1, f"t.s.Impl#451 calculate distance {minute}"))
        if minute < 20:
            lines.append(_line(minute, 2, f"t.s.Impl#457 distance is {minute * 7}"))
    found = find_skipped(_stats(lines), earlier_span=1200, recent_span=600)
    assert [f["template"].split()[0] for f in found] == ["t.s.Impl#457"]
    assert found[0]["leader"].startswith("t.s.Impl#451") and found[0]["recent"] == 0


def test_both_going_on_or_both_stopping_is_not_skipped():
    steady, stopped = [], []
    for minute in range(0, 30):
        steady += [_line(minute, 1, f"t.s.Impl#451 calc {minute}"), _line(minute, 2, f"t.s.Impl#457 done {minute}")]
        if minute < 20:
            stopped += [_line(minute, 1, f"t.s.Impl#451 calc {minute}"), _line(minute, 2, f"t.s.Impl#457 done {minute}")]
    assert find_skipped(_stats(steady), earlier_span=1200, recent_span=600) == []
    assert find_skipped(_stats(stopped), earlier_span=1200, recent_span=600) == []


def test_an_error_burst_is_not_a_leader():
    lines = []
    for minute in range(0, 30):
        if minute < 20:
            lines.append(_line(minute, 2, f"t.s.Impl#457 distance is {minute}"))
        else:
            lines.append({**_line(minute, 1, "Servlet#175 exception"), "level": "ERROR"})
            lines.append({**_line(minute, 3, "Servlet#175 exception"), "level": "ERROR"})
    assert find_skipped(_stats(lines), earlier_span=1200, recent_span=600) == []
