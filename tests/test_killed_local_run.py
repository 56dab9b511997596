"""An in-process sync killed outright (kill -9, the out-of-memory killer, a reboot)
leaves its run open and its entity locked; the next run on the same machine sees
its process is gone and frees the entity at once, instead of skipping every sync
until [Run] LockMinutes pass."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import sqlalchemy as sa

from iiqsync import holder, local

from .conftest import make_env, make_settings, run_cli, start_local_sync, wait_for_pages_staged


def kill_a_local_sync(env: dict, db_url: str) -> tuple[str, int]:
    """Start ``iiqsync sync assets --local``, SIGKILL it mid-run; (its run id, its pid)."""
    proc = start_local_sync(env)
    wait_for_pages_staged(db_url)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        [killed] = conn.exec_driver_sql("SELECT run_id FROM iiqsync_runs WHERE status = 'running'"
                                        ).scalars().all()
        assert [n for n in sa.inspect(conn).get_table_names() if n.startswith("iiqs_")]
    engine.dispose()
    return killed, proc.pid


def test_a_killed_local_sync_is_freed_by_the_next_one(sqlite_url, iiq, district):
    env = make_env(iiq.url, sqlite_url, IIQSYNC_GENERAL_PAGESIZE=10, IIQSYNC_GENERAL_THREADS=2)
    iiq.configure(latency_ms=150)
    killed, pid = kill_a_local_sync(env, sqlite_url)
    engine = sa.create_engine(sqlite_url)
    iiq.configure(latency_ms=0)
    [again] = local.sync(make_settings(iiq.url, sqlite_url), ["assets"])
    assert again["status"] == "succeeded", again
    with engine.connect() as conn:
        status, error = conn.exec_driver_sql(
            "SELECT status, error FROM iiqsync_runs WHERE run_id = ?", (killed,)).one()
        rows = conn.exec_driver_sql('SELECT COUNT(*) FROM "Assets"').scalar_one()
        leftovers = [n for n in sa.inspect(conn).get_table_names() if n.startswith("iiqs_")]
    engine.dispose()
    assert status == "failed"
    assert f"its process (pid {pid} on {socket.gethostname()}) ended" in error
    assert rows == district.count("assets") and leftovers == []


def test_only_a_process_certainly_gone_counts_as_gone():
    me = holder.this_process()
    assert not holder.is_gone(me)
    assert not holder.is_gone({**me, "host": "another-machine"})
    assert not holder.is_gone({**me, "pidns": "pid:[1]"})  # another container: unknowable
    assert not holder.is_gone(None) and not holder.is_gone({"host": me["host"]})
    # The same pid started at another time: the pid was reused.
    assert holder.is_gone({**me, "since": me["since"] - 3600})
    if "boot" in me:
        assert holder.is_gone({**me, "boot": "another-boot"})
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    assert holder.is_gone({**me, "pid": ended.pid})


def test_unlock_frees_an_entity_whose_run_died_out_of_sight(sqlite_url, iiq, district):
    """A run killed in another container cannot be seen to be dead from here: the
    next sync is skipped until its lock expires, or until iiqsync unlock frees it."""
    env = make_env(iiq.url, sqlite_url, IIQSYNC_GENERAL_PAGESIZE=10, IIQSYNC_GENERAL_THREADS=2)
    iiq.configure(latency_ms=150)
    killed, _ = kill_a_local_sync(env, sqlite_url)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE iiqsync_runs SET layout = replace(layout, ?, 'another-pod') "
                             "WHERE run_id = ?", (socket.gethostname(), killed))
    iiq.configure(latency_ms=0)
    skipped = run_cli(["sync", "assets", "--local", "--no-progress"], env)
    assert f"run {killed} of assets is still in progress" in skipped.stdout

    unlocked = run_cli(["unlock", "assets", "teams"], env)
    assert unlocked.returncode == 0, unlocked.stderr
    assert unlocked.stdout.splitlines() == [
        f"assets: run {killed} ended as failed; the entity is free", "teams: not locked"]
    done = run_cli(["sync", "assets", "--local", "--no-progress"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    with engine.connect() as conn:
        error = conn.exec_driver_sql("SELECT error FROM iiqsync_runs WHERE run_id = ?",
                                     (killed,)).scalar_one()
        rows = conn.exec_driver_sql('SELECT COUNT(*) FROM "Assets"').scalar_one()
    engine.dispose()
    assert error == "ended by hand (iiqsync unlock)"
    assert rows == district.count("assets")


def test_unlocking_a_live_run_ends_it_cleanly(sqlite_url, iiq, district):
    """`iiqsync unlock` on a run that is in fact alive: the run says it was ended from
    outside (no traceback about its vanished staging tables) and swaps nothing."""
    env = make_env(iiq.url, sqlite_url, IIQSYNC_GENERAL_PAGESIZE=10, IIQSYNC_GENERAL_THREADS=2)
    assert run_cli(["sync", "teams", "--local", "--no-progress"], env).returncode == 0
    iiq.configure(latency_ms=150)
    proc = start_local_sync(env)
    wait_for_pages_staged(sqlite_url)
    assert run_cli(["unlock", "assets"], env).returncode == 0
    out, err = proc.communicate(timeout=60)
    iiq.configure(latency_ms=0)
    assert proc.returncode == 1, out + err
    assert "ended from outside while it ran: ended by hand (iiqsync unlock)" in out
    assert "Traceback" not in err, err
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        assert not sa.inspect(conn).has_table("Assets")
        assert not [n for n in sa.inspect(conn).get_table_names() if n.startswith("iiqs_")]
    engine.dispose()
