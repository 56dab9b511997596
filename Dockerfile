# One image for every iiqsync process. The role is the first argument:
#   docker run IMAGE worker | beat | flower | sync [--wait] | iiqsync <subcommand> ...
# See worker/entrypoint.sh. Secrets (token, connection string, Flower password)
# come from the environment at run time and are never part of the image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid/gid so Kubernetes' runAsNonRoot/runAsUser can name it.
RUN groupadd --system --gid 10001 iiqsync \
 && useradd --system --uid 10001 --gid iiqsync --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin iiqsync

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
RUN pip install . \
 && chmod 0755 worker/*.sh beat/*.sh

# The code stays root-owned and read-only to the process; only /tmp is written
# (heartbeat file, beat schedule), so the root filesystem can be mounted read-only.
USER 10001:10001

# Workers serve Prometheus metrics here (IIQSYNC_METRICS_PORT); Flower listens on 5555.
EXPOSE 9808 5555

# Role-aware: the worker's heartbeat file, Flower's /healthcheck, otherwise healthy.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["/app/worker/healthcheck.sh"]

# Celery's warm shutdown on SIGTERM lets running page tasks finish; give a
# container at least 11 minutes (docker stop -t 660) since a page task may take 600 s.
STOPSIGNAL SIGTERM

ENTRYPOINT ["/app/worker/entrypoint.sh"]
CMD ["worker"]
