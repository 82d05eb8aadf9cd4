"""Hypothesis-generated bodies for every webhook source (issue #11, finding 4), over real HTTP.

Bodies are valid vendor payloads mutated at random places (a value replaced by any JSON value or by
junk text: NUL, lone surrogates, "True", "0", "[]", deep nesting; a key dropped) or plain random
JSON. Whatever arrives: no 5xx, no stored row that then fails processing, and no junk investigation
(every one opened has a string fingerprint, an ISO-8601 time when it has one, string names).
Runs on SQLite and on PostgreSQL (whose JSON and text types refuse more than SQLite does).
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from store.models import InboundDelivery, Investigation
from tests.bot.test_http_hostile_intake import DEPLOY, hostile, post  # noqa: F401 - the fixture
from tests.commands.test_webhooks import alert_group_payload, jira_payload, pagerduty_payload

JUNK_TEXT = st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "True", "0", "[]", "", " ", "null",
                             "9" * 400, "2026-13-45T99:99:99Z", "\n", "<script>", "\u202e"])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30), JUNK_TEXT,
)
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), JUNK_TEXT), inner, max_size=4)),
    max_leaves=12)


def _valid(source: str) -> Any:
    if source in ("alertmanager", "grafana"):
        return alert_group_payload(fingerprints=("fz1", "fz2"))
    if source == "jira":
        return jira_payload()
    if source == "pagerduty":
        return pagerduty_payload()
    if source == "deploy":
        return dict(DEPLOY)
    return [{"id": "c1", "ts": "2026-12-06T08:00:00Z", "kind": "config", "service": "booking", "summary": "s"}]


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def bodies(draw: st.DrawFn, source: str) -> bytes:
    if draw(st.integers(0, 9)) == 0:  # now and then: any JSON at all, or a deep nest
        return draw(st.one_of(JSON.map(lambda v: json.dumps(v).encode()),
                              st.integers(60, 3000).map(lambda n: b'{"a":' + b"[" * n + b"]" * n + b"}")))
    payload = copy.deepcopy(_valid(source))
    for _ in range(draw(st.integers(0, 3))):  # 0: the valid body itself (a redelivery)
        paths = [p for p in _paths(payload) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = payload
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict) and draw(st.booleans()) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON)
    return json.dumps(payload).encode()  # ensure_ascii: NULs and surrogates travel as \\u escapes


_BAD = re.compile("[\x00\ud800-\udfff]")


def _sane_text(value: Any) -> bool:
    return isinstance(value, str) and not _BAD.search(value)


def _junk(inv: Investigation) -> list[str]:
    """What is wrong with an investigation opened from a webhook (empty: nothing)."""
    wrong = []
    trigger = inv.trigger or {}
    if not _sane_text(inv.fingerprint):
        wrong.append(f"fingerprint {inv.fingerprint!r}")
    for key in ("alert", "ticket", "title", "source"):
        if key in trigger and trigger[key] is not None and not _sane_text(trigger[key]):
            wrong.append(f"trigger.{key} {trigger[key]!r}")
    if trigger.get("service") is not None and not _sane_text(trigger["service"]):
        wrong.append(f"trigger.service {trigger['service']!r}")
    if trigger.get("ts") is not None:
        try:
            datetime.fromisoformat(str(trigger["ts"]).replace("Z", "+00:00"))
        except ValueError:
            wrong.append(f"trigger.ts {trigger['ts']!r}")
    for k, v in (trigger.get("labels") or {}).items():
        if not (_sane_text(k) and _sane_text(v)):
            wrong.append(f"trigger.labels {k!r}: {v!r}")
    return wrong


SOURCES = ["alertmanager", "grafana", "jira", "pagerduty", "deploy", "change"]


@pytest.mark.parametrize("source", SOURCES)
def test_generated_bodies_never_get_a_5xx_nor_open_a_junk_investigation(hostile, source):  # noqa: F811
    examples = 120 if "sqlite" in hostile.settings.effective_database_url else 50
    answers: dict[int, int] = {}

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(body=bodies(source))
    def check(body: bytes) -> None:
        resp = post(hostile, source, body)
        answers[resp.status_code] = answers.get(resp.status_code, 0) + 1
        assert resp.status_code < 500, f"{resp.status_code} for {body[:400]!r}: {resp.text[:300]}"
        if resp.status_code >= 400:
            assert resp.headers["content-type"].startswith("application/problem+json")
            assert resp.json().get("field") or resp.status_code in (401, 413)

    check()
    with hostile.runtime.session() as s:
        stuck = list(s.execute(select(InboundDelivery.id, InboundDelivery.status)
                               .where(InboundDelivery.status.in_(("accepted", "failed", "dead")))))
        junk = {i.id: _junk(i) for i in s.execute(select(Investigation)).scalars() if _junk(i)}
    assert not stuck, f"rows stored that then failed processing: {stuck}"
    assert not junk, junk
    assert answers.get(202, 0) + answers.get(200, 0) > 0, answers  # some mutations stay valid: the path is exercised
