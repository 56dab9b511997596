"""A cap on the page requests one worker has waiting on IIQ: ``[Celery] RequestsInFlight``.

A page task spends most of its time waiting for IIQ, then parses and stages the page
on the CPU. While it does, its pool process asks IIQ for nothing. With the cap below
the pool size (``-c 10`` and 8, say), the spare processes keep 8 requests waiting on a
slow API while the others parse and stage, so the run takes about as long as IIQ
needs to answer, not that plus the parsing.

The permits are lock files in a directory the worker's main process makes before it
forks its pool. A task holds one with ``flock`` while its request is out. The kernel
releases a dead process's locks, so a worker killed mid-request frees its permit;
nothing has to notice or clean up.

When every permit is taken, waiters queue on one more lock file, the door, blocked
in the kernel at no CPU cost; only the one past the door looks for a free permit
every few milliseconds. (Every waiter looking at once took CPU from the processes
parsing pages, which is the work the spare processes are there to overlap.)
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar

log = logging.getLogger(__name__)

# How often the waiter past the door looks for a free permit again: short next to a
# request to IIQ (hundreds of ms), long enough that one waiter costs no CPU to speak of.
POLL_SECONDS = 0.002
DOOR = "door"

_directory: str | None = None
_size = 0
# flock locks belong to an open file: each thread (of a -P threads worker) opens the
# files itself, so that two threads of one process never share a permit.
_local = threading.local()
# Set by a page task around its page's read: the client's requests within take a
# permit while on the wire (``on_the_wire``). Other requests (drift probes, a few
# dozen items each, read alongside; plan's) do not count against the cap.
_counted: ContextVar[bool] = ContextVar("iiqsync_request_counted", default=False)


def setup(size: int) -> str | None:
    """Make ``size`` permits for this process and the processes it forks (a worker's
    main process, before its pool starts). 0 means no cap: ``held`` does nothing."""
    global _directory, _size
    teardown()
    if size <= 0:
        return None
    _directory = tempfile.mkdtemp(prefix="iiqsync-requests-")
    _size = size
    for name in [*map(str, range(size)), DOOR]:
        with open(os.path.join(_directory, name), "wb"):
            pass
    return _directory


def permits() -> int:
    """How many permits this process's worker has: its cap, or 0 for none."""
    return _size


def teardown() -> None:
    """Remove the permits (the worker is shutting down)."""
    global _directory, _size
    if _directory is not None:
        shutil.rmtree(_directory, ignore_errors=True)
    _directory, _size = None, 0
    _local.__dict__.clear()


def _files() -> tuple[list[int], int]:
    """This thread's open permit files and door."""
    fds = getattr(_local, "fds", None)
    if fds is None or _local.pid != os.getpid():
        # A file opened before a fork is the same open file in the child, whose lock
        # would be the parent's: open them anew in every process.
        fds = [os.open(os.path.join(_directory, str(i)), os.O_RDWR) for i in range(_size)]
        _local.door = os.open(os.path.join(_directory, DOOR), os.O_RDWR)
        _local.fds, _local.pid = fds, os.getpid()
    return fds, _local.door


def _take(fds: list[int]) -> int | None:
    # Each process starts at another permit, so they do not all try the same first.
    start = os.getpid() % len(fds)
    for fd in fds[start:] + fds[:start]:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            continue
    return None


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold a permit for the duration of the block: wait while ``[Celery]
    RequestsInFlight`` requests of this worker are out. Without a cap, return at once."""
    if _directory is None:
        yield
        return
    try:
        fds, door = _files()
    except OSError as exc:  # the worker is shutting down and took the permits away
        log.warning("request permits unavailable (%s): asking IIQ without one", exc)
        yield
        return
    fd = _take(fds)
    if fd is None:
        waited = time.monotonic()
        fcntl.flock(door, fcntl.LOCK_EX)  # one waiter at a time looks; the rest sleep
        try:
            fd = _take(fds)
            while fd is None:
                time.sleep(POLL_SECONDS)
                fd = _take(fds)
        finally:
            fcntl.flock(door, fcntl.LOCK_UN)
        log.debug("waited %.3f s for one of %d request permits", time.monotonic() - waited,
                  len(fds))
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def counted() -> Iterator[None]:
    """Within the block, requests the client sends in this context hold a permit
    while they are on the wire (see ``on_the_wire``)."""
    token = _counted.set(True)
    try:
        yield
    finally:
        _counted.reset(token)


@contextlib.contextmanager
def on_the_wire() -> Iterator[None]:
    """Around one request's exchange with IIQ, from sending it to the last byte of
    its answer: holds a permit inside ``counted``, nothing outside it. Decoding
    the answer happens after, so the permit passes to a waiting process at once."""
    if not _counted.get():
        yield
        return
    with held():
        yield


def cap_slots(pool_size: int, cap: int) -> int:
    """How many page tasks of a worker with ``pool_size`` processes can wait on IIQ at
    once: what pages are sized to fill whole rounds of (``pipeline.balanced_page_size``)."""
    return min(pool_size, cap) if cap > 0 else pool_size
