"""Shared helpers of the deploy tests: repository paths and the Prometheus tools they need."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
RULES = PROMETHEUS_DIR / "rules" / "sortline.rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "rules" / "sortline.rules.test.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"


def require_tool(name: str) -> str:
    """Path of a Prometheus tool; fails (never skips) with the way to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not on PATH: run scripts/install-test-tools.sh (installs prometheus and promtool)",
            pytrace=False,
        )
    return path
