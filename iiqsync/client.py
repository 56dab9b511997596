"""The one HTTP client for IIQ: base URL, auth, paging parameters, retries, budget.

Every request goes through ``IIQClient.request``: it takes a slot from the shared
request budget, sends the call, and sorts the outcome into the error bases of
``errors``: 429/503/5xx/timeouts/cut-off bodies are retried here with jittered
exponential back-off (honouring ``Retry-After``); 401/403 stop at once, and so does
a run's first request answered by something that is not IIQ (a web site, or a
server that does not speak HTTP). The token is sent in a header and never appears in
a message.
"""

from __future__ import annotations

import errno
import logging
import random
import re
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import msgspec
import orjson

from . import metrics, requestslots
from .config import Settings, _mask_url
from .decode import page_decoder
from .entities import CUSTOM_FIELDS_ROUTE, Entity
from .errors import (
    ApiError,
    AuthError,
    CertificateError,
    FatalError,
    InstanceUnreachableError,
    NotHttpError,
    RateLimitedError,
    RetriableError,
    UnreachableError,
    WebPageError,
)

log = logging.getLogger(__name__)

BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
# A run's first request that cannot connect at all (the name does not resolve,
# nothing listens) is tried this many more times, a moment apart, and then reported
# as a wrong [IncidentIQ] Instance rather than retried for minutes like an outage.
FIRST_CONTACT_RETRIES = 3
FIRST_CONTACT_DELAY = 0.5
# Statuses that, with a web page for a body, say a server is not IIQ at all when they
# answer a run's first request: a web site's "not found", "method not allowed" (404,
# 405; http.server's 501 to a POST), a redirect elsewhere, nginx's 400 to plain HTTP
# on its HTTPS port. IIQ's API is ASP.NET: its own 404 or 405 for a route it lacks is
# JSON ({"Message": "No HTTP resource was found ..."}) and fails that entity only.
# What an IIQ behind a load balancer sends while it struggles (500, 502, 503, 504,
# 408, 429) is not among them, page or not: an outage, retried.
NOT_SERVED = {301, 302, 303, 307, 308, 400, 404, 405, 410, 501, 505}
WEB_SITE = "it answered like a web site, not the Incident IQ API"
# Faults of a connection that carried no HTTP answer: what an SSH, Redis or PostgreSQL
# port does with an HTTP request (sends its banner, closes, resets). Before any answer
# they are a ``NotHttpError``; once the status line and headers have come, a body cut
# short, retried like any broken connection.
NO_ANSWER = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


@dataclass
class Page:
    """One page of an IIQ list: its items and what the server said of the whole list."""

    index: int
    items: list
    total_rows: int | None
    page_count: int | None
    page_size: int | None


@dataclass
class FieldDefinition:
    """One custom field: its stable id, display name and editor type."""

    type_id: str
    name: str | None
    editor_type: int | None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _certificate_refused(exc: BaseException) -> bool:
    """Whether a failed connection is a TLS certificate that could not be verified."""
    seen = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _unreachable_reason(exc: BaseException, base_url: str) -> str:
    """Why a connection could not be made, in a few words: "name does not resolve",
    "connection refused (nothing listens on port 8443)", ..."""
    seen = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            if seen.errno == socket.EAI_AGAIN:
                return "its name could not be resolved (no answer from DNS)"
            return "name does not resolve"
        if isinstance(seen, ConnectionRefusedError):
            parts = urlsplit(base_url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            return f"connection refused (nothing listens on port {port})"
        if isinstance(seen, OSError) and seen.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "no route to the host"
        seen = seen.__cause__ or seen.__context__
    if "WRONG_VERSION_NUMBER" in str(exc) and base_url.startswith("https://"):
        # A TLS hello answered in plain text: the server there speaks HTTP.
        parts = urlsplit(base_url)
        return (f"it does not speak TLS (https); if it serves plain HTTP, write "
                f"http://{parts.netloc}")
    return str(exc).strip() or type(exc).__name__


def _no_answer_words(exc: httpx.TransportError, token: str) -> str:
    """What came back instead of HTTP, in a few words (the token masked, should a
    server echo the request)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" in text:
        return "it closed the connection without an HTTP response"
    if isinstance(exc, (httpx.ReadError, httpx.WriteError)):
        return "it reset the connection without an HTTP response"
    if token:
        text = text.replace(token, "***")
    return text[:120] + "…" if len(text) > 120 else text or type(exc).__name__


def _web_page(content: bytes) -> bool:
    """Whether a body that is not JSON is a page (HTML or text), as a web site or a
    proxy answers, rather than IIQ's JSON cut short or nothing at all."""
    head = content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return bool(head) and head not in b"{["


def _page_words(content: bytes, token: str) -> str:
    """A page in a few words: its title, or how its text starts (the token masked,
    should the page echo the request)."""
    text = content[:4096].decode("utf-8", "replace")
    title = re.search(r"<title[^>]*>(.*?)</title", text, re.IGNORECASE | re.DOTALL)
    words = " ".join(re.sub(r"<[^>]*>", " ", title.group(1) if title else text).split())
    if token:
        words = words.replace(token, "***")
    words = words[:80] + "…" if len(words) > 80 else words
    return f'titled "{words}"' if title else f'"{words}"'


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1``: the server's word if it gave
    one, else full-jitter exponential back-off."""
    if retry_after is not None:
        return retry_after + random.uniform(0, 1)
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt))


def _parse(content: bytes, decoder: msgspec.json.Decoder | None):
    if decoder is not None:
        try:
            return decoder.decode(content)
        except msgspec.ValidationError:
            pass  # an odd shape somewhere: parse it whole, flatten copes with it
    return orjson.loads(content)


class IIQClient:
    """Talks to one IIQ instance. Thread-safe (httpx.Client is)."""

    def __init__(self, settings: Settings, budget=None, sleep=time.sleep):
        from .ratelimit import make_budget

        self.settings = settings
        self.budget = budget if budget is not None else make_budget(settings)
        self.max_retries = settings.get("IncidentIQ", "MaxRetries")
        self._sleep = sleep
        headers = {
            "Authorization": f"Bearer {settings.token}",
            "Client": "ApiClient",
            "Accept": "application/json",
            "Accept-Encoding": "gzip",
            "User-Agent": "iiqsync",
        }
        if settings.get("IncidentIQ", "SiteId"):
            headers["SiteId"] = settings.get("IncidentIQ", "SiteId")
        bundle = settings.get("IncidentIQ", "CaBundle")
        verify = (ssl.create_default_context(cafile=bundle) if bundle
                  else settings.get("IncidentIQ", "VerifyTls"))
        self._http = httpx.Client(
            base_url=settings.base_url,
            headers=headers,
            timeout=httpx.Timeout(settings.timeout, connect=min(settings.timeout, 15.0)),
            verify=verify,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self.stats = {"requests": 0, "retries": 0, "rate_limited": 0}

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- one request, with retries --------------------------------------------
    def request(self, method: str, path: str, params: dict | None = None,
                body: dict | None = None, decoder: msgspec.json.Decoder | None = None,
                first_contact: bool = False) -> dict:
        """Send one call and return the parsed JSON envelope (with ``decoder``, only
        what it keeps of it; the whole of it when the body does not fit it).

        ``first_contact``: the first request of a run. If IIQ cannot be reached at
        all, answers with a web page instead of JSON, or does not answer with HTTP,
        it is tried ``FIRST_CONTACT_RETRIES`` more times, briefly, and then
        ``InstanceUnreachableError`` names the setting; a 404, 405 or 501 (see
        ``NOT_SERVED``) with a web page raises it at once. Once IIQ has answered (or
        without ``first_contact``) a fault is an outage, retried with back-off."""
        attempt = 0
        quick = min(FIRST_CONTACT_RETRIES, self.max_retries)
        while True:
            try:
                return self._once(method, path, params, body, decoder, first_contact)
            except RetriableError as exc:
                error = exc
            if first_contact and isinstance(error, (UnreachableError, WebPageError, NotHttpError)):
                # A page may be IIQ's own "down for maintenance" for a moment: only
                # the same page every time says the instance is a web site.
                if attempt >= quick and isinstance(error, WebPageError):
                    raise InstanceUnreachableError(
                        f"{_mask_url(self.settings.base_url)} answered {method} {path} with "
                        f"a web page, not JSON ({error.page}) — check [IncidentIQ] Instance "
                        f"(env IIQSYNC_INCIDENTIQ_INSTANCE): {WEB_SITE}") from None
                if attempt >= quick and isinstance(error, NotHttpError):
                    raise InstanceUnreachableError(
                        f"{_mask_url(self.settings.base_url)} answered {method} {path}, but "
                        f"not with HTTP ({error.reason}) — check [IncidentIQ] Instance "
                        "(env IIQSYNC_INCIDENTIQ_INSTANCE): some other server listens there, "
                        "not the Incident IQ API") from None
                if attempt >= quick:
                    raise InstanceUnreachableError(
                        f"cannot reach IIQ at {_mask_url(self.settings.base_url)}: "
                        f"{error.reason} — check [IncidentIQ] Instance") from None
                attempt += 1
                log.info("IIQ %s %s: %s; retry %d/%d", method, path, error, attempt, quick)
                self._sleep(FIRST_CONTACT_DELAY * attempt)
                continue
            # The host was reached (a timeout, an error status): from here on a fault
            # is an outage's, retried with back-off.
            first_contact = False
            if attempt >= self.max_retries:
                raise error
            delay = backoff(attempt, error.retry_after)
            if isinstance(error, RateLimitedError):
                self.stats["rate_limited"] += 1
                # Tell every worker to pause, not only this one.
                self.budget.pause(error.retry_after if error.retry_after is not None else delay)
            self.stats["retries"] += 1
            log.warning("IIQ %s %s: %s; retry %d/%d in %.1fs", method, path, error,
                        attempt + 1, self.max_retries, delay)
            self._sleep(delay)
            attempt += 1

    def _once(self, method, path, params, body, decoder=None, first_contact=False) -> dict:
        self.budget.acquire()
        self.stats["requests"] += 1
        where = f"{method} {path}"
        answered = False  # a status line and headers came back
        try:
            # A page task's request holds one of the worker's [Celery] RequestsInFlight
            # permits while on the wire, and not while its answer is decoded.
            with requestslots.on_the_wire(), self._http.stream(
                    method, path, params=params,
                    content=orjson.dumps(body) if body is not None else None,
                    headers={"Content-Type": "application/json"} if body is not None else None,
            ) as response:
                answered = True
                content = response.read()  # the whole body; a cut-off body raises here
        except httpx.TimeoutException:
            metrics.count_request("timeout")
            raise RetriableError(f"{where} timed out after {self.settings.timeout:g}s") from None
        except httpx.ConnectError as exc:
            metrics.count_request("connection")
            if _certificate_refused(exc):
                # Retrying cannot make a certificate trusted.
                raise CertificateError(
                    f"{where}: the TLS certificate of {self.settings.base_url} could not be "
                    f"verified ({exc}); if IIQ is reached through a proxy or a private CA, set "
                    "[IncidentIQ] CaBundle to that CA's certificate file") from None
            raise UnreachableError(f"{where}: cannot connect to {self.settings.base_url} ({exc}); "
                                   "check [IncidentIQ] Instance",
                                   _unreachable_reason(exc, self.settings.base_url)) from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.CloseError,
                httpx.ProxyError, httpx.DecodingError) as exc:
            metrics.count_request("connection")
            broke = f"{where}: connection broke ({type(exc).__name__})"
            if isinstance(exc, NO_ANSWER) and not answered:
                raise NotHttpError(broke, _no_answer_words(exc, self.settings.token)) from None
            raise RetriableError(broke) from None
        except httpx.HTTPError as exc:
            # Its text may quote the request's headers, token included: name it only.
            raise FatalError(f"{where}: the request could not be sent ({type(exc).__name__}); "
                             "check [IncidentIQ] Instance and Token") from None
        status = response.status_code
        metrics.count_request(status)
        if status in (401, 403):
            raise AuthError(
                f"IIQ refused the token ({status} {response.reason_phrase}) for {where}: "
                "check [IncidentIQ] Token (env IIQSYNC_INCIDENTIQ_TOKEN) and that its user "
                "is an administrator")
        if status == 429 or (status == 503 and "Retry-After" in response.headers):
            raise RateLimitedError(f"{where}: IIQ is throttling ({status})", _retry_after(response))
        if first_contact and status in NOT_SERVED and _web_page(content):
            # Not IIQ at all: said at once, and the sync stops (no retry changes it).
            page = _page_words(content, self.settings.token)
            moved = response.headers.get("Location") if 300 <= status < 400 else None
            raise InstanceUnreachableError(
                f"{_mask_url(self.settings.base_url)} answered {where} with {status} "
                f"{response.reason_phrase} and a web page ({page})"
                + (f", which sends it to {_mask_url(moved)}" if moved else "")
                + f" — check [IncidentIQ] Instance (env IIQSYNC_INCIDENTIQ_INSTANCE): {WEB_SITE}")
        if status >= 500 or status == 408:
            raise RetriableError(f"{where}: server error {status}", _retry_after(response))
        if status != 200:
            raise ApiError(f"{where}: unexpected HTTP {status} {response.reason_phrase}")
        try:
            data = _parse(content, decoder)
        except (orjson.JSONDecodeError, msgspec.DecodeError):
            if _web_page(content):
                page = _page_words(content, self.settings.token)
                raise WebPageError(f"{where}: the response is a web page, not JSON "
                                   f"({len(content)} bytes, {page})", page) from None
            raise RetriableError(f"{where}: the response is not JSON "
                                 f"({len(content)} bytes, starts {content[:40]!r})") from None
        if not isinstance(data, dict):
            raise RetriableError(f"{where}: the response is not a JSON object")
        return data

    # -- lists ----------------------------------------------------------------
    def list_params(self, entity: Entity, page: int, page_size: int) -> dict:
        return {"$p": page, "$s": page_size, "$o": entity.key, "$d": entity.sort_direction,
                **entity.extra_query}

    def list_body(self, entity: Entity) -> dict | None:
        if entity.method != "POST":
            return None
        body = dict(entity.body or {})
        asset_types = self.settings.get("IncidentIQ", "AssetTypes")
        if entity.name == "assets" and asset_types:
            body["Filters"] = [{"Facet": "AssetType", "Id": t, "GroupIndex": 0}
                               for t in asset_types]
        return body

    def page_size_for(self, entity: Entity) -> int:
        size = self.settings.page_size
        return min(size, entity.max_page_size) if entity.max_page_size else size

    def fetch_page(self, entity: Entity, page: int, page_size: int | None = None,
                   first_contact: bool = False) -> Page:
        """One page of ``entity``, checked for the shape the sync relies on.
        ``first_contact``: see ``request``."""
        page_size = page_size or self.page_size_for(entity)
        data = self.request(entity.method, entity.route,
                            self.list_params(entity, page, page_size), self.list_body(entity),
                            page_decoder(entity), first_contact=first_contact)
        items = data.get("Items")
        if not isinstance(items, list):
            raise RetriableError(f"{entity.route} page {page}: the response has no Items list")
        paging = data.get("Paging") if isinstance(data.get("Paging"), dict) else {}
        total = paging.get("TotalRows", paging.get("Total"))
        page_count = paging.get("PageCount")
        if total is not None and page_count is None:
            page_count = -(-int(total) // page_size)
        if page_count is not None and page < page_count - 1 and len(items) < page_size:
            # IIQ quietly caps some lists (users at 1000): a short middle page loses rows.
            raise ApiError(
                f"{entity.route} page {page}: IIQ returned {len(items)} items where "
                f"{page_size} were asked and more pages follow; lower [General] PageSize")
        return Page(page, items, None if total is None else int(total),
                    None if page_count is None else int(page_count), page_size)

    def custom_field_definitions(self, entity: Entity,
                                 first_contact: bool = False) -> list[FieldDefinition]:
        """The entity's custom fields (ids, names, editor types). ``first_contact``:
        see ``request``."""
        data = self.request("POST", CUSTOM_FIELDS_ROUTE, {"$p": 0, "$s": 999999},
                            {"SiteScope": "Aggregate", "Strategy": entity.custom_fields.strategy},
                            first_contact=first_contact)
        items = data.get("Items")
        if not isinstance(items, list):
            raise RetriableError(f"{CUSTOM_FIELDS_ROUTE}: the response has no Items list")
        out: dict[str, FieldDefinition] = {}
        for item in items:
            if not isinstance(item, dict):
                continue
            cft = item.get("CustomFieldType") if isinstance(item.get("CustomFieldType"), dict) else {}
            type_id = item.get("CustomFieldTypeId") or cft.get("CustomFieldTypeId")
            if not isinstance(type_id, str) or not type_id.strip():
                continue
            type_id = type_id.strip().lower()
            editor = item.get("EditorTypeId", cft.get("EditorType"))
            out.setdefault(type_id, FieldDefinition(
                type_id, cft.get("Name") if isinstance(cft.get("Name"), str) else None,
                editor if isinstance(editor, int) else None))
        return list(out.values())
