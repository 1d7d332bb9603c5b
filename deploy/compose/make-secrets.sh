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
#
# The site and line the URLs name come from ../site/site.env (SITE_ID, LINE_ID), as everything in
# deploy/ does; the password files are named after the role, so they need no renaming per site.
set -eu

cd "$(dirname "$0")"
. ../site/site.env
for name in "$SITE_ID" "$LINE_ID"; do
    if ! printf '%s' "$name" | grep -Eq '^[A-Za-z0-9_-]{1,64}$'; then
        echo "make-secrets: '$name' in ../site/site.env is not 1-64 characters of [A-Za-z0-9_-]" >&2
        exit 1
    fi
done
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

# Client URLs are derived from the password files, so they always agree with the broker. The vhost
# is the site (no "/" in it, so no %2F escaping needed). role: its password file's, user: the broker
# user, file: the URL's.
url_for() { # role, user, secret file of the URL
    write_once "$3" "amqp://$2:$(cat "secrets/rabbitmq_$1_password")@rabbitmq:5672/$SITE_ID"
}
url_for camera "$SITE_ID-$LINE_ID-camera" camera_amqp_url
url_for worker "$SITE_ID-$LINE_ID-worker" worker_amqp_url
url_for trainer "$SITE_ID-trainer" trainer_amqp_url
