#!/usr/bin/env bash
# Install what the tests need beyond Python packages, from Debian's packages:
#   promtool, prometheus        (package prometheus)       alert-rule and dashboard tests
#   chromium, chromedriver      (chromium, chromium-driver) page tests in a real browser
# and turn on the local RabbitMQ's Prometheus endpoint (plugin rabbitmq_prometheus, :15692), which the
# tests scrape for the frames the broker dead-letters itself.
#
# Idempotent and quick when everything is there (no apt calls at all then), so the Makefile runs it
# before every test run.
#
# The Debian prometheus package ships a systemd unit that may start a daemon on :9090. The tests never
# use it (they start their own prometheus on a free port with a temp data dir); on hosts without systemd
# (containers, CI runners) it never starts.
set -euo pipefail

# command -> the Debian package that provides it
declare -A PACKAGE_OF=(
    [promtool]=prometheus
    [prometheus]=prometheus
    [chromium]=chromium
    [chromedriver]=chromium-driver
)

enable_broker_metrics() {
    # Only a broker on this machine; a remote or containerised one is configured by whoever runs it.
    if command -v rabbitmq-plugins >/dev/null 2>&1; then
        rabbitmq-plugins enable --quiet rabbitmq_prometheus >/dev/null 2>&1 \
            || rabbitmq-plugins enable --offline --quiet rabbitmq_prometheus >/dev/null 2>&1 \
            || echo "install-test-tools: could not enable rabbitmq_prometheus on the local broker" >&2
    fi
}

missing_packages() {
    local command
    for command in "${!PACKAGE_OF[@]}"; do
        command -v "$command" >/dev/null 2>&1 || echo "${PACKAGE_OF[$command]}"
    done | sort -u
}

enable_broker_metrics
mapfile -t missing < <(missing_packages)
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-test-tools: promtool, prometheus, chromium and chromedriver already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-tools: apt-get not found; install ${missing[*]} (Prometheus from" \
        "https://prometheus.io/download/, Chromium and its driver from your system's packages)" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "install-test-tools: need root (or sudo) to run apt-get install ${missing[*]}" >&2
    exit 1
fi

echo "install-test-tools: installing the Debian packages ${missing[*]}"
# Do not let the packages' maintainer scripts ask questions (passed through `env` because sudo resets
# the environment).
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"

mapfile -t still < <(missing_packages)
if [ ${#still[@]} -gt 0 ]; then
    echo "install-test-tools: installed, yet still missing from PATH ($PATH): ${still[*]}" >&2
    exit 1
fi
echo "install-test-tools: done: $(prometheus --version 2>&1 | head -n 1); $(chromium --version 2>/dev/null)"
