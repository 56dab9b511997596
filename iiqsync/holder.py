"""Who runs an in-process sync, so that a later run can tell a live one from a dead one.

A run on the workers that dies is taken up again by Celery (its page tasks are
redelivered) or seen by its missing Redis marker (``broker``). An in-process
run (``iiqsync sync --local``) has neither: killed outright (``kill -9``, the
out-of-memory killer, a reboot, a scheduler's "stop task"), it leaves its run
``running`` and its entity locked until ``[Run] LockMinutes`` pass, and every
sync of the entity until then is skipped. So the run records the process that
holds it, and a later sweep on the same machine that finds that process gone
ends the run at once.

Only certain deaths count: a holder on another machine, or in another PID
namespace (another container), cannot be checked from here and is left to its
lock's expiry.
"""

from __future__ import annotations

import os
import socket

import psutil

# Two readings of one process's start time can differ by rounding.
SAME_START_SECONDS = 1.0


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux, or /proc not mounted
        return None


def this_process() -> dict:
    """The identity of the running process, as a run records it."""
    me = psutil.Process()
    identity = {"host": socket.gethostname(), "pid": me.pid, "since": round(me.create_time(), 2)}
    boot = _read("/proc/sys/kernel/random/boot_id")
    namespace = _pid_namespace()
    if boot:
        identity["boot"] = boot
    if namespace:
        identity["pidns"] = namespace
    return identity


def is_gone(holder: dict | None) -> bool:
    """True when ``holder`` (from ``this_process``) certainly no longer runs: it was on
    this machine, in this PID namespace, and either the machine has restarted since
    or no process with its pid and start time exists. False when it may still run."""
    if not isinstance(holder, dict) or holder.get("host") != socket.gethostname():
        return False
    if holder.get("pidns") != _pid_namespace():
        return False
    boot = _read("/proc/sys/kernel/random/boot_id")
    if boot and holder.get("boot") and holder["boot"] != boot:
        return True
    try:
        process = psutil.Process(int(holder["pid"]))
        started = process.create_time()
        if process.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped by its parent
            return True
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False
    # The pid was reused by a process that started later.
    return abs(started - float(holder.get("since", started))) > SAME_START_SECONDS


def describe(holder: dict) -> str:
    return f"pid {holder.get('pid')} on {holder.get('host')}"
