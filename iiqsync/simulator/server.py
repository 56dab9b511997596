"""An HTTP server that answers like Incident IQ's REST API, over a generated district.

It serves the list routes declared in ``iiqsync.entities`` (and the custom-field
definitions route) with IIQ's envelope and paging (reference §2), and can misbehave
on purpose: latency, a shared rate limit answering 429 (with or without
``Retry-After``), random 503s, hung requests, bodies cut off mid-way, 200s that are
not JSON, a page-size cap on users, and rows changing while a sync runs.

    with SimulatorServer(District(assets=5000), rate_limit=20) as sim:
        httpx.post(sim.url + "/api/v1.0/assets?$s=100", headers=sim.headers)

Run from a shell: ``iiqsync fake-iiq --port 8080`` or ``python -m iiqsync.simulator``.
"""

from __future__ import annotations

import argparse
import gzip
import hmac
import math
import re
import socket
import ssl
import sys
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from random import Random
from urllib.parse import parse_qs, urlsplit

import orjson

from .. import argtypes
from ..entities import CUSTOM_FIELDS_ROUTE, ENTITIES
from . import pools as P
from .district import (
    CUSTOM_FIELD_ENTITIES,
    DEFAULT_SIZES,
    DRIFT_OPS,
    District,
    SortNotSupported,
    check_entity,
)
from .items import KEY_FIELDS

DEFAULT_TOKEN = "iiqsync-demo-token"
JSON_TYPE = "application/json; charset=utf-8"

# Sort names IIQ clients send (reference §2.1) -> item paths, per entity.
SORT_ALIASES = {
    "tickets": {
        "ticketcreateddate": "CreatedDate", "ticketmodifieddate": "ModifiedDate",
        "ticketcloseddate": "ClosedDate", "ticketduedate": "DueDate",
        "ticketstarteddate": "StartedDate", "ticketnumbersort": "TicketNumber",
        "ticketsubject": "Subject", "ticketpriority": "Priority",
        "ticketstatusname": "WorkflowStep.StatusName", "ticketisurgent": "IsUrgent",
        "workflowstepname": "WorkflowStep.StepName",
        "issuecategoryname": "Issue.IssueCategoryName", "issuetypename": "Issue.Name",
        "locationname": "Location.Name", "locationroomname": "LocationRoom.Name",
        "assignedteamname": "AssignedToTeam.TeamName", "forname": "For.Name",
        "forfirstname": "For.FirstName",
    },
    "assets": {
        "assetname": "Name", "modelname": "Model.Name",
        "manufacturername": "Model.Manufacturer.Name", "categoryname": "Model.Category.Name",
        "locationname": "Location.Name", "assetstatustypename": "Status.Name",
        "ownerlastname": "Owner.LastName", "ownerfirstname": "Owner.FirstName",
        "assetcreateddate": "CreatedDate", "assetmodifieddate": "ModifiedDate",
    },
    "users": {"fullname": "Name", "rolename": "Role.Name"},
}

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ITEM_ROUTES = (
    (re.compile(rf"^/api/v[12]\.0/users/({_GUID})$"), "users"),
    (re.compile(rf"^/api/v[12]\.0/assets/({_GUID})$"), "assets"),
    (re.compile(rf"^/api/v[12]\.0/tickets/({_GUID})$"), "tickets"),
    (re.compile(rf"^/api/v[12]\.0/locations/rooms/({_GUID})$"), "rooms"),
    (re.compile(rf"^/api/v[12]\.0/locations/({_GUID})$"), "locations"),
)
_CF_FOR = {"asset": "assets", "user": "users", "ticket": "tickets"}

GARBAGE_BODY = (
    b"<!DOCTYPE html>\r\n<html><head><title>Incident IQ - Down for maintenance</title></head>"
    b"<body><h1>We'll be right back</h1><p>Incident IQ is being updated. Please try again "
    b"in a few minutes.</p></body></html>\r\n"
)


@dataclass
class Knobs:
    """Everything that makes the simulator slow, strict or unreliable. All can be
    changed while serving with :meth:`SimulatorServer.configure`."""

    latency_ms: float = 0.0  # added to every API response
    item_latency_ms: float = 0.0  # added per item served
    latency_jitter_ms: float = 0.0  # plus uniform [0, jitter)
    # True: the latency is the response time, and the time spent building the page
    # counts toward it (a benchmark's pages then take the same time however many are
    # served at once, as long as the machine keeps up). False: it is added on top.
    latency_total: bool = False
    rate_limit: float = 0.0  # requests per second across all clients; 0 = unlimited
    retry_after: bool = True  # send Retry-After with 429s
    retry_after_seconds: float | None = None  # fixed Retry-After; None = time until a slot frees
    error_rate: float = 0.0  # share of requests answered 503
    error_retry_after: bool = False  # send Retry-After with those 503s
    timeout_rate: float = 0.0  # share of requests that hang for timeout_seconds, then 504
    timeout_seconds: float = 30.0
    truncate_rate: float = 0.0  # share of 200 responses cut off mid-body
    garbage_rate: float = 0.0  # share of 200 responses whose body is HTML, not JSON
    forbidden: bool | tuple = False  # True, or route names ("users", "custom-fields") -> 403
    page_caps: dict = field(default_factory=lambda: {"users": 1000})  # most items per page
    over_cap: str = "clamp"  # "clamp": serve the cap silently; "error": 400
    default_page_size: int = 100  # when $s is absent
    gzip_level: int = 1  # 0 = never compress
    # True: a list page is built, serialised and compressed once, then served again
    # byte for byte (its RequestDate included) while nothing it shows changes. For
    # benchmarks that share the machine's cores with the simulator: the work of a
    # real IIQ happens on its servers, not on the client's. Off while drift is on.
    cache_pages: bool = False
    fault_seed: int = 0  # seeds the 503/timeout/truncate/garbage dice

    def check(self) -> None:
        for name in ("error_rate", "timeout_rate", "truncate_rate", "garbage_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {v}")
        if self.over_cap not in ("clamp", "error"):
            raise ValueError("over_cap must be 'clamp' or 'error'")
        if self.default_page_size <= 0:
            raise ValueError("default_page_size must be positive")


KNOB_NAMES = {f.name for f in fields(Knobs)}
SERVED_KEPT = 100_000  # list answers remembered for served()
PAGE_CACHE_BYTES = 1 << 30  # cache_pages stops adding pages beyond this much
PAGE_SHAPING_KNOBS = {"page_caps", "over_cap", "default_page_size", "gzip_level", "cache_pages"}
DRIFT_KNOBS = ("drift_every", "drift_rows", "drift_ops", "drift_entities")


class _Window:
    """Requests admitted in the last second, shared by every connection."""

    def __init__(self):
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self, limit: float) -> tuple[bool, float]:
        now = time.monotonic()
        with self._lock:
            while self._times and self._times[0] <= now - 1.0:
                self._times.popleft()
            if len(self._times) < limit:
                self._times.append(now)
                return True, 0.0
            return False, self._times[0] + 1.0 - now


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address, handler, sim: SimulatorServer):
        self.sim = sim
        super().__init__(address, handler)

    def handle_error(self, request, client_address):
        # A client that refused the certificate is not the server's error.
        if isinstance(sys.exc_info()[1], ssl.SSLError):
            return
        super().handle_error(request, client_address)


class _Abort(Exception):
    """Stop handling: the response (if any) has been sent."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this
    server: _HttpServer

    def setup(self):
        super().setup()
        # Headers and body go out in one write; no Nagle delay on small responses.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sim._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.sim._track(self.connection, False)

    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        if self.server.sim.verbose:
            sys.stderr.write(f"fake-iiq {self.address_string()} {format % args}\n")

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PATCH(self):
        self._handle("PATCH")

    def _handle(self, method: str):
        try:
            self.server.sim._serve(self, method)
        except _Abort:
            pass
        except (TimeoutError, BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True


def most_in_flight(served: list[dict], route: str, min_items: int = 0) -> int:
    """From a ``served()`` log: the most answers of ``route`` with at least
    ``min_items`` items that were in progress at one time."""
    events = []
    for one in served:
        if one["route"] == route and one["items"] >= min_items:
            events += [(one["start"], 1), (one["end"], -1)]
    most = now = 0
    for _, step in sorted(events):  # at equal times an end (-1) sorts before a start
        now += step
        most = max(most, now)
    return most


class SimulatorServer:
    """A fake IIQ instance on ``host:port`` (port 0 picks a free one).

    ``district`` defaults to ``District()``. Knobs are the fields of :class:`Knobs`,
    plus ``drift_every``/``drift_rows``/``drift_ops``/``drift_entities`` (forwarded to
    :meth:`District.set_drift`). ``start()`` returns once the socket listens;
    ``url`` is the base URL; ``stop()`` ends it; also a context manager.
    """

    def __init__(self, district: District | None = None, token: str = DEFAULT_TOKEN,
                 host: str = "127.0.0.1", port: int = 0, verbose: bool = False,
                 certfile: str | None = None, keyfile: str | None = None, **knobs):
        self.district = district if district is not None else District()
        # With a certificate (PEM) the simulator speaks HTTPS only.
        self.certfile = certfile
        self.keyfile = keyfile
        self.token = token
        self.host = host
        self.port = port
        self.verbose = verbose
        self.knobs = Knobs()
        self._lock = threading.Lock()
        self._dice = Random(0)
        self._window = _Window()
        self._stats: dict[str, Counter] = {}
        self._served: deque = deque(maxlen=SERVED_KEPT)
        self._conns: set = set()
        self._stopping = threading.Event()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self.user_token = str(uuid.uuid5(uuid.NAMESPACE_URL, "iiq-token:" + token))
        self._routes = self._route_table()
        self._page_cache: dict[tuple, tuple[bytes, bool, int]] = {}
        self._page_cache_bytes = 0
        self.configure(**knobs)

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> SimulatorServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HttpServer((self.host, self.port), _Handler, self)
        if self.certfile:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(self.certfile, self.keyfile)
            # The handshake happens in the request's own thread, so a client that
            # refuses the certificate never holds up the next one.
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name=f"fake-iiq:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Start (if needed) and block until Ctrl-C or :meth:`stop`."""
        self.start()
        try:
            while not self._stopping.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.certfile else 'http'}://{host}:{self.port}"

    @property
    def headers(self) -> dict:
        """Request headers a well-behaved client sends."""
        return {"Authorization": f"Bearer {self.token}", "Client": "ApiClient",
                "Content-Type": "application/json"}

    def _track(self, conn, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    # -- knobs and counters ----------------------------------------------------------
    def configure(self, **knobs) -> None:
        """Change knobs while serving, e.g. ``configure(rate_limit=5, retry_after=False)``."""
        drift = {k: knobs.pop(k) for k in DRIFT_KNOBS if k in knobs}
        unknown = set(knobs) - KNOB_NAMES
        if unknown:
            raise TypeError(f"unknown simulator knobs: {', '.join(sorted(unknown))}")
        with self._lock:
            new = Knobs(**{**asdict(self.knobs), **knobs})
            if isinstance(new.forbidden, (list, set)):
                new.forbidden = tuple(new.forbidden)
            new.check()
            if PAGE_SHAPING_KNOBS & set(knobs):  # cached pages would be out of date
                self._page_cache.clear()
                self._page_cache_bytes = 0
            if "fault_seed" in knobs or self._dice is None:
                self._dice = Random(new.fault_seed)
            self.knobs = new
        if drift:
            kw = {}
            if "drift_every" in drift:
                kw["every"] = drift["drift_every"] or 0
            if "drift_rows" in drift:
                kw["rows"] = drift["drift_rows"]
            if drift.get("drift_ops"):
                ops = drift["drift_ops"]
                kw["ops"] = ops.split(",") if isinstance(ops, str) else ops
            if drift.get("drift_entities"):
                ents = drift["drift_entities"]
                kw["entities"] = ents.split(",") if isinstance(ents, str) else ents
            current = self.district._drift
            self.district.set_drift(
                every=kw.get("every", current.every), rows=kw.get("rows", current.rows),
                ops=kw.get("ops", current.ops), entities=kw.get("entities", current.entities))

    def stats(self) -> dict[str, dict[str, int]]:
        """Counters per route name ("users", "assets", …, "custom-fields", "other"):
        ``requests``, one per HTTP status sent (``"200"``, ``"429"``, …), ``timeouts``,
        ``truncated``, ``garbage``, ``items``. Missing counters are 0."""
        with self._lock:
            return {route: dict(c) for route, c in self._stats.items()}

    def count(self, counter: str, route: str | None = None) -> int:
        """One counter (e.g. ``"429"``, ``"requests"``) for one route, or summed over all."""
        counter = str(counter)
        with self._lock:
            if route is not None:
                return self._stats.get(route, Counter())[counter]
            return sum(c[counter] for c in self._stats.values())

    def reset_stats(self) -> None:
        with self._lock:
            self._stats.clear()
            self._served.clear()

    def served(self) -> list[dict]:
        """The list pages answered (200) since the last reset, the latest
        ``SERVED_KEPT``: route, items sent, and when the request arrived and when its
        answer was written, in seconds on the simulator's clock."""
        with self._lock:
            return [{"route": r, "items": n, "start": round(a, 4), "end": round(b, 4)}
                    for r, n, a, b in self._served]

    def most_in_flight(self, route: str, min_items: int = 0) -> int:
        """The most list requests of ``route`` that were being answered at one time,
        counting those that sent at least ``min_items`` items."""
        return most_in_flight(self.served(), route, min_items)

    def _bump(self, route: str, counter: str, n: int = 1) -> None:
        with self._lock:
            self._stats.setdefault(route, Counter())[counter] += n

    # -- routing -----------------------------------------------------------------------
    @staticmethod
    def _route_table() -> dict[str, tuple[str, str]]:
        """normalised path -> (route name, method)."""
        table: dict[str, tuple[str, str]] = {}
        for entity in ENTITIES.values():
            if entity.name in KEY_FIELDS:
                table[_norm(entity.route)] = (entity.name, entity.method.upper())
        table[_norm(CUSTOM_FIELDS_ROUTE)] = ("custom-fields", "POST")
        # Other spellings of the same lists that real clients use (reference §1.1, §3).
        aliases = {
            "/services/users": ("users", "POST"),
            "/api/v1.0/locations/all": ("locations", "GET"),
            "/api/v2.0/locations/all": ("locations", "GET"),
            "/services/custom-fields": ("custom-fields", "POST"),
            "/api/v1.0/assets/types": ("asset-types", "GET"),
        }
        for path, target in aliases.items():
            table.setdefault(_norm(path), target)
        for short in _CF_FOR:
            table[_norm(f"{CUSTOM_FIELDS_ROUTE}/for/{short}")] = ("custom-fields", "POST")
        return table

    def _match(self, path: str) -> tuple[str, str, str | None]:
        """(route name, method, item key or None); name "other" when nothing matches."""
        hit = self._routes.get(path)
        if hit:
            return hit[0], hit[1], None
        for pattern, entity in _ITEM_ROUTES:
            m = pattern.match(path)
            if m:
                return entity, "GET", m.group(1)
        return "other", "", None

    # -- one request -------------------------------------------------------------------
    def _serve(self, h: _Handler, method: str) -> None:
        t0 = time.perf_counter()
        parts = urlsplit(h.path)
        path = _norm(parts.path)
        body_bytes = self._read_body(h)
        if path.startswith("/_sim"):
            return self._control(h, method, path, body_bytes)
        route, want_method, item_key = self._match(path)
        knobs = self.knobs
        self._bump(route, "requests")

        if knobs.rate_limit and knobs.rate_limit > 0:
            ok, wait = self._window.admit(knobs.rate_limit)
            if not ok:
                headers = {}
                if knobs.retry_after:
                    secs = knobs.retry_after_seconds
                    secs = max(1, math.ceil(wait)) if secs is None else secs
                    headers["Retry-After"] = _num(secs)
                return self._error(h, route, 429, "Too many requests. Please slow down.",
                                   headers)
        if not self._authorised(h.headers.get("Authorization")):
            return self._error(h, route, 401, "Authorization has been denied for this request.")
        if knobs.forbidden is True or (
                isinstance(knobs.forbidden, tuple) and route in knobs.forbidden):
            return self._error(h, route, 403, "You do not have permission to perform this action.")
        if route == "other":
            return self._error(h, route, 404, f"No HTTP resource was found that matches the "
                                              f"request URI '{parts.path}'.")
        if method != want_method:
            return self._error(h, route, 405, f"The requested resource does not support http "
                                              f"method '{method}'.")

        with self._lock:
            d = self._dice
            roll_503, roll_hang, roll_cut, roll_junk = d.random(), d.random(), d.random(), d.random()
        if roll_503 < knobs.error_rate:
            headers = {"Retry-After": "1"} if knobs.error_retry_after else {}
            self._sleep(knobs.latency_ms / 1000)
            return self._error(h, route, 503, "The service is unavailable.", headers)
        if roll_hang < knobs.timeout_rate:
            self._bump(route, "timeouts")
            if self._sleep(knobs.timeout_seconds):
                h.close_connection = True
                raise _Abort
            return self._error(h, route, 504, "The request timed out.")

        try:
            body = orjson.loads(body_bytes) if body_bytes.strip() else {}
        except orjson.JSONDecodeError:
            return self._error(h, route, 400, "The request is invalid.")
        if not isinstance(body, dict):
            body = {}
        query = {k.lower(): v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}

        is_list = item_key is None and route not in ("custom-fields", "asset-types")
        cache_key = None
        if knobs.cache_pages and is_list and not self.district.drifting:
            cache_key = self._page_key(h, route, query, body, knobs)
        cached = self._page_cache.get(cache_key) if cache_key is not None else None
        if cached is not None:
            data, gz, n_items = cached
        else:
            try:
                if item_key is not None:
                    payload, n_items = self._item(route, item_key)
                elif route == "custom-fields":
                    payload, n_items = self._custom_fields(path, query, body, knobs)
                elif route == "asset-types":
                    payload, n_items = self._asset_types()
                else:
                    payload, n_items = self._list(route, query, body, knobs)
            except _HttpError as exc:
                return self._error(h, route, exc.status, exc.message)
            # Serialised and compressed before the wait, so that with latency_total
            # that work counts toward the response time too.
            data, gz = self._encode(h, orjson.dumps({**payload, **self._meta(route, t0, 200)}))
            if cache_key is not None:
                self._remember(cache_key, (data, gz, n_items))

        delay = knobs.latency_ms + knobs.item_latency_ms * n_items
        if knobs.latency_jitter_ms:
            with self._lock:
                delay += self._dice.random() * knobs.latency_jitter_ms
        if knobs.latency_total:
            delay -= (time.perf_counter() - t0) * 1000
        if delay > 0 and self._sleep(delay / 1000):
            h.close_connection = True
            raise _Abort

        self._bump(route, "items", n_items)
        if roll_junk < knobs.garbage_rate:
            self._bump(route, "garbage")
            data, gz = self._encode(h, GARBAGE_BODY)
        cut = roll_cut < knobs.truncate_rate
        self._write(h, route, 200, data, gz, cut=cut)
        if is_list:
            with self._lock:
                self._served.append((route, n_items, t0, time.perf_counter()))

    def _sleep(self, seconds: float) -> bool:
        """Wait; True when the server is stopping meanwhile."""
        return seconds > 0 and self._stopping.wait(seconds)

    def _authorised(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(value.strip().encode(), self.token.encode())

    @staticmethod
    def _read_body(h: _Handler) -> bytes:
        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(h.rfile.read(size))
                h.rfile.readline()
        length = h.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            h.close_connection = True
            return b""
        return h.rfile.read(n) if n > 0 else b""

    def _meta(self, route: str, t0: float, status: int) -> dict:
        now = datetime.now(timezone.utc)
        return {
            "UserToken": self.user_token,
            "RequestDate": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}"
                           f"{int(time.perf_counter_ns() % 10)}Z",
            "ExecutionTime": (time.perf_counter() - t0) * 1000,
            "StatusCode": status,
            "ServerName": _server_name(route),
            "ProcessId": 1,
            "Properties": {},
            "Metadata": {"QueryEngineSource": "I"},
        }

    # -- payloads --------------------------------------------------------------------------
    def _paging(self, query: dict, body: dict, knobs: Knobs) -> tuple[int, int, str | None, bool]:
        """(page index, page size, sort field, descending) from $p/$s/$o/$d or body paging."""
        bpaging = _ci(body, "paging") or _ci(_ci(body, "requestoptions") or {}, "paging") or {}
        if not isinstance(bpaging, dict):
            bpaging = {}
        page = _int(query.get("$p", _ci(bpaging, "pageindex")), 0, "$p")
        size = _int(query.get("$s", _ci(bpaging, "pagesize")), knobs.default_page_size, "$s")
        if page < 0:
            raise _HttpError(400, "The page index ($p) cannot be negative.")
        if size <= 0:
            size = knobs.default_page_size
        order = query.get("$o", query.get("o")) or _ci(bpaging, "sortfield") or None
        descending = False
        if order:
            words = str(order).strip().split()
            order = words[0] if words else None
            if len(words) > 1:
                descending = _direction(words[1])
        direction = query.get("$d", query.get("d"))
        if direction is None:
            direction = _ci(bpaging, "sortdirection")
        if direction not in (None, ""):
            descending = _direction(direction)
        return page, size, order, descending

    def _list(self, entity: str, query: dict, body: dict, knobs: Knobs) -> tuple[dict, int]:
        page, size, order, descending = self._paging(query, body, knobs)
        cap = knobs.page_caps.get(entity)
        take = size
        if cap and size > cap:
            if knobs.over_cap == "error":
                raise _HttpError(400, f"PageSize cannot be greater than {cap}.")
            take = cap
        asset_types = _asset_type_filter(body) if entity == "assets" else None
        sort = _resolve_sort(entity, order)
        self.district.on_request(entity)
        try:
            total, items = self.district.slice(entity, page * size, take, descending=descending,
                                               sort=sort, asset_types=asset_types)
        except SortNotSupported as exc:
            raise _HttpError(400, str(exc)) from None
        return _envelope(items, total, size, page), len(items)

    def _custom_fields(self, path: str, query: dict, body: dict, knobs: Knobs):
        page, size, _order, _desc = self._paging(query, body, knobs)
        tail = path.rsplit("/", 1)[-1]
        if tail in _CF_FOR:
            entities = (_CF_FOR[tail],)
        else:
            strategy = _ci(body, "strategy")
            if strategy in (None, ""):
                entities = CUSTOM_FIELD_ENTITIES
            elif str(strategy).lower() in P.STRATEGIES:
                entities = (P.STRATEGIES[str(strategy).lower()],)
            else:
                raise _HttpError(400, f"Unknown custom field strategy '{strategy}'.")
        defs = [d for e in entities for d in self.district.custom_field_definitions(e)]
        items = defs[page * size:page * size + size]
        return _envelope(items, len(defs), size, page), len(items)

    def _asset_types(self):
        items = [{**t, "Scope": "All", "SiteId": self.district.site_id}
                 for t in self.district.asset_types()]
        return {"ItemCount": len(items), "Items": items}, len(items)

    def _item(self, entity: str, key: str):
        item = self.district.get(entity, key)
        if item is None:
            raise _HttpError(404, f"{KEY_FIELDS[entity]} {key} was not found.")
        return {"Item": item}, 1

    # -- responses ---------------------------------------------------------------------------
    def _error(self, h: _Handler, route: str, status: int, message: str,
               headers: dict | None = None) -> None:
        data = orjson.dumps({"StatusCode": status, "Message": message})
        self._send(h, route, status, data, headers=headers)

    def _page_key(self, h: _Handler, route: str, query: dict, body: dict, knobs: Knobs):
        """What a list page's bytes depend on; None for a request that fails anyway."""
        try:
            paging = self._paging(query, body, knobs)
            types = _asset_type_filter(body) if route == "assets" else None
        except _HttpError:
            return None
        return (route, paging, None if types is None else tuple(types), self._accepts_gzip(h),
                self.district.serving_state(route))

    @staticmethod
    def _accepts_gzip(h: _Handler) -> bool:
        return "gzip" in h.headers.get("Accept-Encoding", "").lower()

    def _encode(self, h: _Handler, data: bytes) -> tuple[bytes, bool]:
        """The body as sent: gzip-compressed when the client accepts it and it pays."""
        level = self.knobs.gzip_level
        if level > 0 and len(data) > 512 and self._accepts_gzip(h):
            return gzip.compress(data, compresslevel=level), True
        return data, False

    def _remember(self, key: tuple, entry: tuple) -> None:
        with self._lock:
            if self._page_cache_bytes + len(entry[0]) <= PAGE_CACHE_BYTES:
                self._page_cache[key] = entry
                self._page_cache_bytes += len(entry[0])

    def _send(self, h: _Handler, route: str, status: int, data: bytes, *, cut: bool = False,
              headers: dict | None = None) -> None:
        data, gz = self._encode(h, data)
        self._write(h, route, status, data, gz, cut=cut, headers=headers)

    def _write(self, h: _Handler, route: str, status: int, data: bytes, gz: bool, *,
               cut: bool = False, headers: dict | None = None) -> None:
        self._bump(route, str(status))
        h.send_response(status)
        h.send_header("Content-Type", JSON_TYPE)
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Pragma", "no-cache")
        h.send_header("Expires", "-1")
        h.send_header("Vary", "Accept-Encoding")
        if gz:
            h.send_header("Content-Encoding", "gzip")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        if cut:
            h.send_header("Connection", "close")
        h.end_headers()
        if cut:
            self._bump(route, "truncated")
            h.wfile.write(data[:max(1, len(data) * 2 // 5)])
            h.wfile.flush()
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        h.wfile.write(data)

    # -- control routes (no auth) ----------------------------------------------------------------
    def _control(self, h: _Handler, method: str, path: str, body_bytes: bytes) -> None:
        try:
            body = orjson.loads(body_bytes) if body_bytes.strip() else {}
        except orjson.JSONDecodeError:
            body = {}
        try:
            if path == "/_sim/stats" and method == "GET":
                out = self.stats()
            elif path == "/_sim/served" and method == "GET":
                out = self.served()
            elif path == "/_sim/counts" and method == "GET":
                out = {e: self.district.count(e) for e in KEY_FIELDS}
            elif path == "/_sim/reset" and method == "POST":
                self.reset_stats()
                out = {"ok": True}
            elif path == "/_sim/knobs" and method in ("GET", "POST"):
                if method == "POST":
                    self.configure(**body)
                out = asdict(self.knobs)
            elif path == "/_sim/drift" and method == "POST":
                entity = check_entity(body.get("entity", "assets"))
                op = body.get("op", "insert")
                n = body.get("keys") or int(body.get("n", 1))
                if op not in DRIFT_OPS:
                    raise ValueError(f"op must be one of {DRIFT_OPS}")
                out = {"keys": getattr(self.district, op)(entity, n)}
            else:
                out, status = {"Message": "unknown control route"}, 404
                return self._send(h, "_sim", status, orjson.dumps(out))
        except (TypeError, ValueError, KeyError) as exc:
            return self._send(h, "_sim", 400, orjson.dumps({"Message": str(exc)}))
        self._send(h, "_sim", 200, orjson.dumps(out))


class _HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _norm(path: str) -> str:
    path = re.sub(r"/{2,}", "/", path).lower()
    return path.rstrip("/") or "/"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _ci(d, key: str):
    """Case-insensitive dict lookup (IIQ binds request bodies leniently)."""
    if not isinstance(d, dict):
        return None
    if key in d:
        return d[key]
    for k, v in d.items():
        if isinstance(k, str) and k.lower() == key:
            return v
    return None


def _int(value, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _HttpError(400, f"The value '{value}' is not valid for {name}.") from None


def _direction(word) -> bool:
    """True for a descending direction word."""
    w = str(word).strip().lower()
    if w in ("desc", "descending", "1"):
        return True
    if w in ("asc", "ascending", "0", ""):
        return False
    raise _HttpError(400, f"The sort direction '{word}' is not valid.")


def _resolve_sort(entity: str, order: str | None) -> str | None:
    if not order:
        return None
    low = order.lower()
    key = KEY_FIELDS[entity]
    if low == key.lower():
        return key
    alias = SORT_ALIASES.get(entity, {}).get(low)
    if alias:
        return alias
    declared = ENTITIES.get(entity)
    if declared is not None:
        for col in declared.columns:
            if col.name.lower() == low:
                return ".".join(col.path)
    return order


def _asset_type_filter(body: dict):
    """Asset-type ids selected by ``Filters`` facets ``AssetType`` (None = every type).
    Same GroupIndex = OR; ``Negative`` excludes; unknown ids match nothing."""
    filters = _ci(body, "filters")
    if not isinstance(filters, list):
        return None
    include: set[str] = set()
    exclude: set[str] = set()
    seen = False
    for f in filters:
        if not isinstance(f, dict):
            continue
        facet = str(_ci(f, "facet") or "").lower()
        if facet != "assettype":
            continue
        value = _ci(f, "id") or _ci(f, "value")
        if not value:
            continue
        seen = True
        (exclude if _ci(f, "negative") else include).add(str(value).strip().lower())
    if not seen:
        return None
    every = {t[0] for t in P.ASSET_TYPES}
    chosen = include if include else set(every)
    return sorted(chosen - exclude)


def _envelope(items: list, total: int, size: int, page: int) -> dict:
    return {
        "ItemCount": len(items),
        "Items": items,
        "Paging": {"TotalRows": total, "PageCount": -(-total // size), "PageSize": size,
                   "PageIndex": page},
    }


def _server_name(route: str) -> str:
    r = route if route in KEY_FIELDS or route == "custom-fields" else "api"
    h = uuid.uuid5(uuid.NAMESPACE_DNS, r).hex
    return f"spark-{r}-{h[:10]}-{h[10:15]}"


# -- command line ---------------------------------------------------------------------------------
def build_parser(prog: str = "iiqsync fake-iiq") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Serve a generated school district over a fake Incident IQ API "
                    "(for demos and tests). Point [IncidentIQ] Instance at the printed URL.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="address to listen on")
    g.add_argument("--port", type=argtypes.port, default=8080, help="port (0 = any free port)")
    g.add_argument("--token", default=DEFAULT_TOKEN, help="the only Bearer token accepted")
    g.add_argument("--verbose", action="store_true", help="log every request to stderr")
    g = p.add_argument_group("district")
    g.add_argument("--seed", type=int, default=1, help="same seed, same district")
    for name, default in DEFAULT_SIZES.items():
        g.add_argument(f"--{name}", type=argtypes.count, default=default,
                       help=f"number of {name} (default %(default)s)")
    g.add_argument("--no-custom-fields", action="store_true",
                   help="define no custom fields on users, assets and tickets")
    g = p.add_argument_group("latency and limits")
    g.add_argument("--latency-ms", type=argtypes.at_least_zero, default=0.0, help="added to every response")
    g.add_argument("--item-latency-ms", type=argtypes.at_least_zero, default=0.0,
                   help="added per item served")
    g.add_argument("--jitter-ms", type=argtypes.at_least_zero, default=0.0,
                   help="random extra latency, up to")
    g.add_argument("--latency-total", action="store_true",
                   help="count the time spent building a response toward its latency "
                        "(the latency is then the response time, not an addition)")
    g.add_argument("--rate-limit", type=argtypes.at_least_zero, default=0.0,
                   help="requests per second across all clients before 429 (0 = unlimited)")
    g.add_argument("--retry-after", action=argparse.BooleanOptionalAction, default=True,
                   help="send a Retry-After header with 429 responses")
    g.add_argument("--retry-after-seconds", type=argtypes.at_least_zero, default=None,
                   help="fixed Retry-After value (default: until a slot frees, at least 1)")
    g.add_argument("--users-page-cap", type=argtypes.count, default=1000,
                   help="most users served per page whatever $s says (0 = no cap)")
    g.add_argument("--over-cap", choices=("clamp", "error"), default="clamp",
                   help="above the cap: serve the cap silently, or answer 400")
    g.add_argument("--default-page-size", type=argtypes.at_least_one, default=100,
                   help="page size without $s")
    g.add_argument("--cache-pages", action="store_true",
                   help="build each list page once and serve it again byte for byte while "
                        "nothing in it changes (for benchmarks on a shared machine; the "
                        "latency still applies; ignored while drift is on)")
    g = p.add_argument_group("faults")
    g.add_argument("--error-rate", type=argtypes.fraction, default=0.0, help="share of requests answered 503")
    g.add_argument("--timeout-rate", type=argtypes.fraction, default=0.0,
                   help="share of requests that hang for --timeout-seconds (then 504)")
    g.add_argument("--timeout-seconds", type=argtypes.at_least_zero, default=30.0,
                   help="how long a hang lasts")
    g.add_argument("--truncate-rate", type=argtypes.fraction, default=0.0,
                   help="share of 200 responses cut off mid-body")
    g.add_argument("--garbage-rate", type=argtypes.fraction, default=0.0,
                   help="share of 200 responses whose body is HTML instead of JSON")
    g.add_argument("--forbidden", action="store_true", help="answer 403 to every API request")
    g.add_argument("--fault-seed", type=int, default=0, help="seed for the fault dice")
    g = p.add_argument_group("drift while serving")
    g.add_argument("--drift-every", type=argtypes.count, default=0,
                   help="every N list requests, change rows of the requested list (0 = off)")
    g.add_argument("--drift-rows", type=argtypes.count, default=1, help="rows changed each time")
    g.add_argument("--drift-ops", type=argtypes.words_of(DRIFT_OPS), default="insert,delete,edit",
                   help="comma-separated drift operations to choose from")
    return p


def main(argv: list[str] | None = None) -> int:
    """``iiqsync fake-iiq``: serve a district until Ctrl-C."""
    args = build_parser().parse_args(argv)
    district = District(
        seed=args.seed, users=args.users, assets=args.assets, locations=args.locations,
        rooms=args.rooms, teams=args.teams, tickets=args.tickets,
        custom_fields={e: [] for e in CUSTOM_FIELD_ENTITIES} if args.no_custom_fields else None,
    )
    sim = SimulatorServer(
        district, token=args.token, host=args.host, port=args.port, verbose=args.verbose,
        latency_ms=args.latency_ms, item_latency_ms=args.item_latency_ms,
        latency_jitter_ms=args.jitter_ms, latency_total=args.latency_total,
        rate_limit=args.rate_limit,
        retry_after=args.retry_after, retry_after_seconds=args.retry_after_seconds,
        page_caps={"users": args.users_page_cap} if args.users_page_cap > 0 else {},
        over_cap=args.over_cap, default_page_size=args.default_page_size,
        cache_pages=args.cache_pages,
        error_rate=args.error_rate, timeout_rate=args.timeout_rate,
        timeout_seconds=args.timeout_seconds, truncate_rate=args.truncate_rate,
        garbage_rate=args.garbage_rate, forbidden=args.forbidden, fault_seed=args.fault_seed,
        drift_every=args.drift_every, drift_rows=args.drift_rows, drift_ops=args.drift_ops,
    )
    try:
        sim.start()
    except OSError as exc:
        print(f"fake-iiq: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    print(f"Fake IIQ ({district.site_name}) listening on {sim.url}", flush=True)
    print(f"Token: {sim.token}", flush=True)
    print(", ".join(f"{e}: {district.count(e)}" for e in KEY_FIELDS), flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    sim.serve_forever()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
