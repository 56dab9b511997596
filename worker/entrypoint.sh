#!/bin/sh
# Starts one iiqsync process; the image's ENTRYPOINT. The first argument is the role:
#
#   worker [celery worker options]  Celery worker. Concurrency is IIQSYNC_GENERAL_THREADS
#                                   (prefork processes; unset: 8, the default of
#                                   [General] Threads) unless -c/--concurrency is given.
#                                   Touches the heartbeat file that healthcheck.sh and
#                                   `python -m iiqsync.health` read.
#   beat [celery beat options]      the scheduler; run exactly one (beat/entrypoint.sh)
#   flower [flower options]         monitoring UI on :5555; refuses to start without a
#                                   login: FLOWER_BASIC_AUTH=user:password, or OAuth
#                                   (FLOWER_AUTH with FLOWER_AUTH_PROVIDER)
#   sync [ENTITY ...] [--wait]      one-shot: enqueue a sync on the broker and exit
#                                   (with --wait, exit when it has finished)
#   anything else                   run as given, e.g. `iiqsync fake-iiq ...`,
#                                   `iiqsync status --max-age 26`, `celery -A iiqsync inspect ping`
#
# Every role runs through `exec`, so the Celery process itself receives SIGTERM and
# does a warm shutdown: it stops taking tasks and lets running ones finish. Give it a
# grace period longer than the longest page task (600 s): docker stop -t 660,
# compose stop_grace_period: 11m, Kubernetes terminationGracePeriodSeconds: 660.
#
# CELERY_LOGLEVEL (default INFO) sets the log level of worker, beat and flower.
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
loglevel=${CELERY_LOGLEVEL:-INFO}

role=${1:-worker}
if [ "$#" -gt 0 ]; then
    shift
fi

# healthcheck.sh runs in a separate process and reads which role this container has.
# Only the long-running roles write it: a one-off command run through this script in
# a worker's container (`entrypoint.sh iiqsync --version`) must not change what the
# container's health check looks at.
set_role() {
    printf '%s\n' "$1" > "${TMPDIR:-/tmp}/iiqsync-role" 2>/dev/null || true
}

case "$role" in
    worker)
        set_role worker
        concurrency=
        for arg in "$@"; do
            case "$arg" in
                -c|-c*|--concurrency|--concurrency=*) concurrency=given ;;
            esac
        done
        # Unset, Celery would start one process per CPU; the images promise
        # [General] Threads, whose default is 8.
        if [ -z "$concurrency" ]; then
            set -- --concurrency="${IIQSYNC_GENERAL_THREADS:-8}" "$@"
        fi
        exec celery -A iiqsync worker --loglevel="$loglevel" "$@"
        ;;
    beat)
        set_role beat
        exec "$here/../beat/entrypoint.sh" "$@"
        ;;
    flower)
        if [ -z "${FLOWER_BASIC_AUTH:-}" ] && [ -z "${FLOWER_AUTH:-}" ]; then
            echo "entrypoint: refusing to start Flower without authentication:" \
                 "set FLOWER_BASIC_AUTH=user:password (from a secret)" >&2
            exit 64
        fi
        # FLOWER_AUTH (the e-mail addresses OAuth lets in) without a provider leaves
        # Flower with no login page (/login is 404): nobody could get in.
        provider=${FLOWER_AUTH_PROVIDER:-}
        for arg in "$@"; do
            case "$arg" in
                --auth_provider=?*|--auth-provider=?*) provider=given ;;
            esac
        done
        if [ -n "${FLOWER_AUTH:-}" ] && [ -z "$provider" ]; then
            echo "entrypoint: refusing to start Flower: FLOWER_AUTH is set but" \
                 "FLOWER_AUTH_PROVIDER is not, so nobody could log in (Flower's /login" \
                 "would be 404). Set FLOWER_AUTH_PROVIDER (e.g." \
                 "flower.views.auth.GoogleAuth2LoginHandler) with FLOWER_OAUTH2_KEY," \
                 "FLOWER_OAUTH2_SECRET and FLOWER_OAUTH2_REDIRECT_URI, or unset" \
                 "FLOWER_AUTH and use FLOWER_BASIC_AUTH=user:password" >&2
            exit 64
        fi
        set_role flower
        exec celery -A iiqsync flower --loglevel="$loglevel" "$@"
        ;;
    sync)
        exec iiqsync sync "$@"
        ;;
    -*)
        echo "entrypoint: unknown role '$role'; expected worker, beat, flower, sync" \
             "or a command to run" >&2
        exit 64
        ;;
    *)
        exec "$role" "$@"
        ;;
esac
