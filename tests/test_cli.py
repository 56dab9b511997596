"""The command line as a user meets it: the old tool's config.ini, the demo, status
as a monitoring check, and clear errors for bad settings."""

from __future__ import annotations

import importlib.metadata
import os
import pty
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from .conftest import ROOT, TOKEN, make_env, run_cli

FIXTURES = Path(__file__).parent / "fixtures"


def old_config(tmp_path, instance: str, db_url: str, token: str = TOKEN) -> Path:
    """The old tool's config.ini with only its values pointed at the simulator."""
    text = (FIXTURES / "old-tool-config.ini").read_text()
    text = text.replace("domain.incidentiq.com", instance)
    text = text.replace("MY_API_BEARER_TOKEN_HERE", token)
    text = text.replace("'postgresql://azurediamond:hunter2@localhost/mydatabase'", f"'{db_url}'")
    path = tmp_path / "config.ini"
    path.write_text(text)
    return path


def table_counts(db_url: str) -> dict[str, int]:
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        names = [n for n in sa.inspect(conn).get_table_names() if not n.startswith("iiqsync_")]
        counts = {n: conn.exec_driver_sql(f'SELECT COUNT(*) FROM "{n}"').scalar_one() for n in names}
    engine.dispose()
    return counts


def test_old_tool_config_runs_unchanged(tmp_path, iiq, district, sqlite_url):
    path = old_config(tmp_path, iiq.url, sqlite_url)
    done = run_cli(["sync", "--config", str(path), "--no-progress"], {}, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "running in-process" in done.stderr  # no broker in the old file
    counts = table_counts(sqlite_url)
    assert counts == {
        "Users": district.count("users"), "UserCustomFields": district.count("users"),
        "Assets": district.count("assets"), "AssetCustomFields": district.count("assets"),
        "Locations": district.count("locations"), "Rooms": district.count("rooms"),
        "Teams": district.count("teams"), "Tickets": district.count("tickets"),
        "TicketCustomFields": district.count("tickets"),
    }
    assert TOKEN not in done.stdout + done.stderr


def test_demo_fills_nine_tables(tmp_path):
    db = tmp_path / "demo.db"
    done = run_cli(["demo", "--db", str(db), "--users", "60", "--assets", "90", "--tickets", "70",
                    "--no-progress"], {}, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    counts = table_counts(f"sqlite:///{db}")
    assert len(counts) == 9 and all(n > 0 for n in counts.values()), counts
    assert counts["Assets"] == 90 and counts["Users"] == 60 and counts["Tickets"] == 70
    for name in counts:
        assert name in done.stdout


def test_status_is_a_monitoring_check(tmp_path, iiq, sqlite_url):
    env = make_env(iiq.url, sqlite_url)
    assert run_cli(["sync", "teams", "rooms", "--local", "--no-progress"], env).returncode == 0
    ok = run_cli(["status", "--max-age", "1"], env)
    assert ok.returncode == 1, "entities never synced are stale"
    assert "STALE" in ok.stderr and "users" in ok.stderr and "teams" not in ok.stderr
    assert run_cli(["sync", "--local", "--no-progress"], env).returncode == 0
    fresh = run_cli(["status", "--max-age", "1"], env)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.count("succeeded") == 6
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:  # pretend the last success of teams was two days ago
        conn.exec_driver_sql("UPDATE iiqsync_runs SET finished = datetime(finished, '-2 days') "
                             "WHERE entity = 'teams'")
    engine.dispose()
    stale = run_cli(["status", "--max-age", "24"], env)
    assert stale.returncode == 1 and "teams" in stale.stderr
    # Each entity's row says how long ago it last succeeded, and which are stale.
    lines = {line.split()[0]: line for line in stale.stdout.splitlines()[1:]}
    assert lines["teams"].rstrip().endswith("2.0d ago STALE"), lines["teams"]
    assert lines["rooms"].rstrip().endswith("m ago"), lines["rooms"]


def test_wrong_token_stops_at_once_without_printing_it(tmp_path, iiq, sqlite_url):
    secret = "wrong-token-3b9c1e"
    env = make_env(iiq.url, sqlite_url, IIQSYNC_INCIDENTIQ_TOKEN=secret)
    done = run_cli(["sync", "--local", "--no-progress"], env, timeout=60)
    assert done.returncode == 1
    assert "refused the token" in done.stdout
    assert secret not in done.stdout + done.stderr
    assert iiq.count("401") <= 2, "a refused token must not be retried"


def test_config_errors_name_every_key(tmp_path):
    env = {"IIQSYNC_GENERAL_PAGESIZE": "5000", "IIQSYNC_GENERAL_THREADS": "-1",
           "IIQSYNC_DATABASE_CONNECTIONSTRING": "not a url"}
    done = run_cli(["sync", "--local"], env)
    assert done.returncode == 2
    for key in ("[General] PageSize", "[General] Threads", "[Database] ConnectionString",
                "[IncidentIQ] Instance", "[IncidentIQ] Token"):
        assert key in done.stderr or key.split()[-1] in done.stderr, (key, done.stderr)
    assert "Traceback" not in done.stderr


def test_unreachable_instance_and_database_are_clear(tmp_path, sqlite_url):
    env = make_env("http://127.0.0.1:9", sqlite_url, IIQSYNC_INCIDENTIQ_MAXRETRIES=1)
    done = run_cli(["sync", "teams", "rooms", "--local", "--no-progress"], env, timeout=60)
    assert done.returncode == 1
    assert "cannot reach IIQ at http://127.0.0.1:9: connection refused" in done.stdout
    assert done.stdout.count("[IncidentIQ] Instance") == 1, "said once, not per entity"
    assert "rooms  not run    not attempted: IIQ does not answer at that Instance" in done.stdout
    env = make_env("http://127.0.0.1:9", "postgresql+psycopg2://nobody:hunter2@127.0.0.1:1/none")
    done = run_cli(["sync", "teams", "--local", "--no-progress"], env, timeout=60)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "127.0.0.1:1" in done.stdout + done.stderr
    assert "[Database] ConnectionString" in done.stdout + done.stderr
    assert "hunter2" not in done.stdout + done.stderr


def test_connection_string_naming_a_driver_that_is_not_installed(tmp_path, iiq):
    env = make_env(iiq.url, "mssql+pyodbc://sa:hunter2@db/iiq?driver=nothing")
    done = run_cli(["sync", "teams", "--local", "--no-progress"], env, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "[Database] ConnectionString" in done.stderr
    assert "Traceback" not in done.stderr and "hunter2" not in done.stdout + done.stderr
    assert iiq.count("requests") == 0


def test_help_explains_commands():
    done = run_cli(["--help"], {})
    assert done.returncode == 0
    for command in ("sync", "demo", "fake-iiq", "status", "sweep", "unlock", "config"):
        assert command in done.stdout
    done = run_cli(["sync", "--help"], {})
    assert "--local" in done.stdout and "IIQSYNC_" in done.stdout


def test_sync_through_a_broker_with_no_worker_says_so(sqlite_url, redis_url, iiq):
    """The run waits in the queue; the command says no worker answered, and --wait
    ends at its timeout with the run still waiting."""
    env = make_env(iiq.url, sqlite_url, IIQSYNC_CELERY_BROKERURL=redis_url)
    done = run_cli(["sync", "teams", "--wait", "--timeout", "3", "--no-progress"], env,
                   timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "enqueued teams" in done.stdout
    assert "no worker answered" in done.stderr
    assert "not started after 3s: no worker has taken it" in done.stdout


def test_status_shows_runs_waiting_for_a_worker(sqlite_url, redis_url, iiq, worker_factory):
    """A sync sent while no worker runs has no run in the database yet: status names
    the entities waiting in the broker's queue, and the queue empties once a worker
    takes them."""
    env = make_env(iiq.url, sqlite_url, IIQSYNC_CELERY_BROKERURL=redis_url)
    assert run_cli(["sync", "teams", "rooms"], env, timeout=120).returncode == 0
    waiting = run_cli(["status"], env)
    assert waiting.returncode == 0, waiting.stderr
    rows = {line.split()[0]: line.split()[1] for line in waiting.stdout.splitlines()[1:7]}
    assert rows == {"users": "-", "assets": "-", "locations": "-", "rooms": "queued",
                    "teams": "queued", "tickets": "-"}
    assert (f"queue on {redis_url}: 2 waiting for a worker (runs not started yet: teams, rooms)"
            in waiting.stdout)

    worker_factory(env)
    done = run_cli(["sync", "teams", "--wait", "--no-progress"], env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    after = run_cli(["status"], env)
    assert f"queue on {redis_url}: empty" in after.stdout
    assert "queued" not in after.stdout
    assert {line.split()[0] for line in after.stdout.splitlines() if " succeeded " in line} \
        >= {"teams", "rooms"}


def test_status_says_when_the_queue_cannot_be_read(sqlite_url, iiq):
    env = make_env(iiq.url, sqlite_url, IIQSYNC_CELERY_BROKERURL=f"redis://127.0.0.1:{free_port()}/0")
    assert run_cli(["sync", "teams", "--local", "--no-progress"], env).returncode == 0
    done = run_cli(["status"], env)
    assert done.returncode == 0, done.stderr
    assert "cannot be read (ConnectionError)" in done.stdout


def test_demo_refuses_a_negative_count_and_a_page_size_iiq_cannot_serve(tmp_path):
    for args, said in ((["--users", "-5"], "argument --users: -5 is below 0"),
                       (["--page-size", "5000"], "argument --page-size: 5000 is not between 1 and 1000")):
        done = run_cli(["demo", "--db", str(tmp_path / "d.db"), *args], {}, timeout=60)
        assert done.returncode == 2
        assert said in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "d.db").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("where", ["unknown-name", "nothing-listens"])
def test_an_instance_that_cannot_be_reached_is_said_within_seconds(where, sqlite_url):
    """A wrong [IncidentIQ] Instance is not an IIQ outage: the first request of the
    run fails within seconds (with the default MaxRetries), with one message naming
    the setting and the URL tried, and no retry warnings."""
    if where == "unknown-name":
        instance, said = "iiq.invalid", "cannot reach IIQ at https://iiq.invalid: "
    else:
        port = free_port()
        instance = f"http://127.0.0.1:{port}"
        said = (f"cannot reach IIQ at {instance}: connection refused (nothing listens on port "
                f"{port}) — check [IncidentIQ] Instance")
    env = make_env(instance, sqlite_url)
    del env["IIQSYNC_GENERAL_TIMEOUT"]  # the defaults a new user has
    started = time.monotonic()
    done = run_cli(["sync", "--local", "--no-progress"], env, timeout=120)
    took = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert took < 10, f"{took:.1f}s to say the instance cannot be reached"
    assert said in done.stdout, output
    if where == "unknown-name":
        assert "resolve" in done.stdout and "— check [IncidentIQ] Instance" in done.stdout
    assert "retry" not in output, "no retry warnings"
    assert output.count("[IncidentIQ] Instance") == 1, output
    lines = done.stdout.splitlines()
    assert lines[0].startswith("users") and "failed" in lines[0]
    assert all("not attempted: IIQ does not answer at that Instance" in line for line in lines[1:]), output
    assert len(lines) == 6
    assert TOKEN not in output and "Traceback" not in output


def test_in_memory_sqlite_is_a_configuration_error(iiq):
    """sqlite:// would give each connection its own empty database ("no such table"):
    a configuration problem naming the key, before anything is read or written."""
    for url in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):
        for args in (["sync", "teams", "--local", "--no-progress"], ["status"], ["sweep"]):
            done = run_cli(args, make_env(iiq.url, url), timeout=60)
            assert done.returncode == 2, (url, args, done.stdout + done.stderr)
            assert f"[Database] ConnectionString {url} is an in-memory SQLite database" \
                in done.stderr, done.stderr
            assert "e.g. sqlite:///iiqsync.db" in done.stderr
            assert "no such table" not in done.stderr and "Traceback" not in done.stderr
    assert iiq.count("requests") == 0


def failed_run_error(db_url: str, entity: str) -> str:
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        error = conn.exec_driver_sql("SELECT error FROM iiqsync_runs WHERE entity = ? "
                                     "AND status = 'failed'", (entity,)).scalar_one()
    engine.dispose()
    return error


def words(text: str) -> str:
    return " ".join(text.split())


def test_status_shows_the_whole_error(sqlite_url):
    """The reason a run failed is shown whole: piped, on one line each under the table
    (grep finds it); in a terminal, wrapped to its width."""
    port = free_port()
    env = make_env(f"http://127.0.0.1:{port}", sqlite_url)
    assert run_cli(["sync", "teams", "--local", "--no-progress"], env, timeout=60).returncode == 1
    error = failed_run_error(sqlite_url, "teams")
    assert len(error) > 100 and error.endswith("check [IncidentIQ] Instance"), error

    piped = run_cli(["status"], {**env, "COLUMNS": "100"})
    assert piped.returncode == 0, piped.stderr
    assert f"    {error}\n" in piped.stdout, piped.stdout
    rows = {line.split()[0]: line for line in piped.stdout.splitlines()[1:7]}
    assert rows["teams"].split()[1] == "failed" and "InstanceUnreachableError" in rows["teams"]

    width = 72
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "iiqsync", "status"], stdout=child,
                            stderr=subprocess.PIPE, cwd=str(ROOT),
                            env={**os.environ, "IIQSYNC_CONFIG": os.devnull, **env,
                                 "COLUMNS": str(width)})
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert proc.wait(30) == 0
    shown = b"".join(chunks).decode().replace("\r\n", "\n")
    block = shown.split("\nerrors:\n", 1)[1].splitlines()
    assert block[0].startswith("  teams: failed run ")
    text = block[1:]
    assert len(text) > 1 and all(len(line) <= width and line.startswith("    ")
                                 for line in text), text
    assert words(" ".join(text)) == words(error)


def test_config_goes_before_or_after_the_command(tmp_path):
    first, second = tmp_path / "first.ini", tmp_path / "second.ini"
    for path, size in ((first, 111), (second, 222)):
        path.write_text(f"[IncidentIQ]\nInstance: iiq.example.org\nToken: t\n"
                        f"[General]\nPageSize: {size}\n")
    for args, used in ((["--config", str(first), "config"], first),
                       (["config", "--config", str(second)], second),
                       (["--config", str(first), "config", "--config", str(second)], second),
                       (["-v", "--config", str(second), "config"], second)):
        done = run_cli(args, {})
        assert done.returncode == 0, (args, done.stdout + done.stderr)
        assert done.stdout.startswith(f"# from {used}\n"), (args, done.stdout)
        size = 111 if used == first else 222
        assert f"[General] PageSize = {size}\n" in done.stdout, (args, done.stdout)
    missing = run_cli(["--config", str(tmp_path / "none.ini"), "status"], {})
    assert missing.returncode == 2 and "none.ini does not exist" in missing.stderr
    helped = run_cli(["--help"], {})
    assert "--config FILE" in helped.stdout and "iiqsync --config FILE sync" in helped.stdout
    assert "before the command" in run_cli(["sync", "--help"], {}).stdout


def test_version_is_the_package_version():
    done = run_cli(["--version"], {})
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"iiqsync {importlib.metadata.version('iiqsync')}\n"
    from iiqsync.cli import _source_version

    # Where the package is not installed, the version comes from pyproject.toml.
    assert _source_version() == importlib.metadata.version("iiqsync")


def test_sync_without_wait_leaves_no_result_subscription(sqlite_url, redis_url, iiq):
    """Sending a task subscribes to its result; the command unsubscribes at once
    instead of leaving it to AsyncResult.__del__, which could run at interpreter
    shutdown and print an ignored exception. Checked while the command waits for a
    worker to answer its ping (none does)."""
    import redis

    env = {**os.environ, "IIQSYNC_CONFIG": os.devnull, "PYTHONUNBUFFERED": "1",
           **make_env(iiq.url, sqlite_url, IIQSYNC_CELERY_BROKERURL=redis_url)}
    proc = subprocess.Popen([sys.executable, "-m", "iiqsync", "sync", "teams"], env=env,
                            cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    client = redis.Redis.from_url(redis_url)
    try:
        line = proc.stdout.readline()
        assert line.startswith("enqueued teams: run "), line
        channel = f"celery-task-meta-{uuid.UUID(line.split()[-1])}"
        time.sleep(0.2)
        subscribers = dict(client.pubsub_numsub(channel))[channel.encode()]
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        client.close()
    assert proc.returncode == 0, err
    assert subscribers == 0, "the sent task's result is still subscribed to"
    assert "Exception ignored" not in err and "Traceback" not in err, err


def test_fake_iiq_after_the_global_options():
    """`iiqsync -v fake-iiq …` and `iiqsync --config FILE fake-iiq …` reach the
    simulator's own parser instead of failing with 'unrecognized arguments'."""
    for before in (["-v"], ["--config", os.devnull], ["-vv", "--config", os.devnull]):
        done = run_cli([*before, "fake-iiq", "--help"], {}, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "--latency-ms" in done.stdout, done.stdout


def test_interrupting_a_waiting_sync_says_the_runs_go_on(sqlite_url, redis_url, iiq):
    """SIGTERM while `sync --wait` waits on the broker (no worker answers): the runs
    were handed to the workers, so the command must not claim it recorded them as
    failed, as an in-process sync does."""
    import signal

    env = {**os.environ, "IIQSYNC_CONFIG": os.devnull, "PYTHONUNBUFFERED": "1",
           **make_env(iiq.url, sqlite_url, IIQSYNC_CELERY_BROKERURL=redis_url)}
    proc = subprocess.Popen([sys.executable, "-m", "iiqsync", "sync", "teams", "--wait",
                             "--no-progress"], env=env, cwd=str(ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("enqueued teams: run "), line
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "the runs sent to the workers go on" in err, err
    assert "recorded as failed" not in err, err


def test_sync_with_config_uses_that_files_broker(tmp_path, sqlite_url, redis_url, iiq):
    """`iiqsync --config FILE sync` queues its runs on FILE's [Celery] BrokerUrl (the
    Celery app is built from the settings on import), not on another Redis database."""
    import redis

    ini = tmp_path / "cel.ini"
    ini.write_text(f"[IncidentIQ]\nInstance: {iiq.url}\nToken: {TOKEN}\n"
                   f"[Database]\nConnectionString: {sqlite_url}\n"
                   f"[Celery]\nBrokerUrl: {redis_url}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IIQSYNC_")}
    done = subprocess.run([sys.executable, "-m", "iiqsync", "--config", str(ini), "sync", "teams"],
                          env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.llen("celery") == 1, "the run was not queued on the configured broker"
    finally:
        client.close()


def test_a_database_refusal_is_told_in_one_line(pg_url, iiq):
    """The database's own message, not pages of traceback and SQL; the final table
    keeps its rows."""
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql('CREATE TABLE "Teams" ("TeamId" uuid PRIMARY KEY, "TeamName" text '
                             'CONSTRAINT short_names CHECK (length("TeamName") < 3))')
        conn.exec_driver_sql('INSERT INTO "Teams" VALUES (\'00000000-0000-0000-0000-00000000000a\', \'ok\')')
    done = run_cli(["sync", "teams", "--local", "--no-progress"], make_env(iiq.url, pg_url))
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert 'violates check constraint "short_names"' in done.stdout
    assert "Traceback" not in out and "[SQL:" not in out, out
    with engine.connect() as conn:
        assert conn.exec_driver_sql('SELECT "TeamName" FROM "Teams"').scalars().all() == ["ok"]
    engine.dispose()


def test_status_does_not_create_a_missing_sqlite_file(tmp_path):
    """Run where no config.ini is, status would read (and make) an empty iiqsync.db;
    it says the file is missing instead, and fails as a monitoring check."""
    plain = run_cli(["status"], {}, cwd=tmp_path)
    assert plain.returncode == 0
    assert f"no runs yet: the SQLite file {tmp_path / 'iiqsync.db'} does not exist" in plain.stderr
    assert run_cli(["status", "--max-age", "26"], {}, cwd=tmp_path).returncode == 1
    for command in (["sweep"], ["unlock", "all"]):
        assert run_cli(command, {}, cwd=tmp_path).returncode == 0
    assert not (tmp_path / "iiqsync.db").exists()


def test_a_second_waiting_sync_follows_the_run_in_progress(sqlite_url, redis_url, iiq,
                                                           worker_factory):
    """A retried job (or a second trigger) finds the entity busy with an earlier run:
    --wait follows that run and reports its outcome, rather than 'skipped' at once."""
    env = make_env(iiq.url, sqlite_url, IIQSYNC_CELERY_BROKERURL=redis_url,
                   IIQSYNC_GENERAL_PAGESIZE="10")
    worker_factory(env, concurrency=2)
    iiq.configure(latency_ms=400)
    first = subprocess.Popen([sys.executable, "-m", "iiqsync", "sync", "assets", "--wait",
                              "--no-progress"], cwd=str(ROOT), text=True,
                             env={**os.environ, "IIQSYNC_CONFIG": os.devnull, **env},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    engine = sa.create_engine(sqlite_url)
    deadline = time.monotonic() + 60
    running = None
    while running is None and time.monotonic() < deadline:
        time.sleep(0.3)
        with engine.connect() as conn:
            if sa.inspect(conn).has_table("iiqsync_runs"):
                running = conn.exec_driver_sql("SELECT run_id FROM iiqsync_runs "
                                               "WHERE status = 'running'").scalar()
    assert running, "the first run never started"
    second = run_cli(["sync", "assets", "--wait", "--no-progress"], env, timeout=180)
    first.communicate(timeout=180)
    iiq.configure(latency_ms=0)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"assets: run {running}, started earlier, is in progress; waiting for it" in second.stderr
    assert second.stdout.splitlines()[-1].split()[:3] == ["assets", "succeeded", "230"], second.stdout
    with engine.connect() as conn:
        statuses = sorted(conn.exec_driver_sql("SELECT status FROM iiqsync_runs").scalars())
    engine.dispose()
    assert statuses == ["skipped", "succeeded"]


def test_config_checks_the_database_and_names_every_problem_at_once(pg_url, tmp_path):
    """`iiqsync config` says whether a sync could start: the driver loads, the database
    answers; and a setting that stops the listing still comes with all the others."""
    iiq = {"IIQSYNC_INCIDENTIQ_INSTANCE": "cps.incidentiq.com", "IIQSYNC_INCIDENTIQ_TOKEN": "t0ken"}
    ready = run_cli(["config"], {**iiq, "IIQSYNC_DATABASE_CONNECTIONSTRING": pg_url})
    assert ready.returncode == 0, ready.stderr
    assert "ready to sync" in ready.stderr and "not ready" not in ready.stderr
    missing_db = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    for url, said in ((missing_db, 'database "no_such_database" does not exist'),
                      ("mssql+pyodbc://u:p@h/db", "No module named 'pyodbc'"),
                      (f"sqlite:///{tmp_path}/no/such/folder/x.db", "of the SQLite file does not exist")):
        done = run_cli(["config"], {**iiq, "IIQSYNC_DATABASE_CONNECTIONSTRING": url})
        assert done.returncode == 2, (url, done.stderr)
        assert "not ready to sync" in done.stderr and said in done.stderr, done.stderr
        assert "[Database] ConnectionString" in done.stderr and "Traceback" not in done.stderr
    both = run_cli(["config"], {"IIQSYNC_GENERAL_PAGESIZE": "-1", "IIQSYNC_INCIDENTIQ_INSTANCE": "ftp://x"})
    assert both.returncode == 2
    assert "[General] PageSize" in both.stderr and "[IncidentIQ] Instance" in both.stderr
    assert "[IncidentIQ] Token is missing" in both.stderr


def test_verbose_goes_before_or_after_the_command(sqlite_url, iiq):
    env = make_env(iiq.url, sqlite_url)
    for args in (["-v", "sync", "teams", "--local", "--no-progress"],
                 ["sync", "teams", "--local", "--no-progress", "-v"]):
        done = run_cli(args, env)
        assert done.returncode == 0, done.stderr
        assert "INFO iiqsync" in done.stderr, args
    quiet = run_cli(["sync", "teams", "--local", "--no-progress"], env)
    assert "INFO" not in quiet.stderr
