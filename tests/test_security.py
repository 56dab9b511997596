"""The token stays secret and the connection to IIQ stays verified.

A refused token stops the run at once and leaves the tables alone; the token never
shows up in output, worker logs, task messages, results, Celery events or the run
history; TLS is verified by default and a CA bundle of one's own can be trusted."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import threading
import time

import pytest
import redis
import sqlalchemy as sa

from iiqsync import db, local

from .conftest import TOKEN, make_env, make_settings, run_cli
from .test_cli import table_counts

WRONG = "wrong-token-5d2e-SECRET"


def redis_text(url: str) -> bytes:
    """Every key and value in a Redis database, as one blob to search."""
    client = redis.Redis.from_url(url)
    out = []
    for key in client.scan_iter(count=1000):
        out.append(key)
        kind = client.type(key)
        if kind == b"string":
            out.append(client.get(key) or b"")
        elif kind == b"list":
            out += client.lrange(key, 0, -1)
        elif kind == b"hash":
            for f, v in client.hgetall(key).items():
                out += [f, v]
        elif kind == b"set":
            out += list(client.smembers(key))
        elif kind == b"zset":
            out += client.zrange(key, 0, -1)
    client.close()
    return b"\n".join(out)


class EventTap:
    """Every Celery event (task-sent, task-received, task-succeeded, …) seen on the
    broker while it runs: what Flower shows."""

    def __init__(self, broker_url: str):
        from celery import Celery

        self.app = Celery(broker=broker_url)
        self.events: list[dict] = []
        self._receiver = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with self.app.connection() as conn:
            self._receiver = self.app.events.Receiver(conn, handlers={"*": self.events.append})
            self._receiver.capture(limit=None, timeout=None, wakeup=True)

    def __enter__(self):
        self._thread.start()
        time.sleep(1.0)  # the receiver's queue is bound before anything is sent
        return self

    def __exit__(self, *exc):
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(10)
        self.app.close()


def runs_text(db_url: str) -> str:
    engine = db.get_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM iiqsync_runs")).fetchall()
    return json.dumps([list(map(str, r)) for r in rows])


def test_token_is_nowhere_and_a_wrong_one_stops_at_once(pg_url, iiq, district, redis_url,
                                                        worker_factory, tmp_path):
    """With a worker: a good run leaks the token nowhere (worker log, Redis, Celery
    events, command output, run history). Then a worker with a wrong token: each
    entity fails at its first request with a message naming the setting, no retries,
    and the tables keep the rows of the good run."""
    env = make_env(iiq.url, pg_url, IIQSYNC_CELERY_BROKERURL=redis_url)
    good = worker_factory(env, concurrency=2)
    with EventTap(redis_url) as tap:
        done = run_cli(["sync", "teams", "users", "--wait", "--no-progress"], env, timeout=120)
        time.sleep(1.0)
    assert done.returncode == 0, done.stdout + done.stderr
    good.stop()
    assert any(e.get("type") == "task-received" for e in tap.events), "events were captured"
    secret = TOKEN.encode()
    assert secret not in json.dumps(tap.events, default=str).encode()
    assert secret not in redis_text(redis_url)
    assert secret not in good.log_path.read_bytes()
    assert TOKEN not in done.stdout + done.stderr + runs_text(pg_url)
    before = table_counts(pg_url)
    assert before["Teams"] == district.count("teams") and before["Users"] == district.count("users")

    iiq.reset_stats()
    bad_env = {**env, "IIQSYNC_INCIDENTIQ_TOKEN": WRONG}
    bad = worker_factory(bad_env, concurrency=2)
    started = time.monotonic()
    done = run_cli(["sync", "teams", "users", "--wait", "--no-progress"], bad_env, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - started < 30, "a refused token is not retried"
    assert done.stdout.count("refused the token (401") == 2
    assert "[IncidentIQ] Token" in done.stdout
    # No retry storm: teams' TotalRows read, and users' TotalRows and custom-field
    # definitions, which plan reads at the same time; none of them again.
    assert iiq.count("401") == 3, "each of plan's reads once, never retried"
    assert table_counts(pg_url) == before
    bad.stop()
    wrong = WRONG.encode()
    for where in (redis_text(redis_url), bad.log_path.read_bytes(),
                  (done.stdout + done.stderr + runs_text(pg_url)).encode()):
        assert wrong not in where
    assert "refused the token" in bad.log_path.read_text()


def test_permission_refused_is_reported_the_same_way(sqlite_url, iiq):
    settings = make_settings(iiq.url, sqlite_url)
    assert all(r["status"] == "succeeded" for r in local.sync(settings, ["teams", "rooms"]))
    before = table_counts(sqlite_url)
    iiq.configure(forbidden=True)
    results = local.sync(settings, ["teams", "rooms"])
    assert results[0]["status"] == "failed" and "(403 Forbidden)" in results[0]["error"]
    assert results[1]["status"] == "not run", "a refused token fails every entity alike"
    assert iiq.count("403") == 1
    assert table_counts(sqlite_url) == before


def test_token_with_a_line_break_is_refused_before_it_is_sent(sqlite_url, iiq):
    """A token pasted with a line break (two lines of a secret file) would be echoed by
    the HTTP library's error; it is a configuration problem, reported without it."""
    env = make_env(iiq.url, sqlite_url, IIQSYNC_INCIDENTIQ_TOKEN="first-half\nSECRET-second")
    done = run_cli(["sync", "teams", "--local", "--no-progress"], env, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "[IncidentIQ] Token" in done.stderr
    assert "SECRET" not in done.stdout + done.stderr
    assert iiq.count("requests") == 0


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "iiqsync test CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
def https_iiq(district, certificate):
    from iiqsync.simulator.server import SimulatorServer

    with SimulatorServer(district, token=TOKEN, certfile=certificate[0],
                         keyfile=certificate[1]) as server:
        assert server.url.startswith("https://")
        yield server


def test_tls_is_verified_by_default(https_iiq, sqlite_url):
    env = make_env(https_iiq.url, sqlite_url)
    started = time.monotonic()
    done = run_cli(["sync", "teams", "rooms", "--local", "--no-progress"], env, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - started < 20, "a certificate that fails is not retried"
    assert "certificate" in done.stdout and "[IncidentIQ] CaBundle" in done.stdout
    assert "not attempted: IIQ's TLS certificate could not be verified" in done.stdout
    assert "Traceback" not in done.stderr
    assert https_iiq.count("requests") == 0, "nothing was sent over the unverified connection"


def test_a_ca_bundle_is_trusted(https_iiq, district, sqlite_url, certificate):
    settings = make_settings(https_iiq.url, sqlite_url, IIQSYNC_INCIDENTIQ_CABUNDLE=certificate[0])
    assert settings.get("IncidentIQ", "VerifyTls") is True
    (result,) = local.sync(settings, ["teams"])
    assert result["status"] == "succeeded", result
    assert result["rows"] == district.count("teams")
