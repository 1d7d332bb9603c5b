"""Every Grafana panel query runs on a real Prometheus scraping the real metric classes.

The test serves a registry built from ``WorkerMetrics`` and ``AgentMetrics`` (the same classes the
processes use), lets a throw-away ``prometheus`` scrape it every second with the recording rules
loaded, and sends each panel's expression (Grafana variables substituted) to /api/v1/query.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from camera_agent.metrics import AgentMetrics
from classifier_worker.metrics import WorkerMetrics
from tests.deploy_support import DASHBOARDS, RULES, require_tool

BINS = ("organic", "cardboard", "glass", "metal", "paper", "plastic", "residual")
LINE = "line-1"

# Grafana's variables, as Grafana would substitute them for a dashboard showing the last hour.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$line": LINE,
}

# Panels that must show data whenever workers and cameras report: the heart of each dashboard.
KEY_PANELS = {
    "Decisions per second by line",
    "Decisions per second by bin",
    "Frames published vs received vs decided",
    "Decision latency (capture to decision)",
    "Inference batch size",
    "Share per bin over time",
    "Composition over the selected range",
    "Items per bin over the selected range",
    "Items sorted over the selected range",
    "Residual share (selected range)",
    "Workers per model version",
}


class _SortlineTraffic:
    """The real metric objects, advanced a little at every scrape as if a line were running."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.worker = WorkerMetrics(self.registry)
        self.agent = AgentMetrics(self.registry)
        self.worker.set_model("2024-06-01-test")
        self._lock = threading.Lock()

    def step(self) -> None:
        with self._lock:
            for index, bin_name in enumerate(BINS):
                self.worker.decisions.labels(line=LINE, bin=bin_name).inc(index + 1)
            self.worker.frames_received.labels(line=LINE).inc(28)
            self.worker.redelivered.labels(line=LINE).inc()
            self.worker.dead_letters.labels(reason="decode_error").inc()
            for latency in (0.008, 0.012, 0.02, 0.03, 0.06):
                self.worker.decision_latency.labels(line=LINE).observe(latency)
            self.worker.batch_size.observe(8)
            for stage, seconds in (("decode", 0.002), ("inference", 0.015), ("publish", 0.001)):
                self.worker.stage_seconds.labels(stage=stage).observe(seconds)
            self.agent.captured.labels(line=LINE, camera="cam-1").inc(30)
            self.agent.published.labels(line=LINE, camera="cam-1").inc(29)
            self.agent.dropped.labels(line=LINE, camera="cam-1", reason="queue_full").inc()
            self.agent.unconfirmed.labels(line=LINE, camera="cam-1").set(2)
            self.agent.encode_seconds.labels(line=LINE, camera="cam-1").observe(0.003)

    def exposition(self) -> bytes:
        with self._lock:
            return generate_latest(self.registry)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def metrics_endpoint() -> Iterator[str]:
    traffic = _SortlineTraffic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            traffic.step()
            body = traffic.exposition()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        return _get_json(url)
    except urllib.error.HTTPError as error:  # 400 = the expression was refused
        return json.load(error)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, ValueError, LookupError):  # not up yet, or the series not there yet
            pass
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def prometheus(metrics_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = require_tool("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    shutil.copy(RULES, workdir / RULES.name)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [RULES.name],
        # Job names as in deploy/prometheus/prometheus.yml.
        "scrape_configs": [
            {"job_name": "sortline-worker", "static_configs": [{"targets": [metrics_endpoint]}]}
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: urllib.request.urlopen(f"{base}/-/ready", timeout=2).status == 200, 15, "ready")
        # Four scrapes give rate() at least two samples everywhere; recorded series need one more cycle.
        _wait_for(
            lambda: (
                float(_query(base, "sum(sortline_decisions_total)")["data"]["result"][0]["value"][1])
                >= 4 * 28
                and _query(base, "line_bin:sortline_decisions:share5m")["data"]["result"]
            ),
            20,
            "four scrapes and the recording rules",
        )
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        if process.returncode not in (0, -15):
            print((workdir / "prometheus.log").read_text())


def _panel_targets() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                found.append((path.name, panel["title"], target["expr"]))
    return found


def _substitute(expr: str) -> str:
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    leftover = re.findall(r"\$\{?\w+", expr)
    assert not leftover, f"unknown Grafana variables {leftover} in {expr}"
    return expr


TARGETS = _panel_targets()


def test_dashboards_have_targets() -> None:
    titles = {title for _, title, _ in TARGETS}
    assert len(TARGETS) >= 20
    assert titles >= KEY_PANELS, KEY_PANELS - titles


@pytest.mark.parametrize(("dashboard", "title", "expr"), TARGETS, ids=[f"{d}:{t}" for d, t, _ in TARGETS])
def test_panel_query_runs(prometheus: str, dashboard: str, title: str, expr: str) -> None:
    answer = _query(prometheus, _substitute(expr))
    assert answer["status"] == "success", f"{dashboard} / {title}: {answer.get('error')}"
    result = answer["data"]["result"]
    if title in KEY_PANELS:
        assert result, f"{dashboard} / {title} returned nothing: {expr}"
        values = [float(sample["value"][1]) for sample in result]
        assert any(value > 0 for value in values), f"{dashboard} / {title}: all zero {values}"


def test_composition_share_sums_to_one(prometheus: str) -> None:
    share = _query(prometheus, f'sum(line_bin:sortline_decisions:share5m{{line="{LINE}"}})')
    assert float(share["data"]["result"][0]["value"][1]) == pytest.approx(1.0)
    bins = _query(prometheus, f'line_bin:sortline_decisions:share5m{{line="{LINE}"}}')["data"]["result"]
    assert {sample["metric"]["bin"] for sample in bins} == set(BINS)


def test_rules_loaded_without_errors(prometheus: str) -> None:
    groups = _get_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
    assert {group["name"] for group in groups} == {"sortline.recording", "sortline.alerts"}
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] in ("ok", "unknown"), (rule["name"], rule.get("lastError"))


def test_dashboards_use_line_variable_and_prometheus_datasource() -> None:
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert "line" in variables, path.name
        assert variables["datasource"]["query"] == "prometheus"
        assert dashboard["uid"] and dashboard["title"].startswith("Sortline — ")
        uses_line = [t for t in _panel_targets() if t[0] == path.name and "$line" in t[2]]
        assert uses_line, f"{path.name}: no panel filters by $line"


def test_dashboard_titles() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS.glob("*.json")}
    assert titles == {"Sortline — line throughput", "Sortline — composition"}


def test_dashboard_files_are_what_grafana_provisions() -> None:
    provider = yaml.safe_load((DASHBOARDS.parent / "provisioning/dashboards/sortline.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert Path(DASHBOARDS / "sortline-line-throughput.json").is_file()
