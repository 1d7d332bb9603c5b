#!/bin/sh
# Create the secret files compose.yaml mounts, once. Existing files are kept, so running it again is
# harmless; delete a file and re-run to rotate that credential (then restart the services using it).
#
# deploy/compose/secrets/ is git-ignored. The folder is private to its owner (0700); the files are
# world-readable (0644) only because Docker bind-mounts them with their host mode and the services
# run as non-root users; nobody else on the host can reach them through the 0700 folder.
set -eu

cd "$(dirname "$0")"
mkdir -p secrets
chmod 700 secrets

# 32 characters of [A-Za-z0-9]: 190 bits, and nothing to escape in JSON or in an amqp:// URL.
random_password() {
    LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32
}

write_once() { # name, content
    if [ ! -s "secrets/$1" ]; then
        printf '%s' "$2" >"secrets/$1"
        chmod 644 "secrets/$1"
        echo "make-secrets: created secrets/$1"
    fi
}

for user in admin site_a_camera site_a_worker site_a_monitor; do
    write_once "rabbitmq_${user}_password" "$(random_password)"
done
write_once grafana_admin_password "$(random_password)"

# Client URLs are derived from the password files, so they always agree with the broker.
# vhost "site-a" (no "/" in it, so no %2F escaping needed).
write_once site_a_camera_amqp_url \
    "amqp://site-a-camera:$(cat secrets/rabbitmq_site_a_camera_password)@rabbitmq:5672/site-a"
write_once site_a_worker_amqp_url \
    "amqp://site-a-worker:$(cat secrets/rabbitmq_site_a_worker_password)@rabbitmq:5672/site-a"
