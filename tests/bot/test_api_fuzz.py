"""No input makes the admin API answer 5xx: random JSON bodies, path ids and query values (hypothesis)
against every route of the route table, over real HTTP on a real SQLite database.

tests/bot/test_api_schemathesis.py runs schemathesis against the OpenAPI document; this one also
sends bodies and ids the document does not describe: every answer is < 500 and every 4xx is problem+json.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.http.api_routes import TABLE
from tests.bot.test_api import Api

# NUL is named on its own: PostgreSQL text cannot hold it, and random text rarely contains it.
TEXT = st.text(max_size=40) | st.sampled_from(["a\x00b", "\x00", "<script>", "../../etc", "' OR 1=1 --"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=12,
)
FIELDS = st.fixed_dictionaries({}, optional={
    "ticket_id": TEXT, "alert_id": TEXT, "text": TEXT,
    "mode": st.sampled_from(["fast", "balanced", "deep", "x"]), "priority": st.sampled_from(["P1", "P3", "P0"]),
    "domain": TEXT, "publish": JSON, "callback_url": st.text(max_size=40) | st.just("http://[::1"),
})
SEGMENT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30) | st.just("a\x00b")
QUERY = st.dictionaries(st.sampled_from(["status", "domain", "since", "until", "limit", "cursor", "format"]),
                        TEXT, max_size=4)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_no_input_gives_a_5xx(tmp_path, db, request):
    url = request.getfixturevalue("sqlite_url" if db == "sqlite" else "pg_url")
    api = Api(tmp_path, url, PM_API_RATE_PER_S="0")
    headers = api.as_("admin")
    try:
        @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(route=st.sampled_from([r for r in TABLE if "/query/" not in r[1]]), body=FIELDS | JSON,
               segment=SEGMENT, query=QUERY)
        def check(route, body, segment, query):
            method, path, _role, _name = route
            url = path.replace("{id}", quote(segment, safe="")).replace("{repo:path}", quote(segment, safe="/"))
            kwargs = {"params": query, "headers": headers}
            if method == "POST":
                kwargs["content"] = json.dumps(body).encode()
            resp = api.client.request(method, url, **kwargs)
            assert resp.status_code < 500, (method, url, body, query, resp.text)
            if resp.status_code >= 400:
                assert resp.headers["content-type"].startswith("application/problem+json"), resp.text

        check()
    finally:
        api.close()
