#!/usr/bin/env bash
# Install the tools the deploy tests need: `promtool` and `prometheus` (Debian package "prometheus"),
# and turn on the local RabbitMQ's Prometheus endpoint (plugin rabbitmq_prometheus, :15692), which the
# tests scrape for the frames the broker dead-letters itself.
#
# Idempotent and quick when the tools are already on PATH (no apt calls at all in that case), so the
# Makefile can run it before every CI test run.
#
# The Debian package ships a systemd unit that may start a Prometheus daemon on :9090. The tests never
# use that daemon (they start their own `prometheus` on a free port with a temp data dir), so whether it
# runs or not does not matter; on hosts without systemd (containers, CI runners) it simply never starts.
set -euo pipefail

have_tools() {
    command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1
}

enable_broker_metrics() {
    # Only a broker on this machine; a remote or containerised one is configured by whoever runs it.
    if command -v rabbitmq-plugins >/dev/null 2>&1; then
        rabbitmq-plugins enable --quiet rabbitmq_prometheus >/dev/null 2>&1 \
            || rabbitmq-plugins enable --offline --quiet rabbitmq_prometheus >/dev/null 2>&1 \
            || echo "install-test-tools: could not enable rabbitmq_prometheus on the local broker" >&2
    fi
}

enable_broker_metrics
if have_tools; then
    echo "install-test-tools: promtool and prometheus already installed ($(command -v prometheus))"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-tools: apt-get not found; install Prometheus (prometheus + promtool binaries)" \
        "from https://prometheus.io/download/ and put them on PATH" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "install-test-tools: need root (or sudo) to run apt-get install prometheus" >&2
    exit 1
fi

echo "install-test-tools: installing the Debian package 'prometheus' (provides prometheus and promtool)"
# Do not let the package's maintainer scripts ask questions (passed through `env` because sudo resets
# the environment).
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus

if ! have_tools; then
    echo "install-test-tools: the prometheus package was installed but promtool/prometheus are not" \
        "on PATH ($PATH)" >&2
    exit 1
fi
echo "install-test-tools: done: $(prometheus --version 2>&1 | head -n 1)"
