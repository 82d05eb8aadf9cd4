"""The admin REST API over real HTTP (uvicorn in a thread), a real database and the in-process broker.

Without a worker, investigations stay queued where we can see them; one test runs a worker on the
sandbox world example-2 and reads the finished investigation's report, traces, costs and metrics.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
import jwt
import pytest

from bot.http.api_routes import TABLE
from bot.http.app import create_app
from bot.http.server import ServerThread
from bot.http.settings import load_http_settings
from pipeline.runtime import QUEUES, build_runtime
from store.config import load_settings
from store.db import upgrade
from tests.paths import SHARED

SECRET = "jwt-secret-for-tests-0123456789abcdef"
KEYS = {"viewer": "view-key", "operator": "op-key", "admin": "admin-key"}
API_KEYS = "view-key:viewer,op-key:operator,admin-key:admin,plain-key"
WORLD = SHARED / "worlds" / "example-2"


class Api:
    """A running app (no worker unless asked) and an HTTP client."""

    def __init__(self, home: Path, url: str, *, worker: bool = False, **http_overrides: str) -> None:
        upgrade(url)
        self.settings = load_settings(PM_HOME=str(home), DATABASE_URL=url, API_KEYS=API_KEYS, JWT_SECRET=SECRET,
                                      PM_WORLD=str(WORLD), PM_WORKER_THREADS=2, POST_DEPLOY_CHECK_DELAY_MS=0)
        self.runtime = build_runtime(self.settings)
        self.app = create_app(self.settings, self.runtime, load_http_settings(**http_overrides))
        self.server = ServerThread(self.app).start()
        self.worker = self.runtime.start_worker() if worker else None
        self.client = httpx.Client(base_url=self.server.url, timeout=30)

    def as_(self, role: str) -> dict[str, str]:
        return {"x-api-key": KEYS[role]}

    def close(self) -> None:
        self.client.close()
        if self.worker is not None:
            self.worker.stop()
        self.server.stop()
        self.runtime.close()


def token(role: str, *, exp_in: float = 300, secret: str = SECRET, **claims: object) -> str:
    return jwt.encode({"sub": f"alice-{role}", "role": role, "exp": int(time.time() + exp_in), **claims}, secret,
                      algorithm="HS256")


@pytest.fixture
def api(tmp_path, sqlite_url):
    a = Api(tmp_path, sqlite_url)
    yield a
    a.close()


def _problem(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["detail"]
    return body


def _concrete(path: str) -> str:
    return (path.replace("{id}", "inv-none").replace("{repo:path}", "bookings")
            .replace("{capability}", "metrics.list"))


# ---------------------------------------------------------------- auth and roles

@pytest.mark.parametrize(("method", "path", "role", "name"), TABLE, ids=[f"{m} {p}" for m, p, _r, _n in TABLE])
def test_every_route_checks_credentials_and_role(api, method, path, role, name):
    url = _concrete(path)

    def call(headers: dict[str, str]) -> httpx.Response:
        return api.client.request(method, url, headers=headers, json={} if method == "POST" else None)

    _problem(call({}), 401)
    _problem(call({"x-api-key": "wrong"}), 401)
    _problem(call({"Authorization": f"Bearer {token('admin', exp_in=-10)}"}), 401)  # expired
    _problem(call({"Authorization": f"Bearer {token('admin', secret='another-secret-0123456789abcdef-0123')}"}), 401)
    no_exp = jwt.encode({"sub": "x", "role": "admin"}, SECRET, algorithm="HS256")
    _problem(call({"Authorization": f"Bearer {no_exp}"}), 401)
    ranks = ["viewer", "operator", "admin"]
    for held in ranks:
        for headers in (api.as_(held), {"Authorization": f"Bearer {token(held)}"}):
            resp = call(headers)
            if ranks.index(held) < ranks.index(role):
                assert _problem(resp, 403)["detail"].startswith(f"this needs the {role} role")
            else:
                assert resp.status_code not in (401, 403, 429), (held, resp.text)


def test_a_plain_key_is_an_operator_and_still_works_for_webhooks(api):
    headers = {"x-api-key": "plain-key"}
    assert api.client.post("/api/v1/investigate", json={"text": "checkout slow"}, headers=headers).status_code == 202
    _problem(api.client.post("/api/v1/domains", json={"domain": "x"}, headers=headers), 403)
    resp = api.client.post("/webhooks/deploy", json={}, headers={"Authorization": "Bearer plain-key"})
    assert resp.status_code != 401


def test_a_bearer_api_key_works_like_x_api_key(api):
    resp = api.client.get("/api/v1/investigations", headers={"Authorization": "Bearer view-key"})
    assert resp.status_code == 200


def test_rate_limit_per_key(tmp_path, sqlite_url):
    a = Api(tmp_path, sqlite_url, PM_API_RATE_PER_S="0.01", PM_API_BURST="3")
    try:
        codes = [a.client.get("/api/v1/investigations", headers=a.as_("viewer")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        last = a.client.get("/api/v1/investigations", headers=a.as_("viewer"))
        assert int(_problem(last, 429) and last.headers["retry-after"]) >= 1
        # another key has its own bucket
        assert a.client.get("/api/v1/investigations", headers=a.as_("admin")).status_code == 200
    finally:
        a.close()


# ---------------------------------------------------------------- investigate

def test_investigate_answers_the_design_shape_and_queues_it(api):
    resp = api.client.post("/api/v1/investigate", headers=api.as_("operator"), json={
        "ticket_id": "PAY-44706", "mode": "fast", "domain": "payments", "priority": "P1",
        "publish": {"jira": True, "slack": "#payments"}})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "QUEUED"
    assert body["status_url"] == f"/api/v1/investigations/{body['investigation_id']}" == resp.headers["location"]
    assert api.runtime.broker.queues[QUEUES["P1"][0]].qsize() == 1
    status = api.client.get(body["status_url"], headers=api.as_("viewer")).json()
    assert status["ticket_id"] == "PAY-44706" and status["phase"] == 0 and status["total_phases"] == 10
    assert status["token_usage"]["total"] == 0 and status["agents_running"] == []


@pytest.mark.parametrize("key", [None, "idem-1"])
def test_an_unknown_ticket_or_alert_is_a_400_and_nothing_is_stored(api, key):
    from sqlalchemy import func, select

    from store.models import InboundDelivery, Investigation

    headers = {**api.as_("operator"), **({"Idempotency-Key": key} if key else {})}
    for body, words in (({"ticket_id": "NOPE-99999"}, "no ticket NOPE-99999"), ({"alert_id": "pd-0000"}, "no alert pd-0000")):
        detail = _problem(api.client.post("/api/v1/investigate", headers=headers, json=body), 400)["detail"]
        assert words in detail and "check the key" in detail and "nothing was investigated" in detail
    with api.runtime.session() as s:
        assert s.scalar(select(func.count()).select_from(Investigation)) == 0
        assert s.scalar(select(func.count()).select_from(InboundDelivery)) == 0
    # the words in quotes go on as free text
    resp = api.client.post("/api/v1/investigate", headers=api.as_("operator"), json={"text": '"NOPE-99999" errors'})
    assert resp.status_code == 202, resp.text


@pytest.mark.parametrize(("body", "words"), [
    ({}, "exactly one of"),
    ({"ticket_id": "A-1", "text": "x"}, "exactly one of"),
    ({"text": "x", "mode": "turbo"}, "mode must be one of"),
    ({"text": "x", "priority": "P9"}, "priority must be one of"),
    ({"text": "x", "colour": "red"}, "unknown field"),
    ({"text": "x", "publish": {"email": True}}, "publish must be"),
    ({"text": "x", "callback_url": "ftp://example.org/x"}, "http:// or https://"),
    ({"text": 5}, "must be a string"),
    (["text"], "JSON object"),
])
def test_bad_investigate_bodies_are_400_problems(api, body, words):
    resp = api.client.post("/api/v1/investigate", headers=api.as_("operator"), json=body)
    assert words in _problem(resp, 400)["detail"]


def test_not_json_and_too_large_bodies(tmp_path, sqlite_url):
    a = Api(tmp_path, sqlite_url, PM_WEBHOOK_MAX_BODY_BYTES="2048")
    try:
        resp = a.client.post("/api/v1/investigate", headers=a.as_("operator"), content=b"{nope")
        assert "not JSON" in _problem(resp, 400)["detail"]
        resp = a.client.post("/api/v1/investigate", headers=a.as_("operator"),
                             json={"text": "x" * 5000})
        _problem(resp, 413)
    finally:
        a.close()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://[::1]/hook", "http://169.254.169.254/latest/meta-data",
    "http://10.1.2.3/x", "http://192.168.0.10/x", "http://172.20.0.1/x", "http://100.64.0.1/x",
    "http://[::ffff:127.0.0.1]/x", "http://0.0.0.0/x", "http://localhost/x", "https://user:pw@93.184.215.14/x",
])
def test_callback_url_ssrf_guard_refuses_internal_targets(api, url):
    resp = api.client.post("/api/v1/investigate", headers=api.as_("operator"), json={"text": "x", "callback_url": url})
    _problem(resp, 400)


def test_callback_url_public_is_accepted_and_private_only_when_allowed(tmp_path, sqlite_url):
    a = Api(tmp_path, sqlite_url, PM_CALLBACK_ALLOW_PRIVATE="1")
    try:
        for url in ("https://93.184.215.14/done", "http://127.0.0.1:9/hook"):
            resp = a.client.post("/api/v1/investigate", headers=a.as_("operator"),
                                 json={"text": f"t {url}", "callback_url": url})
            assert resp.status_code == 202, resp.text
    finally:
        a.close()


def test_idempotency_key_answers_the_same_investigation_once(api):
    headers = {**api.as_("operator"), "Idempotency-Key": "req-1"}
    first = api.client.post("/api/v1/investigate", headers=headers, json={"text": "pricing errors"})
    again = api.client.post("/api/v1/investigate", headers=headers, json={"text": "pricing errors"})
    assert first.status_code == again.status_code == 202
    assert first.json()["investigation_id"] == again.json()["investigation_id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert api.runtime.broker.queues[QUEUES["P2"][0]].qsize() == 1  # enqueued once
    other = api.client.post("/api/v1/investigate", headers=headers, json={"text": "something else"})
    assert "different body" in _problem(other, 422)["detail"]
    # keys are per caller: the admin's "req-1" is another request
    mine = api.client.post("/api/v1/investigate", headers={**api.as_("admin"), "Idempotency-Key": "req-1"},
                           json={"text": "pricing errors again"})
    assert mine.json()["investigation_id"] != first.json()["investigation_id"]


def test_idempotency_under_concurrent_retries(api):
    headers = {**api.as_("operator"), "Idempotency-Key": "burst"}
    ids: list[str] = []

    def post() -> None:
        with httpx.Client(base_url=api.server.url, timeout=30) as c:
            resp = c.post("/api/v1/investigate", headers=headers, json={"text": "burst"})
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["investigation_id"])

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8 and len(set(ids)) == 1


def test_batch_list_pagination_filters_and_cancel(api):
    op = api.as_("operator")
    items = [{"text": f"incident {i}", "domain": "payments" if i % 2 else "bookings"} for i in range(5)]
    resp = api.client.post("/api/v1/investigate/batch", headers=op, json={"investigations": items})
    assert resp.status_code == 202, resp.text
    ids = [i["investigation_id"] for i in resp.json()["investigations"]]
    assert len(set(ids)) == 5
    bad = api.client.post("/api/v1/investigate/batch", headers=op, json={"investigations": [{"text": "a"}, {}]})
    assert "investigations[1]" in _problem(bad, 400)["detail"]

    seen, cursor = [], None
    while True:
        page = api.client.get("/api/v1/investigations", headers=api.as_("viewer"),
                              params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [i["id"] for i in page["items"]]
        assert len(page["items"]) <= 2
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    payments = api.client.get("/api/v1/investigations", headers=api.as_("viewer"), params={"domain": "payments"})
    assert {i["domain"] for i in payments.json()["items"]} == {"payments"} and len(payments.json()["items"]) == 2
    future = api.client.get("/api/v1/investigations", headers=api.as_("viewer"),
                            params={"since": "2999-01-01T00:00:00Z"}).json()
    assert future["items"] == []
    for params, words in (({"status": "DONE"}, "status must be"), ({"limit": "0"}, "limit must be"),
                          ({"since": "yesterday"}, "ISO-8601"), ({"cursor": "!!"}, "cursor")):
        assert words in _problem(api.client.get("/api/v1/investigations", headers=api.as_("viewer"),
                                                params=params), 400)["detail"]

    cancelled = api.client.delete(f"/api/v1/investigations/{ids[0]}", headers=op)
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "CANCELLED"
    again = api.client.delete(f"/api/v1/investigations/{ids[0]}", headers=op)
    assert "already CANCELLED" in _problem(again, 400)["detail"]
    _problem(api.client.delete("/api/v1/investigations/inv-none", headers=op), 404)
    _problem(api.client.get("/api/v1/investigations/inv-none/report", headers=op), 404)
    not_ready = api.client.get(f"/api/v1/investigations/{ids[1]}/report", headers=op)
    assert "no report yet" in _problem(not_ready, 409)["detail"]


def test_domains(api):
    assert api.client.get("/api/v1/domains", headers=api.as_("viewer")).json() == {"domains": []}
    resp = api.client.post("/api/v1/domains", headers=api.as_("admin"),
                           json={"domain": "Bookings/Server/scheduler", "config": {"slack_channel": "C0BOOK"}})
    assert resp.status_code == 200, resp.text
    got = api.client.get("/api/v1/domains/Bookings/Server/scheduler/config", headers=api.as_("viewer"))
    assert got.json() == {"domain": "Bookings/Server/scheduler", "config": {"slack_channel": "C0BOOK"}}
    _problem(api.client.get("/api/v1/domains/nope/config", headers=api.as_("viewer")), 404)
    _problem(api.client.post("/api/v1/domains", headers=api.as_("admin"), json={"config": {}}), 400)


def test_openapi_lists_every_route(api):
    doc = api.client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for method, path, _role, _name in TABLE:
        assert method.lower() in doc["paths"][path.replace(":path}", "}")]


def test_healthz_is_answered_from_memory_and_readyz_is_cached(api):
    readiness = next(r for r in api.app.routes if getattr(r, "path", "") == "/readyz").readiness
    before = readiness.runs
    for _ in range(20):
        assert api.client.get("/healthz").json() == {"status": "ok"}
    assert readiness.runs == before
    answers = [api.client.get("/readyz") for _ in range(20)]
    assert all(r.status_code == 200 and r.json()["checks"] == {"database": "ok", "broker": "ok"} for r in answers)
    assert readiness.runs - before <= 3  # 20 probes within a second or two: at most one check per second


def test_readyz_says_what_is_down(tmp_path, sqlite_url):
    a = Api(tmp_path, sqlite_url)
    try:
        a.runtime.engine.dispose()
        db_file = Path(sqlite_url.removeprefix("sqlite:///"))
        db_file.rename(db_file.with_suffix(".gone"))
        db_file.mkdir()  # a directory where the database file was: connecting fails
        time.sleep(1.1)
        body = _problem(a.client.get("/readyz"), 503)
        assert body["checks"]["database"] != "ok" and "DATABASE_URL" in body["detail"]
    finally:
        a.close()


# ---------------------------------------------------------------- a finished investigation

@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    home = tmp_path_factory.mktemp("finished")
    a = Api(home, f"sqlite:///{home / 'pm.sqlite3'}", worker=True)
    resp = a.client.post("/api/v1/investigate", headers=a.as_("operator"),
                         json={"ticket_id": "PAY-44706", "mode": "fast", "domain": "payments"})
    inv_id = resp.json()["investigation_id"]
    final = a.runtime.wait(inv_id, timeout_s=180)
    assert final["status"] == "COMPLETE", final
    yield a, inv_id
    a.close()


def test_report_in_three_formats(finished):
    a, inv_id = finished
    url = f"/api/v1/investigations/{inv_id}/report"
    body = a.client.get(url, headers=a.as_("viewer")).json()
    assert body["status"] == "COMPLETE" and body["verdict"] and body["report_markdown"].startswith("# ")
    assert "pricing" in body["report_markdown"]
    md = a.client.get(url, headers={**a.as_("viewer"), "Accept": "text/markdown"})
    assert md.headers["content-type"].startswith("text/markdown") and md.text == body["report_markdown"]
    jira = a.client.get(url, headers=a.as_("viewer"), params={"format": "jira"})
    assert jira.headers["content-type"].startswith("text/x-jira-wiki") and jira.text == body["report_jira_wiki"]
    _problem(a.client.get(url, headers=a.as_("viewer"), params={"format": "pdf"}), 400)


def test_status_traces_and_costs(finished):
    a, inv_id = finished
    status = a.client.get(f"/api/v1/investigations/{inv_id}", headers=a.as_("viewer")).json()
    assert status["status"] == "COMPLETE" and status["phase"] is None and status["elapsed_seconds"] > 0
    assert "evidence-engine" in status["agents_completed"]
    traces = a.client.get(f"/api/v1/investigations/{inv_id}/traces", headers=a.as_("viewer")).json()
    assert {p["phase"] for p in traces["phases"]} >= {"EVIDENCE", "HYPOTHESES", "REPORT"}
    calls = [c for run in traces["agents"] for c in run["tool_calls"]]
    assert traces["tool_calls"] == len(calls) > 0 and all(c["capability"] and c["server"] for c in calls)
    cost = a.client.get(f"/api/v1/costs/investigation/{inv_id}", headers=a.as_("viewer")).json()
    assert cost["cost_breakdown"]["mcp_calls"]["count"] == traces["tool_calls"]
    summary = a.client.get("/api/v1/costs/summary", headers=a.as_("viewer")).json()
    assert summary["by_domain"]["payments"]["investigations"] >= 1


def test_direct_query_through_the_gateway(finished):
    a, _ = finished
    resp = a.client.post("/api/v1/query/tickets.get", headers=a.as_("operator"), json={"args": {"key": "PAY-44706"}})
    assert resp.status_code == 200, resp.text
    assert "pricing" in str(resp.json()["result"])
    unknown = a.client.post("/api/v1/query/nothing.here", headers=a.as_("operator"), json={"args": {}})
    assert "not configured" in _problem(unknown, 400)["detail"]


def test_metrics_after_an_investigation(finished):
    a, _ = finished
    text = a.client.get("/metrics").text
    # the registry is the process's: other tests' runs may add to these, so presence is checked
    assert re.search(r'pm_investigation_total\{domain="payments",priority="P2",trigger="api"\} [1-9]', text)
    for series in (
                   'pm_investigation_finished_total{domain="payments",status="COMPLETE"',
                   "pm_investigation_duration_seconds_bucket", 'pm_phase_duration_seconds_count{phase="EVIDENCE"}',
                   "pm_mcp_call_duration_seconds_count{capability=", "pm_hypothesis_confidence_count",
                   'pm_investigation_status{status="QUEUED"}', 'pm_queue_depth{priority="P1"} 0.0',
                   'pm_http_requests_total{code="202",method="POST",route="/api/v1/investigate"}',
                   "pm_agent_execution_duration_seconds_count", 'pm_webhook_deliveries_total{source="jira"'):
        assert series in text, series


def test_request_id_is_echoed_or_made(api):
    given = api.client.get("/healthz", headers={"X-Request-Id": "req-42.a_b"})
    assert given.headers["x-request-id"] == "req-42.a_b"
    made = api.client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"}).headers["x-request-id"]
    assert made != "bad id with spaces" and len(made) == 32
