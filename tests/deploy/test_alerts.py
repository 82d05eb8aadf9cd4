"""alerts/rules.yaml: promtool checks it and its unit tests pass; the unit tests can fail."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.deploy.tools import ALERTS, RULES, metric_catalogue, promtool

OPERATOR_GUIDE_ALERTS = {"HighInvestigationFailureRate", "LongInvestigation", "MCPServerDown", "HighTokenUsage",
                         "QueueBacklog"}
TEST_FILES = ("rules.test.yaml", "budgets.test.yaml")


def _alerts() -> dict[str, dict]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def test_promtool_check_rules_accepts_the_rules_file() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_operator_guide_alerts_and_budget_alerts_are_there_with_severity_and_text() -> None:
    alerts = _alerts()
    assert OPERATOR_GUIDE_ALERTS <= set(alerts)
    assert {a for a in alerts if "Budget" in a} >= {"InvestigationOverBudget", "DomainBudgetSpent", "GlobalBudgetSpent"}
    assert alerts["MCPServerDown"]["labels"]["severity"] == "critical"
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_keeps_it_quiet() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for name in TEST_FILES:
        for case in yaml.safe_load((ALERTS / name).read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(_alerts()) <= fired, set(_alerts()) - fired
    assert set(_alerts()) <= quiet, set(_alerts()) - quiet


def test_promtool_unit_tests_pass() -> None:
    for name in TEST_FILES:
        done = promtool("test", "rules", name, cwd=ALERTS)
        assert done.returncode == 0, f"{name}:\n{done.stdout}{done.stderr}"


def test_the_unit_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    # The same tests against rules whose failure-rate threshold is 90% instead of 30% must fail.
    shutil.copy(ALERTS / "rules.test.yaml", tmp_path / "rules.test.yaml")
    text = RULES.read_text(encoding="utf-8")
    assert ") > 0.3\n" in text
    (tmp_path / "rules.yaml").write_text(text.replace(") > 0.3\n", ") > 0.9\n"), encoding="utf-8")
    done = promtool("test", "rules", "rules.test.yaml", cwd=tmp_path)
    assert done.returncode != 0
    assert "HighInvestigationFailureRate" in done.stdout + done.stderr


def test_rules_use_only_documented_metrics() -> None:
    import re

    documented = set().union(*(m.series() for m in metric_catalogue().values()))
    exprs = " ".join(rule["expr"] for rule in _alerts().values())
    used = set(re.findall(r"\bpm_[a-z0-9_]+", exprs))
    assert used, "no pm_ metric found in the rules"
    assert used <= documented, used - documented
