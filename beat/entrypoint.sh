#!/bin/sh
# Starts the Celery beat scheduler. The schedule itself (which entity syncs when)
# is a table in the iiqsync package; this only runs it.
#
# Run exactly ONE beat for a broker: two would enqueue every sync twice (the per-entity
# lock keeps the second run from doing work, but it is noise). docker-compose runs one
# replica; in Kubernetes the beat Deployment has replicas: 1 and strategy Recreate, so
# the old pod is gone before the new one starts. Beat and the Kubernetes CronJob are
# alternatives: use one of them.
#
# The schedule file records when each entry last ran; it lives in /tmp because the
# image's code directory is read-only. Losing it (container restart) is harmless: beat
# works out the next run time from the crontab again.
set -eu

exec celery -A iiqsync beat \
    --loglevel="${CELERY_LOGLEVEL:-INFO}" \
    --schedule="${TMPDIR:-/tmp}/celerybeat-schedule" \
    "$@"
