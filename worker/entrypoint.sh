#!/bin/sh
# Starts one iiqsync process; the image's ENTRYPOINT. The first argument is the role:
#
#   worker [celery worker options]  Celery worker. Concurrency is IIQSYNC_GENERAL_THREADS
#                                   (prefork processes) unless -c/--concurrency is given.
#                                   Touches the heartbeat file that healthcheck.sh and
#                                   `python -m iiqsync.health` read.
#   beat [celery beat options]      the scheduler; run exactly one (beat/entrypoint.sh)
#   flower [flower options]         monitoring UI on :5555; refuses to start without
#                                   FLOWER_BASIC_AUTH=user:password (or FLOWER_AUTH)
#   sync [ENTITY ...] [--wait]      one-shot: enqueue a sync on the broker and exit
#                                   (with --wait, exit when it has finished)
#   anything else                   run as given, e.g. `iiqsync fake-iiq ...`,
#                                   `iiqsync status --max-age 26`, `celery -A iiqsync inspect ping`
#
# Every role runs through `exec`, so the Celery process itself receives SIGTERM and
# does a warm shutdown: it stops taking tasks and lets running ones finish. Give it a
# grace period longer than the longest page task (600 s): docker stop -t 660,
# compose stop_grace_period: 11m, Kubernetes terminationGracePeriodSeconds: 660.
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
loglevel=${CELERY_LOGLEVEL:-INFO}

role=${1:-worker}
if [ "$#" -gt 0 ]; then
    shift
fi

# healthcheck.sh runs in a separate process and reads which role this container has.
printf '%s\n' "$role" > "${TMPDIR:-/tmp}/iiqsync-role" 2>/dev/null || true

case "$role" in
    worker)
        concurrency=
        for arg in "$@"; do
            case "$arg" in
                -c|-c*|--concurrency|--concurrency=*) concurrency=given ;;
            esac
        done
        if [ -z "$concurrency" ] && [ -n "${IIQSYNC_GENERAL_THREADS:-}" ]; then
            set -- --concurrency="$IIQSYNC_GENERAL_THREADS" "$@"
        fi
        exec celery -A iiqsync worker --loglevel="$loglevel" "$@"
        ;;
    beat)
        exec "$here/../beat/entrypoint.sh" "$@"
        ;;
    flower)
        if [ -z "${FLOWER_BASIC_AUTH:-}" ] && [ -z "${FLOWER_AUTH:-}" ]; then
            echo "entrypoint: refusing to start Flower without authentication:" \
                 "set FLOWER_BASIC_AUTH=user:password (from a secret)" >&2
            exit 64
        fi
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
