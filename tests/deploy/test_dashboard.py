"""dashboards/production-master.json: a Grafana dashboard model whose every query parses and answers.

The model is checked with Grafana's own schema types (grafana-foundation-sdk, generated from Grafana
10.1's schema): decoding and re-encoding must keep every field, so an unknown or misspelt one fails.
Each PromQL expression is run by a real Prometheus (Debian's, on loopback) over a TSDB holding
synthetic series for exactly the metrics and labels of docs/metrics.md: a query that does not parse
is refused with 400, and one that names an undocumented metric or label value answers nothing.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.promrun import PrometheusProcess, Sample, prometheus_with
from tests.deploy.tools import DASHBOARD, Metric, checker, label_values, lost_fields, metric_catalogue, tool

# Grafana's variables, as the dashboard uses them, replaced the way Grafana would before sending a query.
GRAFANA_VARS = {"$__rate_interval": "5m", "$__range": "1h", "$domain": ".*"}
END = 1_780_000_000.0  # the synthetic series end here (epoch seconds); queries are evaluated at END
STEP = 60.0
POINTS = 70  # 70 minutes at 1-minute steps: enough for every [5m] and [1h] window
MAX_SERIES_PER_METRIC = 600


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables replaced) for every query target."""
    out = []
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            out.append((panel["title"], expr))
    return out


def test_the_dashboard_is_a_grafana_dashboard_model_that_loses_nothing_in_grafana_schema_types() -> None:
    plugins = checker("grafana_foundation_sdk.cog.plugins")
    cogruntime = checker("grafana_foundation_sdk.cog.runtime")
    JSONEncoder = checker("grafana_foundation_sdk.cog.encoder").JSONEncoder  # noqa: N806 - a class
    prometheus = checker("grafana_foundation_sdk.models.prometheus")
    Dashboard = checker("grafana_foundation_sdk.models.dashboard").Dashboard  # noqa: N806 - a class

    plugins.register_default_plugins()
    given = _dashboard()
    model = Dashboard.from_json(given)
    kept = json.loads(json.dumps(model, cls=JSONEncoder))
    assert lost_fields(given, kept) == []
    assert model.uid == "production-master" and model.title
    for panel in model.panels or []:
        if panel.type_val == "row":
            continue
        assert cogruntime.panelcfg_config(panel.type_val) is not None, f"unknown panel type {panel.type_val}"
        assert panel.targets, panel.title
        for target in panel.targets:
            assert isinstance(target, prometheus.Dataquery), f"{panel.title}: not a Prometheus query"


def test_panels_do_not_overlap_and_ids_are_unique() -> None:
    taken: set[tuple[int, int]] = set()
    ids: list[int] = []
    for panel in _dashboard()["panels"]:
        ids.append(panel["id"])
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(pos["y"] + dy, pos["x"] + dx) for dy in range(pos["h"]) for dx in range(pos["w"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
    assert len(ids) == len(set(ids))


def test_the_dashboard_covers_what_the_issue_lists() -> None:
    text = " ".join(expr for _title, expr in _exprs(_dashboard()))
    for needle in ("pm_investigation_total", "histogram_quantile(0.5,", "histogram_quantile(0.95,",
                   "histogram_quantile(0.99,", "sum by (verdict)", "pm_mcp_call_errors_total", "pm_agent_tokens_total",
                   "pm_llm_cost_dollars_total", "pm_queue_depth", "pm_webhook_deliveries_total"):
        assert needle in text, needle


def _used_series(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in re.findall(r"\bpm_[a-z0-9_]+", expr)}


def _used_labels(expr: str) -> set[str]:
    grouped = {lab.strip() for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr) for lab in group.split(",")}
    matched = set(re.findall(r"[{,]\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", expr))
    return {lab for lab in grouped | matched if lab}


def test_the_dashboard_and_the_rules_use_exactly_the_documented_metrics_and_labels() -> None:
    import yaml

    from tests.deploy.tools import RULES

    catalogue = metric_catalogue()
    known_labels = set(label_values())
    rules = [r["expr"] for g in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"] for r in g["rules"]]
    exprs = [expr for _title, expr in _exprs(_dashboard())] + rules
    documented = {series: m for m in catalogue.values() for series in m.series()}
    used = _used_series(exprs)
    assert used <= set(documented), f"not in docs/metrics.md: {sorted(used - set(documented))}"
    unused = {m.name for m in catalogue.values() if not m.series() & used}
    assert not unused, f"documented but used by neither the dashboard nor the rules: {sorted(unused)}"
    for expr in exprs:
        allowed = {lab for name in _used_series([expr]) for lab in documented[name].labels} | {"le"}
        assert _used_labels(expr) <= allowed, f"{expr}: labels {_used_labels(expr) - allowed} are not documented"
    for metric in catalogue.values():
        assert metric.type in ("counter", "gauge", "histogram"), metric
        assert set(metric.labels) <= known_labels, f"{metric.name}: a label without documented values"
        assert (metric.type == "counter") == metric.name.endswith("_total"), metric.name


def _label_sets(metric: Metric, values: dict[str, list[str]]) -> list[dict[str, str]]:
    """Every combination of the documented values (cycled instead when that would be too many)."""
    if not metric.labels:
        return [{}]
    pools = [values[lab] for lab in metric.labels]
    combos = 1
    for pool in pools:
        combos *= len(pool)
    if combos <= MAX_SERIES_PER_METRIC:
        return [dict(zip(metric.labels, combo, strict=True)) for combo in itertools.product(*pools)]
    width = max(len(pool) for pool in pools)
    return [{lab: pool[i % len(pool)] for lab, pool in zip(metric.labels, pools, strict=True)} for i in range(width)]


def _synthetic(catalogue: dict[str, Metric], values: dict[str, list[str]]) -> list[Sample]:
    """A rising counter, a steady gauge, or a histogram filling its buckets, per documented series."""
    samples: list[Sample] = []
    times = [END - STEP * (POINTS - 1 - i) for i in range(POINTS)]
    for metric in catalogue.values():
        for labels in _label_sets(metric, values):
            if metric.type == "gauge":
                samples += [(metric.name, labels, t, 0.5) for t in times]
            elif metric.type == "counter":
                samples += [(metric.name, labels, t, 2.0 * i) for i, t in enumerate(times)]
            else:
                bounds = [*(metric.buckets or ("1", "5", "10")), "+Inf"]
                for j, le in enumerate(bounds):
                    share = (j + 1) / len(bounds)
                    samples += [(f"{metric.name}_bucket", {**labels, "le": le}, t, 10.0 * i * share)
                                for i, t in enumerate(times)]
                samples += [(f"{metric.name}_count", labels, t, 10.0 * i) for i, t in enumerate(times)]
                samples += [(f"{metric.name}_sum", labels, t, 30.0 * i) for i, t in enumerate(times)]
    return samples


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusProcess]:
    tool("prometheus")
    tool("promtool")
    with prometheus_with(_synthetic(metric_catalogue(), label_values())) as prom:
        yield prom


def test_every_dashboard_query_parses_and_answers_from_the_documented_metrics(prometheus: PrometheusProcess) -> None:
    exprs = _exprs(_dashboard())
    assert len(exprs) >= 30
    with httpx.Client(base_url=prometheus.url, timeout=30) as client:
        for title, expr in exprs:
            reply = client.get("/api/v1/query", params={"query": expr, "time": END})
            body = reply.json()
            assert reply.status_code == 200, f"{title}: {expr}\n{body.get('error')}"
            assert body["data"]["result"], f"{title}: {expr} answered nothing from the documented series"


def test_a_query_with_a_typo_is_refused_and_an_undocumented_metric_answers_nothing(
        prometheus: PrometheusProcess) -> None:
    # The two checks above can fail: Prometheus's parser refuses bad PromQL, and unknown names are empty.
    with httpx.Client(base_url=prometheus.url, timeout=30) as client:
        bad = client.get("/api/v1/query", params={"query": "sum by (server (rate(pm_mcp_call_errors_total[5m]))"})
        assert bad.status_code == 400 and bad.json()["errorType"] == "bad_data"
        empty = client.get("/api/v1/query", params={"query": "sum(rate(pm_investigations_total[5m]))", "time": END})
        assert empty.status_code == 200 and empty.json()["data"]["result"] == []
