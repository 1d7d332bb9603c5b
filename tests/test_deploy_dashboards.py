"""Every Grafana panel returns data from a real Prometheus scraping real processes and RabbitMQ.

A site is imported on the local broker from the shipped definitions (its own vhost and users); on
two of its lines a ``classifier-worker`` and a ``camera-agent`` run as the line's roles, with
``--topology check``, as deploy/ runs them. A throw-away ``prometheus`` scrapes them and the
broker's own endpoint (rabbitmq_prometheus) with the jobs of deploy/prometheus/prometheus.yml
(targets replaced, paths and parameters kept), with the recording rules loaded. Each panel's
expression is sent with ``$line`` as Grafana substitutes it for All, for both lines and for one,
and must return data; the panels that show the line working must show more than zero.

The traffic includes what the loss panels show: one frame the broker redelivers, one frame a
worker dead-letters, and an unreadable file each camera drops; line-1's worker tries a shadow
candidate, for the shadow panels.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from sortline.registry import CANDIDATE, CURRENT, ModelRegistry
from sortline.topology import frames_queue
from sortline_dev.processes import AgentProcess, WorkerProcess, free_port
from sortline_dev.publishing import frame_headers, publish_frames
from tests.deploy_support import DASHBOARDS, PROMETHEUS_DIR, RULES, require_tool
from tests.support.sites import Site, imported_site

pytestmark = pytest.mark.broker

LINES = ("line-1", "line-2")
#: ``$line`` as Grafana writes it into a ``=~`` matcher: All (the dashboards' allValue), a
#: multi-selection of both lines, one line (line-1 carries every kind of traffic).
LINE_SELECTIONS = {"all": ".+", "several": "(line-1|line-2)", "one": "line-1"}
GRAFANA_RANGES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}

# Panels that must show more than zero whenever a line runs: the heart of each dashboard.
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
    "Workers per model version",
    "Workers up",
    "Camera agents up",
    "Builds running",
    "Camera drops by reason",
    "Dead letters by reason",
    "Redelivered frames",
    "Shadow agreement with the line",
}


def _panel_targets() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                found.append((path.name, panel["title"], target["expr"]))
    return found


TARGETS = _panel_targets()


def _substitute(expr: str, line: str) -> str:
    for name, value in sorted({**GRAFANA_RANGES, "$line": line}.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    leftover = re.findall(r"\$\{?\w+", expr)
    assert not leftover, f"unknown Grafana variables {leftover} in {expr}"
    return expr


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        return _get_json(url)
    except urllib.error.HTTPError as error:  # 400 = the expression was refused
        return json.load(error)


def _values(base: str, expr: str) -> list[float]:
    return [float(sample["value"][1]) for sample in _query(base, expr)["data"]["result"]]


def _wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, ValueError, LookupError):  # not up yet, or the series not there yet
            pass
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _replay_folder(folder: Path, images: list[Path]) -> Path:
    """A few sample images and one unreadable file, which the camera drops as ``unreadable``."""
    folder.mkdir()
    for image in images[:5]:
        shutil.copy(image, folder / image.name)
    (folder / "zz-broken.jpg").write_bytes(b"not a jpeg")
    return folder


def _a_redelivery_and_a_dead_letter(site: Site, line: str) -> None:
    """While the line runs: a frame a second consumer takes and drops (so the broker redelivers
    it to the worker) and a frame no worker accepts (dead-lettered ``unsupported-content-type``)."""
    connection = site.connect("admin")
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    taken: list[int] = []
    channel.basic_consume(frames_queue(line), lambda _ch, method, *_: taken.append(method.delivery_tag))
    deadline = time.monotonic() + 30
    while not taken:
        assert time.monotonic() < deadline, f"no frame of {line} reached a second consumer"
        connection.process_data_events(time_limit=0.1)
    connection.close()  # unacked: back in the queue, marked redelivered
    publish_frames(site.url("admin"), line, [(b"plain text", frame_headers(line, 10**6), "text/plain")])


@pytest.fixture(scope="module")
def site(amqp_url: str) -> Iterator[Site]:
    with imported_site(amqp_url, LINES) as imported:
        yield imported


@pytest.fixture(scope="module")
def running_lines(
    site: Site, tiny_model_dir: Path, sample_images: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, list[str]]]:
    """A worker and a camera agent per line; the metrics targets of each job."""
    check = ("--topology", "check")
    targets: dict[str, list[str]] = {"sortline-worker": [], "sortline-camera-agent": []}
    # line-1 tries a candidate in shadow (the same weights published again: they agree)
    registry = ModelRegistry(tmp_path_factory.mktemp("registry") / "registry")
    registry.point(CURRENT, registry.publish(tiny_model_dir), "promote")
    registry.point(CANDIDATE, registry.publish(tiny_model_dir), "shadow")
    shadow = {LINES[0]: ("--shadow", "--shadow-share", "1.0")}
    with ExitStack() as stack:
        for line in LINES:
            model = registry.root if line in shadow else tiny_model_dir
            worker = WorkerProcess(site.url("worker", line), line, model, *check, *shadow.get(line, ()))
            stack.enter_context(worker).wait_ready()
            folder = _replay_folder(tmp_path_factory.mktemp(line) / "replay", sample_images)
            agent = AgentProcess(site.url("camera", line), line, folder, *check, "--loop", "--fps", "4")
            stack.enter_context(agent).wait_ready(ready_metric="sortline_build_info")
            targets["sortline-worker"].append(f"127.0.0.1:{worker.metrics_port}")
            targets["sortline-camera-agent"].append(f"127.0.0.1:{agent.metrics_port}")
        yield targets


def _scrape_configs(site: Site, targets: dict[str, list[str]], broker_host: str) -> list[dict]:
    """deploy/prometheus/prometheus.yml's jobs pointed at this test's processes and broker."""
    shipped = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())["scrape_configs"]
    configs = []
    for job in shipped:
        name = job["job_name"]
        if name == "prometheus":
            continue
        config = {k: copy.deepcopy(v) for k, v in job.items() if not k.endswith("_sd_configs")}
        if name.startswith("rabbitmq"):
            config["static_configs"] = [{"targets": [f"{broker_host}:15692"]}]
            if "params" in config:  # the shared broker has other vhosts: only this site's queues
                config["params"]["vhost"] = [site.name]
        else:
            config["static_configs"] = [{"targets": targets[name]}]
        configs.append(config)
    assert {c["job_name"] for c in configs} >= {"sortline-worker", "sortline-camera-agent", "rabbitmq"}
    return configs


@pytest.fixture(scope="module")
def prometheus(
    site: Site, running_lines: dict[str, list[str]], rabbitmq_metrics: object, tmp_path_factory
) -> Iterator[str]:
    binary = require_tool("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    shutil.copy(RULES, workdir / RULES.name)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [RULES.name],
        "scrape_configs": _scrape_configs(
            site, running_lines, urllib.parse.urlsplit(site.broker_url).hostname
        ),
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    command = [
        binary,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: urllib.request.urlopen(f"{base}/-/ready", timeout=2).status == 200, 30, "ready")
        # Counters must be scraped at 0 before they grow, or rate() sees no increase.
        _wait_for(lambda: len(_values(base, 'up{job="sortline-worker"} == 1')) == len(LINES), 30, "scrapes")
        _a_redelivery_and_a_dead_letter(site, LINES[0])
        _wait_for_key_panels(base, timeout=120)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _key_panels_without_data(base: str) -> list[str]:
    """Key panels still at zero or empty for All, and lines not yet decided."""
    missing = [
        title
        for _dashboard, title, expr in TARGETS
        if title in KEY_PANELS and not any(v > 0 for v in _values(base, _substitute(expr, ".+")))
    ]
    decided = _values(base, 'count by (line) (line:sortline_decisions:rate1m{line=~"line-1|line-2"} > 0)')
    return missing + ([] if len(decided) == len(LINES) else ["decisions of both lines"])


def _wait_for_key_panels(base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while missing := _key_panels_without_data(base):
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout:.0f} s these still show no data: {missing}")
        time.sleep(1)


def test_dashboards_have_targets() -> None:
    titles = {title for _, title, _ in TARGETS}
    assert len(TARGETS) >= 30
    assert titles >= KEY_PANELS, KEY_PANELS - titles


@pytest.mark.parametrize("selection", sorted(LINE_SELECTIONS))
@pytest.mark.parametrize(("dashboard", "title", "expr"), TARGETS, ids=[f"{d}:{t}" for d, t, _ in TARGETS])
def test_panel_returns_data(prometheus: str, dashboard: str, title: str, expr: str, selection: str) -> None:
    answer = _query(prometheus, _substitute(expr, LINE_SELECTIONS[selection]))
    assert answer["status"] == "success", f"{dashboard} / {title}: {answer.get('error')}"
    result = answer["data"]["result"]
    assert result, f"{dashboard} / {title} returned nothing for $line={selection}: {expr}"
    if title in KEY_PANELS:
        values = [float(sample["value"][1]) for sample in result]
        assert any(value > 0 for value in values), f"{dashboard} / {title}: all zero {values}"


def test_line_selection_filters(prometheus: str) -> None:
    """$line picks lines: one line shows one series, both two."""
    expr = next(e for _, t, e in TARGETS if t == "Decisions per second by line")
    one = _query(prometheus, _substitute(expr, LINE_SELECTIONS["one"]))["data"]["result"]
    several = _query(prometheus, _substitute(expr, LINE_SELECTIONS["several"]))["data"]["result"]
    assert {s["metric"]["line"] for s in one} == {"line-1"}
    assert {s["metric"]["line"] for s in several} == set(LINES)


def test_backlog_panel_shows_this_sites_queues(prometheus: str) -> None:
    expr = next(e for _, t, e in TARGETS if t == "Frames queue backlog (RabbitMQ)" and "consumers" in e)
    consumers = _query(prometheus, _substitute(expr, ".+"))["data"]["result"]
    assert {s["metric"]["queue"] for s in consumers} == {frames_queue(line) for line in LINES}
    assert all(float(s["value"][1]) >= 1 for s in consumers)  # each line's worker


def test_composition_share_sums_to_one(prometheus: str) -> None:
    for line in LINES:
        share = _values(prometheus, f'sum(line_bin:sortline_decisions:share5m{{line="{line}"}})')
        assert share == [pytest.approx(1.0)]


def test_rules_loaded_without_errors(prometheus: str) -> None:
    groups = _get_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
    assert {group["name"] for group in groups} == {"sortline.recording", "sortline.alerts"}
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] in ("ok", "unknown"), (rule["name"], rule.get("lastError"))


#: Alerts about outages: on a running site, with the real metrics' names and labels, none may
#: even be pending (a latency or drop alert may be, on a machine this busy, and is not checked).
OUTAGE_ALERTS = {
    "SortlineBrokerDown",
    "SortlineBrokerUnreachable",
    "SortlineCameraAgentDown",
    "SortlineWorkerDown",
    "SortlineLineSilent",
    "SortlineRabbitmqAlarm",
    "SortlineNoDecisions",
    "SortlineDecisionsUnroutable",
}


def test_no_outage_alert_is_pending_on_a_running_site(prometheus: str) -> None:
    rules = [r for g in _get_json(f"{prometheus}/api/v1/rules")["data"]["groups"] for r in g["rules"]]
    assert {r["name"] for r in rules if r["type"] == "alerting"} >= OUTAGE_ALERTS
    alerts = _get_json(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
    assert [a["labels"] for a in alerts if a["labels"]["alertname"] in OUTAGE_ALERTS] == []


def test_dashboards_use_line_variable_and_prometheus_datasource() -> None:
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["line"]["multi"] and variables["line"]["includeAll"]
        assert variables["line"]["allValue"] == LINE_SELECTIONS["all"]
        assert variables["datasource"]["query"] == "prometheus"
        assert dashboard["uid"] and dashboard["title"].startswith("Sortline — ")
        uses_line = [t for t in TARGETS if t[0] == path.name and "$line" in t[2]]
        assert uses_line, f"{path.name}: no panel filters by $line"


def test_dashboard_titles() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS.glob("*.json")}
    assert titles == {"Sortline — line throughput", "Sortline — composition"}


def test_dashboard_files_are_what_grafana_provisions() -> None:
    provider = yaml.safe_load((DASHBOARDS.parent / "provisioning/dashboards/sortline.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert Path(DASHBOARDS / "sortline-line-throughput.json").is_file()
