"""Settings: read once from config.ini and the environment, validated all at once.

A ``config.ini`` written for the old single-process tool works unchanged. Every key
can be overridden by an environment variable ``IIQSYNC_<SECTION>_<KEY>`` so that the
same image runs from docker-compose and a Kubernetes Secret. Every problem found is
reported together, each naming its key, and the token is never part of a message.
"""

from __future__ import annotations

import codecs
import configparser
import difflib
import importlib.util
import logging
import math
import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .entities import ENTITIES
from .errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_CONNECTION_STRING = "sqlite:///iiqsync.db"
CONFIG_ENV = "IIQSYNC_CONFIG"


@dataclass(frozen=True)
class Key:
    section: str
    name: str
    kind: str  # str, int, bool, float, list
    default: object = None
    help: str = ""
    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None

    @property
    def env(self) -> str:
        return f"IIQSYNC_{self.section.upper()}_{self.name.upper()}"


def _table_keys() -> list[Key]:
    keys = []
    for entity in ENTITIES.values():
        keys.append(Key("Tables", entity.table_key, "str", entity.default_table,
                        f"table for {entity.name}"))
        if entity.custom_fields:
            cf = entity.custom_fields
            keys.append(Key("Tables", cf.table_key, "str", cf.default_table,
                            f"table for {entity.name} custom fields"))
    return keys


def _schedule_keys() -> list[Key]:
    return [
        Key("Schedule", e.table_key, "str", None,
            f"when beat syncs {e.name}: a crontab ('0 2 * * *') or seconds; default [Schedule] Default")
        for e in ENTITIES.values()
    ]


KEYS: tuple[Key, ...] = (
    Key("Database", "ConnectionString", "str", DEFAULT_CONNECTION_STRING,
        "SQLAlchemy URL of the target database", secret=True),
    Key("Database", "Schema", "str", None, "schema of the tables (blank: the default schema)"),
    Key("Database", "StringLength", "int", 255,
        "length of bounded text columns", minimum=1, maximum=4000),
    Key("Database", "Database", "str", None, "ignored (the old tool's key, kept so its config files load)"),
    *_table_keys(),
    Key("IncidentIQ", "Instance", "str", None,
        "district host (cps.incidentiq.com) or full URL with scheme and port"),
    Key("IncidentIQ", "Token", "str", None, "API bearer token", secret=True),
    Key("IncidentIQ", "SiteId", "str", None, "optional SiteId header"),
    Key("IncidentIQ", "RequestsPerSecond", "float", 10.0,
        "request budget shared by every worker for this instance", minimum=0.1),
    Key("IncidentIQ", "VerifyTls", "bool", True, "verify the server's TLS certificate"),
    Key("IncidentIQ", "CaBundle", "str", None, "path of a CA bundle to trust"),
    Key("IncidentIQ", "AssetTypes", "list", (),
        "asset type ids to sync, comma separated (blank: every type)"),
    Key("IncidentIQ", "MaxRetries", "int", 6, "attempts per request on 429/5xx/timeouts",
        minimum=0, maximum=50),
    Key("General", "PageSize", "int", 1000, "items per API page (at most, with FillRounds)",
        minimum=1, maximum=1000),
    Key("General", "FillRounds", "bool", True,
        "make pages a little smaller so the last round of page tasks fills every worker "
        "slot (at most 25 % more requests); no: every page holds PageSize items"),
    Key("General", "Threads", "int", 8,
        "parallel page fetches in --local mode; worker concurrency in the container images",
        minimum=1,
        maximum=256),
    Key("General", "Timeout", "float", 100.0, "seconds before an API request times out",
        minimum=1, maximum=86400),
    Key("Celery", "BrokerUrl", "str", None, "Redis URL of the broker (blank: run in-process)",
        secret=True),
    Key("Celery", "ResultBackend", "str", None, "result backend URL (default: the broker)",
        secret=True),
    Key("Celery", "RequestsInFlight", "int", 0,
        "page requests one worker may have waiting on IIQ at once (0: one per pool "
        "process). Below the pool size, the spare processes parse and stage pages "
        "while that many requests wait: e.g. -c 10 with 8", minimum=0, maximum=256),
    Key("Run", "LockMinutes", "int", 360,
        "how long a run may hold its entity's lock before another may take it", minimum=1),
    Key("Run", "MaxPageDeliveries", "int", 3,
        "times a page task may be delivered before the run fails", minimum=1, maximum=20),
    Key("Run", "TaskRetries", "int", 8,
        "times a task is retried after a passing fault (IIQ or the database unreachable) "
        "before its run fails", minimum=0, maximum=50),
    Key("Run", "DriftRounds", "int", 2,
        "extra passes over the pages when rows moved during the run", minimum=0, maximum=10),
    Key("Schedule", "Default", "str", "0 2 * * *", "when beat syncs each entity"),
    *_schedule_keys(),
    Key("Metrics", "Port", "int", 9808, "Prometheus exporter port on workers (0: off)",
        minimum=0, maximum=65535),
)

KEYS_BY_SECTION: dict[str, dict[str, Key]] = {}
for _k in KEYS:
    KEYS_BY_SECTION.setdefault(_k.section.lower(), {})[_k.name.lower()] = _k
# Section names as the README writes them, by lower case.
SECTION_NAMES: dict[str, str] = {k.section.lower(): k.section for k in KEYS}

ENV_NAMES: frozenset[str] = frozenset(k.env for k in KEYS)
# Variables that are not settings but belong to iiqsync (checked so that a typo in a
# setting's name is reported, not ignored).
OTHER_ENV = frozenset({"IIQSYNC_CONFIG", "IIQSYNC_HEARTBEAT_FILE"})


@dataclass(frozen=True)
class Settings:
    """Validated settings. ``values`` maps (section, key) to the typed value."""

    values: dict = field(repr=False)
    source: str | None = None

    def get(self, section: str, name: str):
        return self.values[(section.lower(), name.lower())]

    # The settings the code asks for most, by name.
    @property
    def connection_string(self) -> str:
        return self.get("Database", "ConnectionString")

    @property
    def schema(self) -> str | None:
        return self.get("Database", "Schema")

    @property
    def string_length(self) -> int:
        return self.get("Database", "StringLength")

    @property
    def base_url(self) -> str | None:
        return instance_url(self.get("IncidentIQ", "Instance"))

    @property
    def token(self) -> str | None:
        return self.get("IncidentIQ", "Token")

    @property
    def page_size(self) -> int:
        return self.get("General", "PageSize")

    @property
    def threads(self) -> int:
        return self.get("General", "Threads")

    @property
    def timeout(self) -> float:
        return self.get("General", "Timeout")

    @property
    def broker_url(self) -> str | None:
        return self.get("Celery", "BrokerUrl")

    @property
    def result_backend(self) -> str | None:
        return self.get("Celery", "ResultBackend") or self.broker_url

    def table_name(self, table_key: str) -> str:
        return self.get("Tables", table_key)

    def replace(self, **overrides) -> Settings:
        """A copy with (section, key) values replaced, e.g. replace(General_PageSize=10)."""
        values = dict(self.values)
        for dotted, value in overrides.items():
            section, name = dotted.split("_", 1)
            values[(section.lower(), name.lower())] = value
        return Settings(values, self.source)

    def redacted(self) -> dict[str, object]:
        """Every setting by ``[Section] Key`` with secrets masked, for display."""
        out = {}
        for k in KEYS:
            value = self.values[(k.section.lower(), k.name.lower())]
            if k.secret and value:
                value = _mask_url(value) if "://" in str(value) else "********"
            elif k.kind == "list":
                value = ", ".join(value)  # as the user writes it; empty when none
            out[f"[{k.section}] {k.name}"] = value
        return out


_ODBC_SECRET = re.compile(r"((?:PWD|Password)(?:=|%3D))((?:(?!%3B)[^;&])*)", re.I)


def _mask_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL after all (an unclosed [): show none of it past the scheme
        return url.split("://", 1)[0] + "://********"
    if not parts.password and not _ODBC_SECRET.search(parts.query):
        return url
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":********@")
        parts = parts._replace(netloc=netloc)
    if parts.query:
        # odbc_connect strings carry PWD=... inside the query string.
        parts = parts._replace(query=_ODBC_SECRET.sub(r"\1********", parts.query))
    return parts.geturl()


def instance_url(instance: str | None) -> str | None:
    """``cps.incidentiq.com`` → ``https://cps.incidentiq.com``; full URLs kept as given."""
    if not instance:
        return None
    value = instance.strip().rstrip("/")
    if "://" not in value:
        value = "https://" + value
    for suffix in ("/api/v1.0", "/api"):
        if value.lower().endswith(suffix):
            value = value[: -len(suffix)]
    return value


_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def _strip_quotes(raw: str) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1].strip()
    return value


def _convert(key: Key, raw: str, where: str, problems: list[str]):
    value = _strip_quotes(raw)
    if value == "" and key.section == "Database" and key.name == "ConnectionString":
        # Blank is where a value went missing (an unset variable in a template), and
        # the default would sync into a local file nobody reads: say so instead.
        problems.append(f"{where} is empty: give the database's URL, or leave the key out "
                        f"for the default {DEFAULT_CONNECTION_STRING}")
        return key.default
    if value == "":
        return key.default
    try:
        if key.kind == "str":
            return value
        if key.kind == "list":
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if key.kind == "bool":
            lowered = value.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        number = int(value) if key.kind == "int" else float(value)
    except ValueError as exc:
        shown = "(hidden)" if key.secret else repr(value)
        problems.append(f"{where}: {shown} is not a valid {key.kind} ({exc})")
        return key.default
    if not math.isfinite(number):
        # float() takes nan and inf (and 1e999): no timeout or rate can be either.
        problems.append(f"{where}: {value!r} is not a finite number" + _range(key))
        return key.default
    if key.minimum is not None and number < key.minimum:
        problems.append(f"{where}: {number} is below the minimum {key.minimum:g}")
    elif key.maximum is not None and number > key.maximum:
        problems.append(f"{where}: {number} is above the maximum {key.maximum:g}"
                        + _max_hint(key))
    return number


def _range(key: Key) -> str:
    """`` (from 1 to 86400)``: what the key takes, for a value that is no number at all."""
    if key.minimum is not None and key.maximum is not None:
        return f" (from {key.minimum:g} to {key.maximum:g})"
    if key.minimum is not None:
        return f" (at least {key.minimum:g})"
    return ""


def _max_hint(key: Key) -> str:
    if (key.section, key.name) == ("General", "PageSize"):
        return " (IIQ serves at most 1000 users per page; larger pages are cut short)"
    return ""


class _Parser(configparser.ConfigParser):
    """Reads keys case-insensitively (as configparser does) and remembers how each
    was first spelled, so that a message shows the key as the user wrote it."""

    def __init__(self):
        # Raw values: the old tool's %-interpolation is applied per value (_interpolated).
        super().__init__(interpolation=None, inline_comment_prefixes=(";", "#"))
        self.spelling: dict[str, str] = {}

    def optionxform(self, optionstr: str) -> str:
        lowered = optionstr.lower()
        self.spelling.setdefault(lowered, optionstr)
        return lowered


_OLD_TOOL_INTERPOLATION = configparser.BasicInterpolation()


def _interpolated(parser: _Parser, section: str, name: str, value: str) -> str:
    """The value as the old tool read it (ConfigParser's default interpolation: ``%%``
    is ``%``, ``%(key)s`` another key of the section or of [DEFAULT]); the value as
    written when that fails, as it does on a lone ``%`` (``p%40ss``) written for iiqsync."""
    if "%" not in value:
        return value
    try:
        return _OLD_TOOL_INTERPOLATION.before_get(
            parser, section, name, value, dict(parser.items(section, raw=True)))
    except configparser.InterpolationError:
        return value


# ConfigParser's own patterns: a [Section] header, a %(key)s reference.
_HEADER = re.compile(r"\[(?P<header>.+)\]")
_REFERENCE = re.compile(r"%\(([^)]+)\)s")


def _read_text(path: Path) -> str:
    """The file's text: UTF-8 (with or without BOM), or UTF-16/32 with a BOM (what
    Windows PowerShell 5's ``>`` and Notepad's "Unicode" write)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path} cannot be read: {exc.strerror}"]) from None
    encoding = "utf-8-sig"
    for bom, name in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                      (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            encoding = name
            break
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        if encoding != "utf-8-sig":
            label = encoding.upper()
            raise ConfigError([f"{path} starts with a {label} byte-order mark but is not "
                               f"valid {label}: save the file as UTF-8"]) from None
        line = data[:exc.start].count(b"\n") + 1
        try:
            # Windows' "ANSI" code page for Western languages: what the old tool read
            # a config.ini saved by Notepad as on a Windows server.
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            raise ConfigError([f"{path} line {line} is not UTF-8 (byte "
                               f"0x{data[exc.start]:02x}): save the file as UTF-8"]) from None
        log.warning("%s line %d is not UTF-8 (byte 0x%02x): read as Windows-1252, as the old "
                    "tool read it on Windows; save the file as UTF-8 to be sure", path, line,
                    data[exc.start])
    # Lines end as open() would end them, so line numbers are the editor's.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise ConfigError([f"{path} line {line} holds a NUL byte (UTF-16 without a "
                           "byte-order mark?): save the file as UTF-8"])
    return text


def _line_of(text: str, section: str, option: str | None = None,
             before: int | None = None) -> int | None:
    """The first line holding ``[section]`` (or ``option`` in it), for messages only."""
    current = None
    for lineno, line in enumerate(text.split("\n"), 1):
        if before is not None and lineno >= before:
            break
        stripped = line.strip()
        header = _HEADER.match(stripped)
        if header:
            current = header.group("header")
            if option is None and current == section:
                return lineno
        elif (option is not None and current == section and line[:1] not in (" ", "\t")
              and re.split(r"[:=]", stripped, maxsplit=1)[0].strip().lower() == option):
            return lineno
    return None


def _lines(first: int | None, second: int) -> str:
    return f"lines {first} and {second}" if first else f"again on line {second}"


def _parse_problem(exc: configparser.Error, path: Path, text: str, parser: _Parser) -> str:
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return (f"{path}: cannot be parsed: line {exc.lineno}: a setting comes before the "
                "first [Section] header")
    if isinstance(exc, configparser.ParsingError):
        lines = ", ".join(str(lineno) for lineno, _ in exc.errors)
        return f"{path}: cannot be parsed: line(s) {lines}: not of the form 'Key: value'"
    if isinstance(exc, configparser.DuplicateOptionError):
        key = KEYS_BY_SECTION.get(exc.section.lower(), {}).get(exc.option)
        shown = (f"[{key.section}] {key.name}" if key else
                 f"[{exc.section}] {parser.spelling.get(exc.option, exc.option)}")
        first = _line_of(text, exc.section, exc.option, before=exc.lineno)
        return f"{path}: {shown} is given twice ({_lines(first, exc.lineno)}); keep one"
    if isinstance(exc, configparser.DuplicateSectionError):
        first = _line_of(text, exc.section, before=exc.lineno)
        return (f"{path}: section [{exc.section}] is given twice ({_lines(first, exc.lineno)}); "
                "put its keys under one")
    return f"{path}: cannot be parsed: {type(exc).__name__}"


def _suggest(name: str, choices) -> str:
    """`` (did you mean 'Token'?)`` for a near miss, spelled as in ``choices``."""
    by_lower = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


def _read_file(path: Path, problems: list[str],
               raw: dict[tuple[str, str], tuple[str, str]]) -> None:
    """Put the file's settings into ``raw``; unknown sections and keys are problems."""
    text = _read_text(path)
    parser = _Parser()
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        # configparser quotes the offending line, which may hold the token: say where only.
        raise ConfigError([_parse_problem(exc, path, text, parser)]) from None
    referenced = {parser.optionxform(m) for m in _REFERENCE.findall(text)}
    defaults = parser.defaults()
    for name in defaults:
        if name not in referenced:
            problems.append(f"{path}: [{parser.default_section}] {parser.spelling.get(name, name)} "
                            "is not used by a %(name)s reference (put each setting in its section)")
    seen: dict[str, str] = {}
    for section in parser.sections():
        known = KEYS_BY_SECTION.get(section.lower())
        if known is None:
            problems.append(f"{path}: section [{section}] is not known"
                            + _suggest(section, SECTION_NAMES.values()))
            continue
        if section.lower() in seen:
            # configparser tells [General] from [general]; iiqsync would let one hide the other.
            first, again = seen[section.lower()], section
            problems.append(f"{path}: section [{SECTION_NAMES[section.lower()]}] is given twice "
                            f"(lines {_line_of(text, first)} and {_line_of(text, again)}); "
                            "put its keys under one")
            continue
        seen[section.lower()] = section
        for name, value in parser.items(section, raw=True):
            if name not in known:
                if name in referenced or (name in defaults and defaults[name] == value):
                    continue  # a value for %(name)s references, as the old tool allowed
                problems.append(f"{path}: [{section}] {parser.spelling.get(name, name)} is not a "
                                "known key" + _suggest(name, [k.name for k in known.values()]))
                continue
            raw[(section.lower(), name)] = (_interpolated(parser, section, name, value),
                                            f"[{known[name].section}] {known[name].name}")


# What Kubernetes puts in every pod for each Service in its namespace (unless the pod
# says enableServiceLinks: false): a Service named iiqsync-flower gives
# IIQSYNC_FLOWER_SERVICE_HOST, IIQSYNC_FLOWER_PORT=tcp://..., IIQSYNC_FLOWER_PORT_5555_TCP_ADDR
# and more. They are not settings, and no setting's name has their shape.
_SERVICE_LINK = re.compile(r"^[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT|"
                           r"PORT_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)$")


def load(path: str | os.PathLike | None = None, env: dict | None = None,
         require_iiq: bool = True) -> Settings:
    """Read the config file (if any) and the environment; raise ConfigError listing
    every problem. ``require_iiq`` demands an instance and a token."""
    env = os.environ if env is None else env
    problems: list[str] = []
    raw: dict[tuple[str, str], tuple[str, str]] = {}  # (section, key) -> (text, where)

    explicit = path is not None or bool(env.get(CONFIG_ENV))
    file_path = Path(path or env.get(CONFIG_ENV) or "config.ini")
    source = None
    if file_path.is_dir():
        # A config mounted as a directory (a Kubernetes ConfigMap, say) is easy to
        # pass by mistake; reading on without it would sync with the defaults.
        raise ConfigError([f"{file_path} is a directory, not a config file (point at the "
                           f"config.ini inside it)"])
    if file_path.exists():
        _read_file(file_path, problems, raw)
        source = str(file_path)
    elif explicit:
        raise ConfigError([f"config file {file_path} does not exist"])

    for var, value in env.items():
        if _SERVICE_LINK.match(var) and re.match(r"^(tcp|udp|sctp)://", value):
            continue  # a Service named like a setting (iiqsync-metrics: IIQSYNC_METRICS_PORT)
        if var in ENV_NAMES:  # taken as it is: no %-interpolation
            key = next(k for k in KEYS if k.env == var)
            raw[(key.section.lower(), key.name.lower())] = (
                value, f"[{key.section}] {key.name} (env {var})")
        elif var.startswith("IIQSYNC_") and var not in OTHER_ENV and not var.startswith(
                "IIQSYNC_TEST_") and not _SERVICE_LINK.match(var):
            problems.append(f"{var} is not a known setting" + _suggest(var, ENV_NAMES))

    values = {}
    for key in KEYS:
        ident = (key.section.lower(), key.name.lower())
        if ident in raw:
            text, where = raw[ident]
            values[ident] = _convert(key, text, where, problems)
        else:
            values[ident] = key.default

    settings = Settings(values, source)
    _check(settings, problems, require_iiq, {ident: where for ident, (_, where) in raw.items()})
    if problems:
        raise ConfigError(problems)
    return settings


def _check(settings: Settings, problems: list[str], require_iiq: bool,
           where: dict[tuple[str, str], str]) -> None:
    """Problems of the values together; ``where`` tells where each value was given."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(settings.connection_string)
        url.port  # noqa: B018  (a bad port raises here)
    except (ArgumentError, ValueError):
        problems.append("[Database] ConnectionString is not a SQLAlchemy URL "
                        "(expected e.g. postgresql+psycopg2://user:pass@host/db)")
    else:
        unknown = _unknown_driver(url)
        if unknown:
            problems.append(unknown)
        elif _in_memory_sqlite(url):
            problems.append(
                f"[Database] ConnectionString {_mask_url(settings.connection_string)} is an "
                "in-memory SQLite database: every connection, and every worker process, "
                "would get its own empty one, so nothing could be kept; give a file "
                "path instead, e.g. sqlite:///iiqsync.db")
    for k in ("BrokerUrl", "ResultBackend"):
        url = settings.get("Celery", k)
        if url and "://" not in url:
            problems.append(f"[Celery] {k} is not a URL (expected redis://host:6379/0)")
    names: dict[str, str] = {}
    for k in KEYS:
        if k.section == "Tables":
            name = settings.get("Tables", k.name)
            if name.lower() in names:
                problems.append(f"[Tables] {k.name} uses the same table as "
                                f"[Tables] {names[name.lower()]}: {name!r}")
            names[name.lower()] = k.name
            if name.lower().startswith("iiqsync_") or name.lower().startswith("iiqs_"):
                problems.append(f"[Tables] {k.name}: names starting with iiqsync_/iiqs_ "
                                "are reserved for iiqsync's own tables")
    for k in KEYS:
        if k.section == "Schedule":
            spec = settings.get("Schedule", k.name)
            if spec is not None:
                try:
                    parse_schedule(spec)
                except ValueError as exc:
                    problems.append(f"[Schedule] {k.name}: {exc}")
    bundle = settings.get("IncidentIQ", "CaBundle")
    if bundle and not Path(bundle).exists():
        problems.append(f"[IncidentIQ] CaBundle: file {bundle} does not exist")
    elif bundle:
        try:
            ssl.create_default_context(cafile=bundle)
        except (ssl.SSLError, OSError, ValueError):
            problems.append(f"[IncidentIQ] CaBundle: file {bundle} holds no CA certificate "
                            "(expected PEM: -----BEGIN CERTIFICATE-----)")
    odd_types = [t for t in settings.get("IncidentIQ", "AssetTypes") if not _GUID.match(t)]
    if odd_types:
        # A mistyped id would match no asset: the run would succeed with an empty table.
        shown = ", ".join(repr(t) for t in odd_types[:3])
        problems.append(f"[IncidentIQ] AssetTypes: {shown} is not an asset type id (a GUID "
                        "like 00000000-0000-0000-0000-000000000000, as IIQ's Asset Types "
                        "list shows); env IIQSYNC_INCIDENTIQ_ASSETTYPES")
    token = settings.token
    if token and (not token.isascii() or not token.isprintable()
                  or any(c.isspace() for c in token)):
        # The value is never shown: it is a secret, and may be only half pasted.
        problems.append("[IncidentIQ] Token holds a space, line break or non-ASCII character, "
                        "which no IIQ token has; copy it again (just the token, without "
                        "'Bearer')")
    if not require_iiq:
        return
    instance = settings.get("IncidentIQ", "Instance")
    if not instance:
        problems.append("[IncidentIQ] Instance is missing (e.g. cps.incidentiq.com); "
                        "env IIQSYNC_INCIDENTIQ_INSTANCE")
    else:
        problem = _instance_problem(settings.base_url)
        if problem:
            given = where.get(("incidentiq", "instance"), "[IncidentIQ] Instance")
            problems.append(f"{given}: {instance.strip()!r} {problem}")
    if not settings.token:
        problems.append("[IncidentIQ] Token is missing; env IIQSYNC_INCIDENTIQ_TOKEN")


def _instance_problem(base_url: str) -> str | None:
    """What is wrong with the instance's URL, or None: caught here, not by every
    entity's first request."""
    try:
        parts = urlsplit(base_url)
    except ValueError as exc:  # e.g. an unclosed [ of an IPv6 address
        return f"is not a URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return "is not a host name or an http(s) URL (e.g. cps.incidentiq.com)"
    if not parts.hostname or any(c.isspace() for c in parts.hostname):
        return "holds no host name (e.g. cps.incidentiq.com)"
    try:
        port = parts.port
    except ValueError:  # out of range, or not a number
        port = -1
    if port is not None and not 1 <= port <= 65535:
        shown = parts.netloc.rpartition(":")[2]
        return f"has port {shown!r}; a port is a number from 1 to 65535"
    return None


# What to write instead of the drivers people try that SQLAlchemy does not know (it says
# only "Can't load plugin"), by the database part of the URL's scheme.
_MYSQL = "write mysql+pymysql://user:pass@host/db (PyMySQL is installed; it serves MariaDB too)"
_MSSQL = ("write mssql+pyodbc://user:pass@host/db?driver=ODBC+Driver+18+for+SQL+Server "
          "(and pip install .[mssql])")
_DRIVER_HINTS = {
    "mysql": _MYSQL, "mariadb": _MYSQL, "maria": _MYSQL,
    "mssql": _MSSQL, "sqlserver": _MSSQL, "azuresql": _MSSQL,
    "oracle": "write oracle+oracledb://user:pass@host/?service_name=NAME (and pip install .[oracle])",
    "sqlite": "write sqlite:///iiqsync.db (a file path after the three slashes)",
    "sqlite3": "write sqlite:///iiqsync.db (a file path after the three slashes)",
}
_POSTGRES = ("postgresql", "postgres", "postgre", "pgsql", "psql", "pg")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _postgresql_hint() -> str:
    if _installed("psycopg"):
        return ("write postgresql+psycopg://user:pass@host/db (SQLAlchemy's name for "
                "psycopg 3) or postgresql+psycopg2://user:pass@host/db")
    return ("write postgresql+psycopg2://user:pass@host/db (psycopg2 is installed; "
            "psycopg 3, once installed, is postgresql+psycopg://)")


def _unknown_driver(url) -> str | None:
    """A problem when SQLAlchemy has no dialect or driver of the URL's name (e.g.
    postgresql+psycopg3); a known driver that is not installed is db's to report."""
    from sqlalchemy.exc import NoSuchModuleError

    try:
        url.get_dialect()
        return None
    except (NoSuchModuleError, AttributeError):  # AttributeError: mysql+mariadb, say
        pass
    except ImportError:
        return None
    scheme = url.drivername
    backend = scheme.partition("+")[0].lower()
    hint = _postgresql_hint() if backend in _POSTGRES else _DRIVER_HINTS.get(
        backend, "the URL starts with the database and its driver: postgresql+psycopg2://, "
        "mysql+pymysql://, mssql+pyodbc://, oracle+oracledb:// or sqlite:///")
    return f"[Database] ConnectionString: SQLAlchemy knows no database driver {scheme!r}; {hint}"


def _in_memory_sqlite(url) -> bool:
    """sqlite://, sqlite:///, sqlite:///:memory: and URI forms of a memory database."""
    if url.get_backend_name() != "sqlite":
        return False
    database = url.database or ""
    return (database in ("", ":memory:") or database.startswith("file::memory:")
            or url.query.get("mode") == "memory")


# A schedule in seconds longer than this is a slip of units (beat cannot even hold some).
LONGEST_INTERVAL = 366 * 24 * 3600


def parse_schedule(spec: str):
    """'0 2 * * *' → celery crontab; '900' → seconds (float)."""
    text = str(spec).strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ValueError(f"{text!r} is not a finite number of seconds (nor a crontab)")
        if seconds <= 0:
            raise ValueError("an interval must be a positive number of seconds")
        if seconds > LONGEST_INTERVAL:
            raise ValueError(f"an interval of {seconds:g} seconds is longer than a year; "
                             "write a crontab ('0 2 1 1 *') for a yearly sync")
        return seconds
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"{text!r} is neither seconds nor a 5-field crontab")
    from celery.schedules import crontab

    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return crontab(minute=minute, hour=hour, day_of_month=day_of_month,
                       month_of_year=month_of_year, day_of_week=day_of_week)
    except Exception as exc:  # celery raises ValueError subclasses of its own
        raise ValueError(f"{text!r} is not a valid crontab: {exc}") from None
