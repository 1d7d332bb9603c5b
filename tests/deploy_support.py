"""Shared helpers of the deploy tests: repository paths, the site's names, compose's interpolation and the
Prometheus tools they need."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

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


SITE_DIR = DEPLOY / "site"
SITE_ENV = SITE_DIR / "site.env"
#: ``${NAME}``, ``${NAME:?message}``, ``${NAME:-default}``: compose's interpolation, as deploy/ uses it.
_VARIABLE = re.compile(r"\$\{(\w+)(?::?[?-][^}]*)?\}")


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines, as compose, kustomize, systemd and ``sh`` read deploy/site/site.env."""
    pairs = (
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )
    return {name.strip(): value.strip() for name, value in pairs}


def site_names() -> dict[str, str]:
    """SITE_ID, LINE_ID and CAMERA_ID: the one place deploy/ names them."""
    return read_env_file(SITE_ENV)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """``value`` with every ``${NAME...}`` replaced as compose does; a name ``env`` lacks fails the test."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            assert match.group(1) in env, f"{match.group(0)} is not set in {SITE_ENV}"
            return env[match.group(1)]

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    return value
