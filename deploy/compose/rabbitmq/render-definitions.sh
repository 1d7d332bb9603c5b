#!/bin/sh
# Entrypoint wrapper of the rabbitmq service: render the definitions file, then start RabbitMQ.
#
# definitions.template.json (python -m sortline.broker_definitions --template) holds the tokens
# "@@site@@" and "@@line@@", replaced by $SITE_ID and $LINE_ID (compose passes them from
# deploy/site/site.env), and "@@secret:NAME@@", each replaced by the content of the Docker secret
# /run/secrets/NAME. The result goes to /tmp/sortline (a tmpfs in compose.yaml), so passwords never
# land in an image layer, a volume or this repository.
#
# Passwords must be 16+ characters of [A-Za-z0-9._~-] (what deploy/compose/make-secrets.sh
# generates): such a password needs no escaping in JSON, in sed, or in an amqp:// URL.
set -eu

# Overridable so tests can render into a temp folder.
template=${SORTLINE_DEFINITIONS_TEMPLATE:-/etc/rabbitmq/sortline/definitions.template.json}
secrets_dir=${SORTLINE_SECRETS_DIR:-/run/secrets}
out_dir=${SORTLINE_DEFINITIONS_DIR:-/tmp/sortline}
out="$out_dir/definitions.json"

# Names go into permission patterns unescaped: letters, digits, '_' and '-' only.
for name in "${SITE_ID:?SITE_ID is not set (deploy/site/site.env)}" "${LINE_ID:?LINE_ID is not set}"; do
    if ! printf '%s' "$name" | grep -Eq '^[A-Za-z0-9_-]{1,64}$'; then
        echo "render-definitions: '$name' is not 1-64 characters of [A-Za-z0-9_-]" >&2
        exit 1
    fi
done

umask 077
mkdir -p "$out_dir"
sed -e "s|@@site@@|$SITE_ID|g" -e "s|@@line@@|$LINE_ID|g" "$template" >"$out.tmp"
for token in $(grep -o '@@secret:[A-Za-z0-9_]*@@' "$template" | sort -u); do
    name=${token#@@secret:}
    name=${name%@@}
    file="$secrets_dir/$name"
    if [ ! -r "$file" ]; then
        echo "render-definitions: secret $name is missing ($file); run deploy/compose/make-secrets.sh" >&2
        exit 1
    fi
    value=$(cat "$file")
    if ! printf '%s' "$value" | grep -Eq '^[A-Za-z0-9._~-]{16,}$'; then
        echo "render-definitions: secret $name must be 16+ characters of [A-Za-z0-9._~-]" >&2
        exit 1
    fi
    sed -i "s|$token|$value|g" "$out.tmp"
done
mv "$out.tmp" "$out"
# The official image starts as root and drops to the rabbitmq user: let that user read the file.
if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
    chown -R rabbitmq:rabbitmq "$out_dir"
fi
# Without a command (tests), render only.
if [ $# -gt 0 ]; then
    exec docker-entrypoint.sh "$@"
fi
