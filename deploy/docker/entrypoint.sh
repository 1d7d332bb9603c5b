#!/bin/sh
# Entrypoint of the Sortline images: load file-based secrets into the environment, then run the command.
#
# SORTLINE_AMQP_URL_FILE=/run/secrets/x  ->  SORTLINE_AMQP_URL=<content of x>
# (Docker and Kubernetes secrets are files; the processes read SORTLINE_AMQP_URL / AMQP_URL.)
# The URL is exported only into the process it starts, never printed.
set -eu

if [ -n "${SORTLINE_AMQP_URL_FILE:-}" ]; then
    if [ ! -r "$SORTLINE_AMQP_URL_FILE" ]; then
        echo "sortline-entrypoint: SORTLINE_AMQP_URL_FILE=$SORTLINE_AMQP_URL_FILE is not readable" >&2
        exit 2
    fi
    SORTLINE_AMQP_URL=$(cat "$SORTLINE_AMQP_URL_FILE")
    export SORTLINE_AMQP_URL
    unset SORTLINE_AMQP_URL_FILE
fi

exec "$@"
