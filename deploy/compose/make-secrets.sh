#!/bin/sh
# Create the secret files compose.yaml mounts, once. Existing files are kept, so running it again is
# harmless; delete a file and re-run to rotate that credential (then restart the services using it).
#
# One password per broker user of rabbitmq/definitions.template.json (each token @@secret:NAME@@ in
# it names its file), plus the broker URLs the services read, built from those passwords.
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

for name in $(grep -o '@@secret:[A-Za-z0-9_]*@@' rabbitmq/definitions.template.json | sort -u); do
    name=${name#@@secret:}
    write_once "${name%@@}" "$(random_password)"
done
write_once grafana_admin_password "$(random_password)"

# Client URLs are derived from the password files, so they always agree with the broker.
# vhost "site-a" (no "/" in it, so no %2F escaping needed). user: the broker user, file: its URL's.
url_for() { # user, secret file of the URL
    password_file="secrets/rabbitmq_$(printf '%s' "$1" | tr '-' '_')_password"
    write_once "$2" "amqp://$1:$(cat "$password_file")@rabbitmq:5672/site-a"
}
url_for site-a-line-1-camera site_a_line_1_camera_amqp_url
url_for site-a-line-1-worker site_a_line_1_worker_amqp_url
url_for site-a-trainer site_a_trainer_amqp_url
