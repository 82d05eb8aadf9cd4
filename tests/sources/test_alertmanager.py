"""The alertmanager provider against a REAL Alertmanager 0.25 (alerts posted through its API v2), plus a
canned loopback server for what a real one will not do on demand (500, garbage, slow)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.http.server import free_port
from sandbox.errors import NotFoundError, ToolArgumentError
from sources.alertmanager import AlertmanagerProvider
from sources.base import iso
from sources.errors import SourceError
from sources.registry import build_provider
from store.errors import ConfigError
from store.sources_file import parse_sources
from tests.sources.am_process import Alertmanager
from tests.sources.canned_http import CannedServer

pytestmark = pytest.mark.integration

#: Whole seconds, ten minutes ago: the alerts below start before it.
NOW = float(int(time.time()))


def provider(url: str, **settings: Any) -> AlertmanagerProvider:
    doc = parse_sources({"alerts": [{"kind": "alertmanager", "url": url, **settings}]}, base_dir=Path.cwd())
    built = build_provider(doc.entries[0], doc)
    assert isinstance(built, AlertmanagerProvider)
    return built


def _at(offset_s: float) -> str:
    return iso(NOW + offset_s).replace("Z", ".000Z")


ALERTS = [
    {"labels": {"alertname": "CheckoutErrors", "service": "checkout", "severity": "critical", "env": "prod"},
     "annotations": {"summary": "checkout 5xx above 5%"}, "startsAt": _at(-3000)},
    {"labels": {"alertname": "PaymentsLatency", "app": "payments", "severity": "warning", "env": "prod"},
     "annotations": {}, "startsAt": _at(-1800)},
    {"labels": {"alertname": "TargetDown", "job": "inventory", "env": "staging"},
     "annotations": {"summary": "inventory target down"}, "startsAt": _at(-600)},
    # A service label wins over app: this alert belongs to checkout, not payments.
    {"labels": {"alertname": "CheckoutSlow", "service": "checkout", "app": "payments", "severity": "warning",
                "env": "prod"},
     "annotations": {"summary": "checkout p95 above 2s"}, "startsAt": _at(-1200)},
]


@pytest.fixture(scope="module")
def am(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    server = Alertmanager(tmp_path_factory.mktemp("alertmanager"))
    try:
        server.post(ALERTS)
        yield server
    finally:
        server.stop()


def expected(am: Alertmanager) -> dict[str, dict[str, Any]]:
    fp = am.fingerprints()
    return {
        "CheckoutErrors": {"id": f"am-{fp['CheckoutErrors']}", "ts": iso(NOW - 3000), "source": "alertmanager",
                           "service": "checkout", "severity": "critical", "title": "checkout 5xx above 5%",
                           "labels": ALERTS[0]["labels"]},
        "PaymentsLatency": {"id": f"am-{fp['PaymentsLatency']}", "ts": iso(NOW - 1800), "source": "alertmanager",
                            "service": "payments", "severity": "warning", "title": "PaymentsLatency",
                            "labels": ALERTS[1]["labels"]},
        "CheckoutSlow": {"id": f"am-{fp['CheckoutSlow']}", "ts": iso(NOW - 1200), "source": "alertmanager",
                         "service": "checkout", "severity": "warning", "title": "checkout p95 above 2s",
                         "labels": ALERTS[3]["labels"]},
        "TargetDown": {"id": f"am-{fp['TargetDown']}", "ts": iso(NOW - 600), "source": "alertmanager",
                       "service": "inventory", "severity": None, "title": "inventory target down",
                       "labels": ALERTS[2]["labels"]},
    }


def test_lists_every_alert_normalised_oldest_first(am: Alertmanager) -> None:
    want = expected(am)
    got = provider(am.url).call("alerts.list")
    assert got == {"alerts": [want["CheckoutErrors"], want["PaymentsLatency"], want["CheckoutSlow"], want["TargetDown"]]}


def test_window_is_half_open_on_starts_at(am: Alertmanager) -> None:
    want = expected(am)
    p = provider(am.url)
    got = p.call("alerts.list", start=iso(NOW - 1800), end=iso(NOW - 600))
    assert got == {"alerts": [want["PaymentsLatency"], want["CheckoutSlow"]]}
    assert p.call("alerts.list", start=iso(NOW - 1799), end=iso(NOW - 601)) == {"alerts": [want["CheckoutSlow"]]}
    assert p.call("alerts.list", start=iso(NOW + 60)) == {"alerts": []}


def test_service_filter_uses_the_label_and_its_fallbacks(am: Alertmanager) -> None:
    want = expected(am)
    p = provider(am.url)
    assert p.call("alerts.list", service="checkout") == {"alerts": [want["CheckoutErrors"], want["CheckoutSlow"]]}
    # app=payments on CheckoutSlow does not make it a payments alert: service= is read first.
    assert p.call("alerts.list", service="payments") == {"alerts": [want["PaymentsLatency"]]}
    assert p.call("alerts.list", service="inventory") == {"alerts": [want["TargetDown"]]}
    assert p.call("alerts.list", service="nobody") == {"alerts": []}
    # A quote in the service is data in the matcher, not syntax.
    assert p.call("alerts.list", service='checkout" , env="prod') == {"alerts": []}


def test_configured_service_label_and_filter(am: Alertmanager) -> None:
    want = expected(am)
    p = provider(am.url, service_label="app", filter=['env="prod"'])
    got = p.call("alerts.list")
    assert [a["id"] for a in got["alerts"]] == [want[n]["id"] for n in ("CheckoutErrors", "PaymentsLatency",
                                                                           "CheckoutSlow")]
    assert [a["service"] for a in got["alerts"]] == ["checkout", "payments", "payments"]
    assert p.call("alerts.list", service="payments")["alerts"] == [
        want["PaymentsLatency"], {**want["CheckoutSlow"], "service": "payments"}]


def test_cap_reached_says_truncated(am: Alertmanager) -> None:
    want = expected(am)
    got = provider(am.url, max_alerts=2).call("alerts.list")
    assert got["alerts"] == [want["CheckoutErrors"], want["PaymentsLatency"]]
    assert got["truncated"] == ("4 alerts matched, the first 2 returned (raise alerts[0].max_alerts or narrow "
                                "the window)")


def test_get_by_id_and_not_found(am: Alertmanager) -> None:
    want = expected(am)
    p = provider(am.url)
    assert p.call("alerts.get", id=want["TargetDown"]["id"]) == want["TargetDown"]
    assert p.call("alerts.get", id=want["TargetDown"]["id"][3:]) == want["TargetDown"]
    with pytest.raises(NotFoundError, match="holds no alert 'am-0123456789abcdef'"):
        p.call("alerts.get", id="am-0123456789abcdef")
    with pytest.raises(NotFoundError, match="not an Alertmanager alert id"):
        p.call("alerts.get", id="pd-1234")
    with pytest.raises(ToolArgumentError, match="'id' is required"):
        p.call("alerts.get")


def test_check_names_version_and_count(am: Alertmanager) -> None:
    assert provider(am.url).check() == "Alertmanager 0.25.0, 4 active alerts"


def test_silenced_alerts_are_listed_unless_told_not_to(am: Alertmanager) -> None:
    want = expected(am)
    silence = am.client.post("/api/v2/silences", json={
        "matchers": [{"name": "alertname", "value": "TargetDown", "isRegex": False, "isEqual": True}],
        "startsAt": iso(NOW - 60), "endsAt": iso(NOW + 3600), "createdBy": "tests", "comment": "known"})
    assert silence.status_code == 200, silence.text
    try:
        assert provider(am.url).call("alerts.list", service="inventory") == {"alerts": [want["TargetDown"]]}
        assert provider(am.url, silenced=False).call("alerts.list", service="inventory") == {"alerts": []}
        assert provider(am.url).check() == "Alertmanager 0.25.0, 3 active alerts"
    finally:
        am.client.delete(f"/api/v2/silence/{silence.json()['silenceID']}")
    assert provider(am.url).check() == "Alertmanager 0.25.0, 4 active alerts"


def test_bad_arguments_and_settings(am: Alertmanager) -> None:
    with pytest.raises(ToolArgumentError, match="not an ISO-8601 time"):
        provider(am.url).call("alerts.list", start="yesterday")
    with pytest.raises(ConfigError, match="alerts\\[0\\].filter: expected a list of matchers"):
        provider(am.url, filter=["env=prod"])
    with pytest.raises(ConfigError, match="alerts\\[0\\].silenced: expected true or false"):
        provider(am.url, silenced="yes")
    with pytest.raises(ConfigError, match="alerts\\[0\\].url: required"):
        provider("")


def test_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SourceError) as err:
        provider(url).call("alerts.list")
    assert str(err.value).startswith(f"alertmanager {url}: cannot connect (ConnectError")
    assert "check alerts[0].url and that Alertmanager runs" in str(err.value)


def test_http_500() -> None:
    with CannedServer(500, b"internal error\n", "text/plain") as srv:
        with pytest.raises(SourceError, match=f"^alertmanager {srv.url}: HTTP 500: internal error$"):
            provider(srv.url).call("alerts.list")


def test_garbage_and_wrong_shapes() -> None:
    with CannedServer(200, b"<html>login</html>", "text/html") as srv:
        with pytest.raises(SourceError, match="is not JSON \\('<html>login</html>'\\); check that alerts\\[0\\].url"):
            provider(srv.url).call("alerts.list")
    with CannedServer(200, b'{"data": []}') as srv:
        with pytest.raises(SourceError, match="did not answer a list of alerts"):
            provider(srv.url).call("alerts.list")
        with pytest.raises(SourceError, match="/api/v2/status has no versionInfo"):
            provider(srv.url).check()


def test_slow_source_times_out() -> None:
    with CannedServer(200, b"[]", delay_s=2.0) as srv:
        started = time.monotonic()
        with pytest.raises(SourceError, match="timed out; raise timeout_s"):
            provider(srv.url, timeout_s=0.3).call("alerts.list")
        assert time.monotonic() - started < 1.9  # the stand-in answers after 2 s
