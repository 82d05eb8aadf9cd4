"""schemathesis against the admin API's own OpenAPI document finds no 5xx (issue #13, Tests).

Every operation of ``/openapi.json``, with data that fits the schema and data that does not
(schemathesis' positive and negative modes), over real HTTP to the real app on a real database,
as an admin (every route's role). The check is schemathesis' ``not_a_server_error``.

Needs the ``schemathesis`` package (pinned in requirements.lock); ``tests/bot/test_api_fuzz.py``
covers the same ground with plain hypothesis.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from bot.http.api_routes import TABLE
from tests.bot.test_api import Api

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed: pip install -r requirements.lock")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402

# POST /query/{capability} reaches the MCP gateway (a world's tools), not the API's own code.
SKIP = ("/api/v1/query/",)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_schemathesis_finds_no_server_error(tmp_path, db, request):
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    api = Api(tmp_path, url, PM_API_RATE_PER_S="0")
    headers = api.as_("admin")
    try:
        spec = api.client.get("/openapi.json").json()
        schema = schemathesis.openapi.from_dict(spec)
        operations = [r.ok() for r in schema.get_all_operations()]
        # the document describes every route of the table (so every route is fuzzed)
        assert {(op.method.upper(), op.path) for op in operations} >= {
            (m, p.replace("{repo:path}", "{repo}")) for m, p, _role, _name in TABLE}, [op.label for op in operations]
        failures: list[str] = []
        statuses: dict[str, set[int]] = {}
        def checker(label: str, strategy):  # one hypothesis test per operation and mode
            @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            @given(case=strategy)
            def check(case):
                resp = case.call_and_validate(base_url=api.server.url, headers=headers, checks=[not_a_server_error])
                statuses.setdefault(label, set()).add(resp.status_code)

            return check

        for op in operations:
            if any(s in op.path for s in SKIP):
                continue
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    checker(op.label, op.as_strategy(generation_mode=mode))()
                except Exception as exc:  # collect every operation's failure, then fail once
                    failures.append(f"{op.label} ({mode.value}): {str(exc)[:1500]}")
        assert not failures, "\n\n".join(failures)
        # every fuzzed operation was called, and the negative cases were refused with a 4xx
        assert set(statuses) == {op.label for op in operations if not any(x in op.path for x in SKIP)}
        assert any(400 <= c < 500 for codes in statuses.values() for c in codes), statuses
        print(statuses)
    finally:
        api.close()
