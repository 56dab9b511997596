#!/bin/sh
# The image's HEALTHCHECK. Knows which role the container runs (entrypoint.sh writes it
# for the long-running roles only) and checks what makes sense for it, without touching
# the broker:
#   worker  the heartbeat file is fresh (python -m iiqsync.health)
#   flower  Flower answers on /healthcheck
#   other   healthy while the process runs (beat, one-shot sync, simulator)
set -eu

role=$(cat "${TMPDIR:-/tmp}/iiqsync-role" 2>/dev/null || echo unknown)

case "$role" in
    worker)
        exec python -m iiqsync.health "$@"
        ;;
    flower)
        exec python -c '
import os, sys, urllib.request
url = "http://127.0.0.1:%s/healthcheck" % os.environ.get("FLOWER_PORT", "5555")
try:
    with urllib.request.urlopen(url, timeout=5) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:
    print("unhealthy: %s: %s" % (url, exc), file=sys.stderr)
    sys.exit(1)
'
        ;;
    *)
        exit 0
        ;;
esac
