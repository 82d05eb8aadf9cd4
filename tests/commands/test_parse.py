import pytest

from commands.errors import BadRequest
from commands.parse import parse_trigger_text, split_mode
from commands.requests import InvestigationRequest, Origin


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SCHED-45895", {"ticket": "SCHED-45895"}),
        (" PAY-1 ", {"ticket": "PAY-1"}),
        ("pd-7781", {"alert": "pd-7781"}),
        ("am-2d06975d", {"alert": "am-2d06975d"}),
        ("checkout is throwing 500s", {"text": "checkout is throwing 500s"}),
        ("sched-45895", {"text": "sched-45895"}),
    ],
)
def test_parse_trigger_text(text, expected):
    assert parse_trigger_text(text) == expected


def test_empty_trigger_says_what_to_type():
    with pytest.raises(BadRequest, match="ticket key"):
        parse_trigger_text("   ")


def test_split_mode():
    assert split_mode(["SCHED-1", "deep"]) == (["SCHED-1"], "deep")
    assert split_mode(["SCHED-1"]) == (["SCHED-1"], "balanced")


def test_request_validation():
    origin = Origin(kind="cli")
    assert InvestigationRequest(trigger={"ticket": "A-1"}, origin=origin).trigger_kind == "ticket"
    with pytest.raises(BadRequest, match="exactly one"):
        InvestigationRequest(trigger={"ticket": "A-1", "alert": "pd-1"}, origin=origin)
    with pytest.raises(BadRequest, match="mode"):
        InvestigationRequest(trigger={"text": "x"}, origin=origin, mode="slow")
    with pytest.raises(BadRequest, match="origin kind"):
        Origin(kind="fax")
    assert Origin(kind="slack", channel="C1").to_dict() == {"kind": "slack", "channel": "C1"}
