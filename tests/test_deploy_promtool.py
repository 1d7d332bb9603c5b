"""promtool accepts the Prometheus config and rules, and the rules pass their unit tests."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.deploy_support import PROMETHEUS_DIR, RULE_TESTS, RULES, require_tool


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_prometheus_config_is_valid() -> None:
    result = _promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_are_valid() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    result = _promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_is_labelled_annotated_and_documented() -> None:
    runbook = (PROMETHEUS_DIR.parent.parent / "docs" / "operations.md").read_text()
    alerts = _alerts()
    assert len(alerts) >= 8
    for alert in alerts:
        name = alert["alert"]
        assert alert["labels"]["severity"] in ("page", "ticket"), name
        annotations = alert["annotations"]
        assert {"summary", "description", "runbook"} <= annotations.keys(), name
        anchor = annotations["runbook"].split("#", 1)[1]
        assert anchor == name.lower(), name
        # The runbook section exists (a markdown heading whose GitHub anchor is the alert name).
        assert re.search(rf"^#+ .*\b{name}\b", runbook, re.MULTILINE), f"docs/operations.md lacks {name}"


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for group in tests:
        for case in group.get("alert_rule_test", []):
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    names = {alert["alert"] for alert in _alerts()}
    assert names - firing == set(), "alerts without a firing test"
    assert names - quiet == set(), "alerts without a not-firing test"
