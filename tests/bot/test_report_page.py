"""The report page and the list page: served over real HTTP, rendered in headless Chromium.

A real investigation of the sandbox world example-2 runs first (real worker, real MCP gateway);
Chromium (Debian's, installed by scripts/ensure-chromium.sh) opens the page through the link
token a Slack or Jira report carries, dumps the DOM it built and takes a screenshot, kept as
``test-artifacts/report-page.png`` (git-ignored) and in the test's tmp dir.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from commands.access import link_token, report_url
from tests.bot.test_api import SECRET, Api

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes"'


def _elements(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every element the browser built, with its attributes."""
    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, attrs))

    Collect().feed(html)
    return found


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is missing: run `bash scripts/ensure-chromium.sh` (scripts/test.sh does)"
    return found


def _headless(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         f"--user-data-dir={home / 'chromium-profile'}", "--hide-scrollbars", *args],
        capture_output=True, text=True, timeout=120, check=False, env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture(scope="module")
def app_with_report(tmp_path_factory):
    home = tmp_path_factory.mktemp("pages")
    a = Api(home, f"sqlite:///{home / 'pm.sqlite3'}", worker=True)
    done = a.client.post("/api/v1/investigate", headers=a.as_("operator"),
                         json={"ticket_id": "PAY-44706", "mode": "fast", "domain": "payments"}).json()
    evil = a.client.post("/api/v1/investigate", headers=a.as_("operator"), json={"text": EVIL}).json()
    for inv in (done, evil):
        assert a.runtime.wait(inv["investigation_id"], timeout_s=180)["status"] in ("COMPLETE", "FAILED")
    yield a, done["investigation_id"], evil["investigation_id"], home
    a.close()


def test_report_page_renders_in_chromium(app_with_report):
    a, inv_id, _evil, home = app_with_report
    url = report_url(a.server.url, inv_id, SECRET)
    dom = _headless("--dump-dom", url, home=home)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    verdict = re.search(r'id="verdict">(\w+)<', html)
    assert verdict and verdict.group(1) in ("CONFIRMED", "LIKELY", "INCONCLUSIVE"), html[:2000]
    assert 'id="root-cause"' in html and "pricing" in html
    assert re.search(r'<img class="chart"[^>]+src="data:image/png;base64,', html)  # the timeline chart
    assert "Counter-evidence" in html and 'id="phases"' in html and "EVIDENCE" in html and 'id="cost"' in html
    shot = home / "report-page.png"
    taken = _headless("--window-size=1280,2600", f"--screenshot={shot}", url, home=home)
    assert taken.returncode == 0 and shot.stat().st_size > 20_000, taken.stderr[-2000:]
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report-page.png")


def test_outside_text_is_escaped_in_the_browser(app_with_report):
    a, _inv_id, evil_id, home = app_with_report
    dom = _headless("--dump-dom", report_url(a.server.url, evil_id, SECRET), home=home)
    assert dom.returncode == 0, dom.stderr[-2000:]
    elements = _elements(dom.stdout)
    assert not [tag for tag, _attrs in elements if tag in ("script", "iframe", "object")]
    assert not [(tag, name) for tag, attrs in elements for name, _v in attrs if name.startswith("on")]
    assert not [tag for tag, attrs in elements if tag == "img" and ("src", "x") in attrs]
    assert "&lt;script&gt;alert" in dom.stdout  # shown as typed, as text


def test_list_page_needs_a_viewer_and_links_each_report(app_with_report):
    a, inv_id, evil_id, _home = app_with_report
    assert a.client.get("/investigations").status_code == 401
    page = a.client.get("/investigations", headers=a.as_("viewer"))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'href="/investigations/{inv_id}"' in page.text and f'href="/investigations/{evil_id}"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text


def test_a_link_token_opens_its_own_report_only(app_with_report):
    a, inv_id, evil_id, _home = app_with_report
    tok = link_token(SECRET, inv_id)
    assert a.client.get(f"/investigations/{inv_id}", params={"token": tok}).status_code == 200
    assert a.client.get(f"/investigations/{evil_id}", params={"token": tok}).status_code == 403
    assert a.client.get("/investigations", params={"token": tok}).status_code == 403
    api = a.client.get(f"/api/v1/investigations/{inv_id}", headers={"Authorization": f"Bearer {tok}"})
    assert api.status_code == 403  # a link is not an API credential
    assert a.client.get(f"/investigations/{inv_id}", params={"token": tok + "x"}).status_code == 401
    assert a.client.get("/investigations/inv-none", headers=a.as_("viewer")).status_code == 404


def test_slack_report_links_the_page_and_the_link_opens_it(tmp_path, sqlite_url):
    """PM_PUBLIC_URL set: the Slack report (real publisher, stand-in Slack) carries the page's link,
    whose token opens that page on the real app."""
    import json
    from urllib.parse import parse_qs, urlsplit

    import httpx

    from bot.http.app import create_app
    from bot.http.server import ServerThread
    from bot.http.settings import load_http_settings
    from bot.http.wiring import configure_runtime
    from pipeline.runtime import build_runtime
    from store.config import load_settings
    from store.db import upgrade
    from tests.bot.test_api import API_KEYS, WORLD
    from tests.commands.test_webhooks import alert_group_payload
    from tests.fakes.slack_server import FakeSlack

    upgrade(sqlite_url)
    with FakeSlack() as fake:
        settings = load_settings(PM_HOME=str(tmp_path), DATABASE_URL=sqlite_url, API_KEYS=API_KEYS, JWT_SECRET=SECRET,
                                 SLACK_BOT_TOKEN="xoxb-test", SLACK_API_URL=fake.api_url, PM_WORLD=str(WORLD),
                                 PM_WORKER_THREADS=2)
        http = load_http_settings(PM_DOMAINS=json.dumps({"booking": "bookings"}),
                                  PM_DOMAIN_CHANNELS=json.dumps({"bookings": "C0BOOK"}),
                                  PM_PUBLIC_URL="https://pm.example.org/")
        runtime = build_runtime(settings)
        configure_runtime(runtime, settings, http)
        server = ServerThread(create_app(settings, runtime, http)).start()
        worker = runtime.start_worker()
        try:
            resp = httpx.post(f"{server.url}/webhooks/alertmanager", json=alert_group_payload(),
                              headers={"Authorization": "Bearer plain-key"}, timeout=10)
            assert resp.status_code == 202, resp.text
            parent = fake.wait_for(
                lambda: next((m for m in fake.bot_messages("C0BOOK") if not m.get("thread_ts")), None), 60, "parent")
            report = fake.wait_for(
                lambda: next((m for m in fake.thread("C0BOOK", parent["ts"])
                              if any(b.get("type") == "header" for b in m.get("blocks") or [])), None), 120, "report")
        finally:
            worker.stop()
        try:
            links = re.findall(r"<(https://pm\.example\.org/investigations/[^|>]+)\|", json.dumps(report["blocks"]))
            assert len(links) == 1, report["blocks"]
            url = urlsplit(links[0])
            assert parse_qs(url.query)["token"]
            page = httpx.get(f"{server.url}{url.path}?{url.query}", timeout=10)
            assert page.status_code == 200 and "id=verdict>" in page.text
        finally:
            server.stop()
            runtime.close()
