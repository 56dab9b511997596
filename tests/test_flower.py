"""Flower as an operator meets it: a real worker, a real ``celery -A iiqsync flower``
behind basic auth, a sync, and the tasks page loaded in headless Chromium. The
screenshot lands in test-output/flower-tasks.png."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode

import pytest

from .conftest import ROOT, TOKEN, make_env, run_cli

OUTPUT = ROOT / "test-output"
LOGIN = ("ops", "flower-pw-5d1e")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium; .ci/run installs it. Skipped only when .ci/run says it
    could not be installed on this machine."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    reason = os.environ.get("IIQSYNC_TEST_NO_CHROMIUM")
    if reason:
        pytest.skip(f"Chromium could not be installed here: {reason}")
    pytest.fail("Chromium is not installed: apt-get install chromium (.ci/run does this)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, auth: tuple[str, str] | None = None, timeout: float = 5):
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + b64encode(":".join(auth).encode()).decode())
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


@pytest.fixture
def flower(tmp_path, redis_url):
    """``celery -A iiqsync flower`` on a free loopback port, login from FLOWER_BASIC_AUTH.
    It gets the broker and nothing else: no token, no database."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IIQSYNC_", "FLOWER_"))}
    env.update({"IIQSYNC_CONFIG": os.devnull, "IIQSYNC_CELERY_BROKERURL": redis_url,
                "FLOWER_BASIC_AUTH": ":".join(LOGIN), "PYTHONUNBUFFERED": "1"})
    log = open(tmp_path / "flower.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "iiqsync", "flower", "--address=127.0.0.1",
         f"--port={port}"], cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"flower exited with {proc.returncode}: "
                        f"{(tmp_path / 'flower.log').read_text()[-2000:]}")
        try:
            if get(url + "/healthcheck")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("flower did not answer /healthcheck within 30 s")
        time.sleep(0.3)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    log.close()


def wait_for_worker(url: str, hostname_prefix: str, timeout: float = 20) -> None:
    """Until Flower has heard the worker's events (so it sees the tasks that follow)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = json.loads(get(url + "/workers?json=1", LOGIN)[1])["data"]
        if any(w.get("hostname", "").startswith(hostname_prefix) for w in data):
            return
        time.sleep(0.5)
    pytest.fail(f"Flower never heard from worker {hostname_prefix}")


def test_flower_shows_the_runs_tasks(chromium, tmp_path, pg_url, iiq, redis_url, worker_factory,
                                     flower):
    from playwright.sync_api import sync_playwright

    env = make_env(iiq.url, pg_url, IIQSYNC_CELERY_BROKERURL=redis_url,
                   IIQSYNC_GENERAL_PAGESIZE=10)
    worker = worker_factory(env, concurrency=2)  # no -E: the app turns task events on
    wait_for_worker(flower, worker.name.split("@")[0])

    # Without the login Flower shows nothing.
    with pytest.raises(urllib.error.HTTPError) as refused:
        get(flower + "/tasks")
    assert refused.value.code == 401

    done = run_cli(["sync", "rooms", "teams", "--wait", "--no-progress"], env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = dict(re.findall(r"enqueued (\w+): run ([0-9a-f]{32})", done.stdout))
    rooms = runs["rooms"]  # 25 rooms in pages of 10: plan stages page 0, then pages 1 and 2
    run = f"rooms run={rooms[:12]}…"  # how the tasks of this run show their arguments

    # Flower hears of the finalize task a moment after the run record says succeeded.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        tasks = json.loads(get(flower + "/api/tasks", LOGIN)[1])
        states = {(t["name"], t["args"]): t["state"] for t in tasks.values()}
        if states.get(("iiqsync.finalize", run)) == "SUCCESS":
            break
        time.sleep(0.5)
    # Readable arguments: entity, run id and page, and never the token.
    assert states[("iiqsync.plan", run)] == "SUCCESS", states
    assert states[("iiqsync.fetch_page", f"{run} page=0")] == "SUCCESS", states
    assert states[("iiqsync.fetch_page", f"{run} page=1")] == "SUCCESS", states
    assert states[("iiqsync.fetch_page", f"{run} page=2")] == "SUCCESS", states
    assert states[("iiqsync.finalize", run)] == "SUCCESS", states
    assert TOKEN not in json.dumps(tasks)

    OUTPUT.mkdir(exist_ok=True)
    shot = OUTPUT / "flower-tasks.png"
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=chromium, headless=True,
            args=CHROMIUM_FLAGS, http_credentials={"username": LOGIN[0], "password": LOGIN[1]},
            viewport={"width": 1600, "height": 900})
        try:
            page = context.new_page()
            page.goto(flower + "/tasks", wait_until="networkidle")
            try:
                # The table is filled from /tasks/datatable once the page has loaded.
                page.wait_for_selector(f"#tasks-table tbody tr:has-text('run={rooms[:12]}')",
                                       timeout=15000)
            finally:
                page.screenshot(path=str(shot), full_page=True)
            rows = page.locator("#tasks-table tbody tr").all_inner_texts()
            html = page.content()
            # An operator finds one run's tasks by typing its id into the search box.
            page.locator("input[type=search]").fill(rooms[:12])
            page.wait_for_function(
                "n => document.querySelectorAll('#tasks-table tbody tr').length === n", arg=5)
            found = page.locator("#tasks-table tbody tr").all_inner_texts()
            page.screenshot(path=str(OUTPUT / "flower-run-search.png"), full_page=True)
        finally:
            context.close()

    of_run = [r for r in rows if run in r]
    for name in ("iiqsync.plan", "iiqsync.fetch_page", "iiqsync.finalize"):
        assert any(name in r and "SUCCESS" in r for r in of_run), (name, rows)
    assert sum("iiqsync.fetch_page" in r for r in of_run) == 3, of_run
    assert all(run in r for r in found), found
    assert TOKEN not in html
    assert shot.stat().st_size > 10_000
