"""[IncidentIQ] Instance that reaches a web server that is not IIQ (the district's
web site typed by mistake, a proxy's error page), or a server that does not speak
HTTP at all (an SSH port): the first request of the run says so within seconds,
naming the setting, and the sync stops there, leaving every table as it was. A real
IIQ's passing faults at that same first request (a 503, its maintenance page for a
moment) are still ridden out, and its own JSON 404 for a route it lacks fails that
entity only; a connection dropped later in a run is retried."""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from iiqsync import config, db, local
from iiqsync.entities import ENTITIES

from .conftest import TOKEN, make_env, make_settings, run_cli
from .test_faults import first_contact_seconds, teams_through_an_outage
from .test_sync_local import check_all

pytestmark = pytest.mark.timeout(120)

PAGE = (b"<!DOCTYPE html>\n<html><head><title>Welcome to Spokane USD</title></head>\n"
        b"<body><h1>Spokane Unified School District</h1><p>Enrollment is open.</p></body></html>\n")
IIQ_404 = (b'{"Message": "No HTTP resource was found that matches the request URI '
           b"'https://cps.incidentiq.com/api/v1.0/users'.\"}")


class WebSite:
    """A web server that is not IIQ, on a free loopback port. ``kind``: ``404`` or
    ``405`` (an HTML page with that status), ``html`` (the page with 200), ``501``
    (the standard library's own handler, which answers every POST 501, as
    ``python -m http.server`` does), ``iiq-404`` (IIQ's own JSON 404: a route it lacks)."""

    def __init__(self, kind: str):
        self.paths: list[str] = []
        seen = self.paths

        class Page(http.server.BaseHTTPRequestHandler):
            def answer(self):
                seen.append(f"{self.command} {self.path.split('?')[0]}")
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, body, kind_of = {
                    "404": (404, PAGE, "text/html"), "405": (405, PAGE, "text/html"),
                    "html": (200, PAGE, "text/html; charset=utf-8"),
                    "iiq-404": (404, IIQ_404, "application/json; charset=utf-8"),
                }[kind]
                self.send_response(status)
                self.send_header("Content-Type", kind_of)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer

            def log_message(self, *args):
                pass

        class Files(http.server.SimpleHTTPRequestHandler):
            def send_head(self):
                seen.append(f"{self.command} {self.path.split('?')[0]}")
                return super().send_head()

            def send_error(self, code, message=None, explain=None):
                if self.command == "POST":
                    seen.append(f"{self.command} {self.path.split('?')[0]}")
                super().send_error(code, message, explain)

            def log_message(self, *args):
                pass

        handler = Files if kind == "501" else Page
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebSite:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def tables(url: str) -> dict[str, list]:
    """Every table but the run records, each with all its rows, sorted."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = [n for n in sa.inspect(conn).get_table_names() if not n.startswith("iiqsync_")]
            out = {n: sorted(map(tuple, conn.execute(sa.text(f'SELECT * FROM "{n}"'))), key=repr)
                   for n in names}
    finally:
        engine.dispose()
    return out


@pytest.fixture
def synced(iiq, district, sqlite_url):
    """A database already holding a good sync of every entity."""
    settings = make_settings(iiq.url, sqlite_url)
    results = local.sync(settings, list(ENTITIES))
    assert all(r["status"] == "succeeded" for r in results), results
    db.get_engine(sqlite_url).dispose()
    before = tables(sqlite_url)
    assert all(before[settings.table_name(e.table_key)] for e in ENTITIES.values())
    return sqlite_url, before


@pytest.mark.parametrize("kind", ["404", "405", "501", "html"])
def test_a_web_site_at_instance_stops_the_sync_within_seconds(kind, synced):
    """`iiqsync sync --local` with the defaults a new user has (MaxRetries 6): the
    first entity fails within seconds with one message naming [IncidentIQ] Instance
    and the page's title, no retry warnings, the other entities are not attempted
    (not one request for them), and every table keeps the previous sync."""
    db_url, before = synced
    with WebSite(kind) as site:
        env = make_env(site.url, db_url)
        del env["IIQSYNC_GENERAL_TIMEOUT"]
        started = time.monotonic()
        done = run_cli(["sync", "--local", "--no-progress"], env, timeout=100)
        took = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    # 404/405/501 at once; a 200 page is asked again three times (3 s) first, in case
    # it is IIQ's own maintenance page for a moment. The command itself takes ~1 s.
    assert took < (8 if kind == "html" else 5), f"{took:.1f}s"
    lines = done.stdout.splitlines()
    assert len(lines) == 6, output
    assert lines[0].split()[:2] == ["users", "failed"], output
    said = lines[0].split(None, 3)[3]
    assert said.startswith(f"{site.url} answered POST /api/v1.0/"), said
    if kind != "501":
        assert '(titled "Welcome to Spokane USD")' in said, said
    status = {"404": "404 Not Found", "405": "405 Method Not Allowed",
              "501": "501 Unsupported method ('POST')", "html": None}[kind]
    if status:
        assert f" with {status} and a web page " in said, said
    else:
        assert " with a web page, not JSON " in said, said
    assert said.endswith("— check [IncidentIQ] Instance (env IIQSYNC_INCIDENTIQ_INSTANCE): "
                         "it answered like a web site, not the Incident IQ API"), said
    assert output.count("[IncidentIQ] Instance") == 1, output
    assert all(line.split()[1:3] == ["not", "run"]
               and line.endswith("not attempted: IIQ does not answer at that Instance")
               for line in lines[1:]), output
    assert "retry" not in output and "Traceback" not in output and TOKEN not in output
    # Only users' first requests were sent: its TotalRows and its custom fields.
    assert set(site.paths) <= {"POST /api/v1.0/users", "POST /api/v1.0/custom-fields"}, site.paths
    assert len(site.paths) <= (8 if kind == "html" else 2), site.paths
    assert tables(db_url) == before
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        error = conn.exec_driver_sql("SELECT error FROM iiqsync_runs WHERE entity = 'users' "
                                     "AND status = 'failed'").scalar_one()
    engine.dispose()
    assert error.startswith("InstanceUnreachableError: ") and "[IncidentIQ] Instance" in error


def test_iiqs_own_404_fails_that_entity_only(sqlite_url):
    """IIQ's JSON 404 for a route it lacks is no sign of a wrong instance: each entity
    fails at once with the route named, and the others are still attempted."""
    with WebSite("iiq-404") as site:
        results = local.sync(make_settings(site.url, sqlite_url), list(ENTITIES))
    assert [r["status"] for r in results] == ["failed"] * len(ENTITIES), results
    for r in results:
        assert "unexpected HTTP 404 Not Found" in r["error"] and "Instance" not in r["error"], r
        assert r["seconds"] < 5, r
    assert len({p for p in site.paths if "custom-fields" not in p}) == len(ENTITIES), site.paths
    db.get_engine(sqlite_url).dispose()


@pytest.mark.parametrize("knob, counter", [("error_rate", "503"), ("garbage_rate", "garbage")],
                         ids=["503", "maintenance-page"])
def test_a_real_iiq_failing_at_the_first_request_is_retried(knob, counter, iiq, district,
                                                           sqlite_url):
    """The simulator answers every request 503 (or 200 with its "Down for
    maintenance" page) until the run's first request has met it: that is an IIQ
    struggling, not a wrong instance. The request is tried again and the run
    succeeds with every row."""
    iiq.configure(**{knob: 1.0})
    stop = threading.Event()

    def heal():
        while not stop.is_set() and iiq.count(counter) < 2:
            time.sleep(0.02)
        iiq.configure(**{knob: 0.0})

    healer = threading.Thread(target=heal, daemon=True)
    healer.start()
    settings = make_settings(iiq.url, sqlite_url)
    try:
        results = local.sync(settings, list(ENTITIES))
    finally:
        stop.set()
        healer.join()
    assert all(r["status"] == "succeeded" for r in results), results
    assert iiq.count(counter, "users") >= 1, iiq.stats()
    check_all(config.load(os.devnull, make_env(iiq.url, sqlite_url)), district)
    db.get_engine(sqlite_url).dispose()


def test_a_worker_says_at_once_that_the_instance_is_a_web_site(pg_url, redis_url,
                                                              worker_factory):
    """On the workers, each entity's plan task fails within seconds the same way
    (no [Run] TaskRetries retries), naming the setting."""
    with WebSite("404") as site:
        env = make_env(site.url, pg_url, IIQSYNC_CELERY_BROKERURL=redis_url,
                       IIQSYNC_METRICS_PORT=0)
        worker_factory(env, concurrency=2)
        started = time.monotonic()
        done = run_cli(["sync", "teams", "users", "--wait", "--timeout", "60", "--no-progress"],
                       env, timeout=120)
        took = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    for route in ("GET /api/v1.0/teams/all", "POST /api/v1.0/users"):
        assert (f"InstanceUnreachableError: {site.url} answered {route} with 404 Not Found and "
                f'a web page (titled "Welcome to Spokane USD") — check [IncidentIQ] Instance '
                "(env IIQSYNC_INCIDENTIQ_INSTANCE): it answered like a web site, not the "
                "Incident IQ API") in " ".join(done.stdout.split()), done.stdout
    assert took < 20, f"{took:.1f}s"
    assert TOKEN not in done.stdout + done.stderr
    db.get_engine(pg_url).dispose()


def _shut(*sockets: socket.socket) -> None:
    """End both directions of each socket, whatever state it is in."""
    for s in sockets:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class NotHttp:
    """A TCP server on a free loopback port that does not speak HTTP: each connection
    gets an SSH server's banner and is closed, as an SSH port does with an HTTP request.
    With ``upstream`` (a port) it passes connections through to that server instead,
    until ``ssh()`` is called (which also drops the connections it passes); ``http()``
    passes them through again."""

    BANNER = b"SSH-2.0-OpenSSH_9.6\r\n"

    def __init__(self, upstream: int | None = None):
        self.upstream = upstream
        self.passing = upstream is not None
        self.connections = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                passing = self.passing
            if not passing:
                try:
                    conn.sendall(self.BANNER)
                except OSError:
                    pass
                conn.close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                conn.close()
                continue
            with self._lock:
                self._open |= {conn, server}
            for a, b in ((conn, server), (server, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        _shut(src, dst)

    def ssh(self) -> None:
        with self._lock:
            self.passing = False
            dropped, self._open = self._open, set()
        _shut(*dropped)

    def http(self) -> None:
        with self._lock:
            self.passing = True

    def __enter__(self) -> NotHttp:
        return self

    def __exit__(self, *exc) -> None:
        self.listener.close()
        self.ssh()


def test_a_server_that_does_not_speak_http_stops_the_sync_within_seconds(synced):
    """[IncidentIQ] Instance at an SSH port (or Redis's, PostgreSQL's): the first
    entity fails within seconds naming the setting, without a retry warning, the others
    are not attempted, and every table keeps the previous sync."""
    db_url, before = synced
    with NotHttp() as ssh:
        env = make_env(ssh.url, db_url)
        del env["IIQSYNC_GENERAL_TIMEOUT"]
        started = time.monotonic()
        done = run_cli(["sync", "--local", "--no-progress"], env, timeout=100)
        took = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    # Asked again three times over 3 s, in case a load balancer dropped one connection.
    assert took < 8, f"{took:.1f}s"
    lines = done.stdout.splitlines()
    assert len(lines) == 6, output
    assert lines[0].split()[:2] == ["users", "failed"], output
    said = lines[0].split(None, 3)[3]
    assert said.startswith(f"{ssh.url} answered POST /api/v1.0/"), said
    assert ", but not with HTTP (it " in said and " the connection without an HTTP response)" in said
    assert said.endswith(" — check [IncidentIQ] Instance (env IIQSYNC_INCIDENTIQ_INSTANCE): "
                         "some other server listens there, not the Incident IQ API"), said
    assert all(line.split()[1:3] == ["not", "run"]
               and line.endswith("not attempted: IIQ does not answer at that Instance")
               for line in lines[1:]), output
    assert "retry" not in output and "Traceback" not in output and "RemoteProtocolError" not in output
    # users' two first requests (TotalRows, custom fields), each tried four times.
    assert ssh.connections <= 8, ssh.connections
    assert tables(db_url) == before
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        error = conn.exec_driver_sql("SELECT error FROM iiqsync_runs WHERE entity = 'users' "
                                     "AND status = 'failed'").scalar_one()
    engine.dispose()
    assert error.startswith("InstanceUnreachableError: ") and "[IncidentIQ] Instance" in error


def test_a_connection_that_breaks_without_http_later_in_a_run_is_retried(iiq, district,
                                                                         sqlite_url):
    """Once plan has met IIQ, a connection closed without an HTTP answer is what a load
    balancer does in a bad moment: the page reads are retried with back-off for longer
    than a first request's quick tries, and the run succeeds once IIQ answers again."""
    outage = first_contact_seconds() + 1
    with NotHttp(upstream=urlsplit(iiq.url).port) as front:
        settings = make_settings(front.url, sqlite_url, IIQSYNC_INCIDENTIQ_MAXRETRIES=10)
        outcome, waited, retries = teams_through_an_outage(settings, front.ssh, front.http, outage)
    assert waited >= outage - 0.5 and retries >= 1, (waited, retries)
    assert outcome["status"] == "succeeded", outcome
    assert outcome["rows"] == district.count("teams")
    db.get_engine(sqlite_url).dispose()


def test_an_instance_without_its_http_scheme_is_told_to_write_it(sqlite_url, iiq):
    """A bare host:port means https; a plain-HTTP server there answers the TLS hello in
    text. The message says what to write instead."""
    plain = iiq.url.removeprefix("http://")
    done = run_cli(["sync", "teams", "users", "--local", "--no-progress"],
                   make_env(plain, sqlite_url), timeout=60)
    assert done.returncode == 1
    assert (f"it does not speak TLS (https); if it serves plain HTTP, write http://{plain} "
            "— check [IncidentIQ] Instance") in done.stdout, done.stdout
    assert "users  not run" in done.stdout
