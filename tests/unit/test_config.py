"""iiqsync.config: an old-tool config.ini loads unchanged; problems are reported at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from iiqsync import config
from iiqsync.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
OLD_CONFIG = FIXTURES / "old-tool-config.ini"
OLD_TOKEN = "MY_API_BEARER_TOKEN_HERE"
SECRET = "tok-3f9a-SECRET-do-not-print"


@pytest.fixture(autouse=True)
def _no_stray_config_ini(tmp_path, monkeypatch):
    # load() falls back to ./config.ini; run each test where there is none.
    monkeypatch.chdir(tmp_path)


def write_variant(tmp_path: Path, *replacements: tuple[str, str], extra: str = "") -> Path:
    """A copy of the old-tool config with whole lines replaced (old line -> new line)."""
    text = OLD_CONFIG.read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "config.ini"
    path.write_text(text + extra)
    return path


def problems_of(excinfo) -> list[str]:
    return excinfo.value.problems


# -- the old tool's file ---------------------------------------------------------------


def test_fixture_keeps_old_tool_quirks():
    text = OLD_CONFIG.read_text()
    assert "PageSize: 1000 \n" in text  # trailing space
    assert ";The number of elements" in text  # comment line
    assert "ConnectionString: 'postgresql://" in text  # quoted value
    assert "Schema:\n" in text  # blank value


def test_old_tool_config_loads_with_typed_values():
    s = config.load(OLD_CONFIG, env={})

    assert s.source == str(OLD_CONFIG)
    assert s.connection_string == "postgresql://azurediamond:hunter2@localhost/mydatabase"
    assert s.schema is None
    assert s.string_length == 255 and isinstance(s.string_length, int)
    assert s.page_size == 1000 and isinstance(s.page_size, int)
    assert s.threads == 100 and isinstance(s.threads, int)
    assert s.timeout == 100.0 and isinstance(s.timeout, float)
    assert s.token == OLD_TOKEN
    assert s.base_url == "https://domain.incidentiq.com"
    assert s.get("Database", "Database") == "myDatabase.something.local"


def test_old_tool_table_names_are_kept():
    s = config.load(OLD_CONFIG, env={})
    assert s.table_name("Assets") == "Assets"
    assert s.table_name("AssetsCustomFields") == "AssetCustomFields"
    assert s.table_name("UsersCustomFields") == "UserCustomFields"
    assert s.table_name("TicketsCustomFields") == "TicketCustomFields"
    assert s.table_name("Rooms") == "Rooms"
    assert s.table_name("Teams") == "Teams"


def test_settings_not_in_old_file_take_their_defaults():
    s = config.load(OLD_CONFIG, env={})
    assert s.get("IncidentIQ", "RequestsPerSecond") == 10.0
    assert s.get("IncidentIQ", "VerifyTls") is True
    assert s.get("IncidentIQ", "AssetTypes") == ()
    assert s.broker_url is None
    assert s.result_backend is None


@pytest.mark.parametrize("written, read", [
    # The old tool read with ConfigParser's interpolation: %% was its way to write a %.
    ("mysql+pymysql://u:p%%40ss@db/iiq", "mysql+pymysql://u:p%40ss@db/iiq"),
    # A lone % (written for iiqsync) cannot be interpolated: kept as written, whole.
    ("mysql+pymysql://u:p%40ss@db/iiq", "mysql+pymysql://u:p%40ss@db/iiq"),
    ("mysql+pymysql://u:p%%40ss@db/iiq?x=%2F", "mysql+pymysql://u:p%%40ss@db/iiq?x=%2F"),
    # %(key)s: another key of the section, or of [DEFAULT]; such keys are not unknown.
    ("postgresql://u:p@%(host)s/iiq\nHost: db.local", "postgresql://u:p@db.local/iiq"),
    ("postgresql://u:p@%(shared)s/iiq", "postgresql://u:p@shared.local/iiq"),
])
def test_percent_signs_read_as_the_old_tool_read_them(tmp_path, written, read):
    path = write_variant(tmp_path, (
        "ConnectionString: 'postgresql://azurediamond:hunter2@localhost/mydatabase'",
        f"ConnectionString: {written}"))
    if "shared" in written:
        path.write_text("[DEFAULT]\nShared: shared.local\n\n" + path.read_text())
    assert config.load(path, env={}).connection_string == read


def test_default_section_key_nothing_refers_to_is_named_once(tmp_path):
    path = write_variant(tmp_path)
    path.write_text("[DEFAULT]\nTimeot: 5\n\n" + path.read_text())
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={})
    assert problems_of(excinfo) == [f"{path}: [DEFAULT] Timeot is not used by a %(name)s "
                                    "reference (put each setting in its section)"]


def test_environment_values_are_never_interpolated():
    url = "mysql+pymysql://u:p%%40ss@db/iiq"
    s = config.load(OLD_CONFIG, env={"IIQSYNC_DATABASE_CONNECTIONSTRING": url})
    assert s.connection_string == url


def test_file_in_utf8_with_bom_or_utf16_with_bom_loads(tmp_path):
    text = OLD_CONFIG.read_text().replace("Schema:\n", "Schema: Ünterricht\n")
    for encoding in ("utf-8-sig", "utf-16", "utf-16-be", "utf-32"):
        path = tmp_path / f"{encoding}.ini"
        data = text.encode(encoding)
        if encoding == "utf-16-be":
            data = b"\xfe\xff" + data
        path.write_bytes(data)
        s = config.load(path, env={})
        assert s.schema == "Ünterricht" and s.token == OLD_TOKEN, encoding


def test_a_windows_ansi_file_is_read_as_the_old_tool_read_it(tmp_path, caplog):
    """Notepad's "ANSI" on a Western Windows is Windows-1252, which the old tool read
    there: such a file loads, with a warning naming the line."""
    path = tmp_path / "ansi.ini"
    path.write_bytes("[Database]\nSchema: dbo\n; café\nConnectionString: postgresql+psycopg2://"
                     "u:pâss€@h/db\n".encode("cp1252"))
    with caplog.at_level("WARNING", logger="iiqsync.config"):
        s = config.load(path, env={}, require_iiq=False)
    assert s.connection_string == "postgresql+psycopg2://u:pâss€@h/db"
    assert [r.getMessage() for r in caplog.records] == [
        f"{path} line 3 is not UTF-8 (byte 0xe9): read as Windows-1252, as the old tool read "
        "it on Windows; save the file as UTF-8 to be sure"]


def test_file_in_no_encoding_known_names_the_line_and_byte(tmp_path):
    path = tmp_path / "odd.ini"
    path.write_bytes(b"[Database]\nSchema: dbo\n; \x81\x8d\n")  # not UTF-8, not Windows-1252
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={})
    assert problems_of(excinfo) == [
        f"{path} line 3 is not UTF-8 (byte 0x81): save the file as UTF-8"]


def test_file_in_utf16_without_bom_is_named(tmp_path):
    path = tmp_path / "c.ini"
    path.write_bytes("[Database]\nSchema: dbo\n".encode("utf-16-le"))
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={})
    [problem] = problems_of(excinfo)
    assert problem.startswith(f"{path} line 1 holds a NUL byte") and "save the file as UTF-8" \
        in problem


def test_keys_and_sections_are_case_insensitive(tmp_path):
    path = tmp_path / "c.ini"
    path.write_text("[incidentiq]\ninstance = a.incidentiq.com\nTOKEN = abc\n"
                    "[GENERAL]\npagesize = 250\n")
    s = config.load(path, env={})
    assert s.page_size == 250
    assert s.token == "abc"


def test_double_quoted_value_is_unquoted(tmp_path):
    path = write_variant(tmp_path, ("Token: MY_API_BEARER_TOKEN_HERE", 'Token: "abc.def"'))
    assert config.load(path, env={}).token == "abc.def"


def test_schema_set_is_returned(tmp_path):
    path = write_variant(tmp_path, ("Schema:\n", "Schema: reporting\n"))
    assert config.load(path, env={}).schema == "reporting"


# -- Instance ----------------------------------------------------------------------------


@pytest.mark.parametrize("instance, expected", [
    ("domain.incidentiq.com", "https://domain.incidentiq.com"),
    ("domain.incidentiq.com/", "https://domain.incidentiq.com"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ("https://domain.incidentiq.com:8443", "https://domain.incidentiq.com:8443"),
    ("https://domain.incidentiq.com/api/v1.0", "https://domain.incidentiq.com"),
    ("fake-iiq:8080", "https://fake-iiq:8080"),
])
def test_instance_becomes_base_url(tmp_path, instance, expected):
    path = write_variant(tmp_path, ("Instance: domain.incidentiq.com", f"Instance: {instance}"))
    assert config.load(path, env={}).base_url == expected


def test_instance_with_other_scheme_is_a_problem(tmp_path):
    path = write_variant(tmp_path, ("Instance: domain.incidentiq.com", "Instance: ftp://x.y"))
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={})
    assert problems_of(excinfo) == ["[IncidentIQ] Instance: 'ftp://x.y' is not a host name or "
                                    "an http(s) URL (e.g. cps.incidentiq.com)"]


@pytest.mark.parametrize("instance, problem", [
    ("http://127.0.0.1:99999", "has port '99999'; a port is a number from 1 to 65535"),
    ("iiq.example.org:0", "has port '0'; a port is a number from 1 to 65535"),
    ("https://iiq.example.org:https", "has port 'https'; a port is a number from 1 to 65535"),
    ("http://[::1", "is not a URL (Invalid IPv6 URL)"),
    ("http://iiq example.org", "holds no host name (e.g. cps.incidentiq.com)"),
    ("http://:8080", "holds no host name (e.g. cps.incidentiq.com)"),
])
def test_instance_that_no_request_could_use_is_a_problem(instance, problem):
    # Every entity's first request would otherwise fail on it, one traceback each.
    env = {"IIQSYNC_INCIDENTIQ_INSTANCE": instance}
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env=env)
    assert problems_of(excinfo) == [
        f"[IncidentIQ] Instance (env IIQSYNC_INCIDENTIQ_INSTANCE): {instance!r} {problem}"]
    # Shown by `iiqsync config`, which reports it on its second, ready-to-sync load.
    assert config.load(OLD_CONFIG, env=env, require_iiq=False).get(
        "IncidentIQ", "Instance") == instance


# -- environment -------------------------------------------------------------------------


def test_environment_overrides_the_file():
    env = {
        "IIQSYNC_INCIDENTIQ_TOKEN": SECRET,
        "IIQSYNC_INCIDENTIQ_INSTANCE": "http://127.0.0.1:8080",
        "IIQSYNC_GENERAL_PAGESIZE": "500",
        "IIQSYNC_DATABASE_SCHEMA": "reporting",
        "IIQSYNC_DATABASE_CONNECTIONSTRING": "sqlite:///x.db",
        "IIQSYNC_TABLES_ASSETS": "IIQ_Assets",
        "IIQSYNC_CELERY_BROKERURL": "redis://redis:6379/0",
    }
    s = config.load(OLD_CONFIG, env=env)
    assert s.token == SECRET
    assert s.base_url == "http://127.0.0.1:8080"
    assert s.page_size == 500 and isinstance(s.page_size, int)
    assert s.schema == "reporting"
    assert s.connection_string == "sqlite:///x.db"
    assert s.table_name("Assets") == "IIQ_Assets"
    assert s.table_name("Users") == "Users"  # untouched keys still come from the file
    assert s.broker_url == "redis://redis:6379/0"
    assert s.result_backend == "redis://redis:6379/0"


def test_environment_alone_is_enough():
    s = config.load(None, env={"IIQSYNC_INCIDENTIQ_INSTANCE": "cps.incidentiq.com",
                               "IIQSYNC_INCIDENTIQ_TOKEN": SECRET})
    assert s.source is None
    assert s.base_url == "https://cps.incidentiq.com"
    assert s.connection_string == config.DEFAULT_CONNECTION_STRING
    assert s.page_size == 1000


def test_config_path_from_environment():
    s = config.load(None, env={config.CONFIG_ENV: str(OLD_CONFIG)})
    assert s.source == str(OLD_CONFIG)
    assert s.token == OLD_TOKEN


def test_blank_environment_value_means_default():
    s = config.load(OLD_CONFIG, env={"IIQSYNC_GENERAL_THREADS": ""})
    assert s.threads == 8


def test_asset_types_must_be_ids():
    """A mistyped asset type id would match no asset, and the run would succeed
    with an empty Assets table: it is refused, naming the setting."""
    good = "6A1CC1E6-1A2B-4C3D-8E9F-0123456789AB"
    s = config.load(OLD_CONFIG, env={"IIQSYNC_INCIDENTIQ_ASSETTYPES": f"{good}, {good.lower()}"})
    assert s.get("IncidentIQ", "AssetTypes") == (good, good.lower())
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env={"IIQSYNC_INCIDENTIQ_ASSETTYPES": f"{good},notaguid"})
    [problem] = problems_of(excinfo)
    assert problem.startswith("[IncidentIQ] AssetTypes: 'notaguid' is not an asset type id")


def test_unknown_environment_variable_is_named():
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env={"IIQSYNC_GENERAL_PAGESIZ": "10",
                                     "IIQSYNC_INCIDENTIQ_TOKN": SECRET})
    problems = problems_of(excinfo)
    assert len(problems) == 2
    assert any(p.startswith("IIQSYNC_GENERAL_PAGESIZ ") for p in problems)
    assert any(p.startswith("IIQSYNC_INCIDENTIQ_TOKN ") for p in problems)


def test_iiqsync_variables_that_are_not_settings_are_left_alone():
    s = config.load(OLD_CONFIG, env={"IIQSYNC_HEARTBEAT_FILE": "/tmp/x", "IIQSYNC_TEST_PG": "x",
                                     "IIQSYNC_CONFIG": str(OLD_CONFIG)})
    assert s.page_size == 1000


def test_kubernetes_service_links_are_not_settings():
    """Kubernetes gives every pod variables for each Service in its namespace; a
    Service named iiqsync-flower (or iiqsync-metrics) must not stop the pods."""
    links = {"IIQSYNC_FLOWER_SERVICE_HOST": "10.0.0.7", "IIQSYNC_FLOWER_SERVICE_PORT": "5555",
             "IIQSYNC_FLOWER_SERVICE_PORT_HTTP": "5555", "IIQSYNC_FLOWER_PORT": "tcp://10.0.0.7:5555",
             "IIQSYNC_FLOWER_PORT_5555_TCP": "tcp://10.0.0.7:5555",
             "IIQSYNC_FLOWER_PORT_5555_TCP_PROTO": "tcp", "IIQSYNC_FLOWER_PORT_5555_TCP_PORT": "5555",
             "IIQSYNC_FLOWER_PORT_5555_TCP_ADDR": "10.0.0.7",
             "IIQSYNC_METRICS_PORT": "tcp://10.0.0.8:9808"}
    s = config.load(OLD_CONFIG, env=links)
    assert s.get("Metrics", "Port") == 9808
    assert config.load(OLD_CONFIG, env={"IIQSYNC_METRICS_PORT": "9100"}).get("Metrics", "Port") == 9100


def test_a_typo_in_the_section_part_of_a_variable_is_reported():
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env={"IIQSYNC_DATABSE_SCHEMA": "iiq"})
    [problem] = problems_of(excinfo)
    assert "IIQSYNC_DATABSE_SCHEMA is not a known setting" in problem
    assert "IIQSYNC_DATABASE_SCHEMA" in problem


def test_unknown_environment_variable_gets_did_you_mean():
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env={"IIQSYNC_GENERAL_PAGESIZ": "10"})
    [problem] = problems_of(excinfo)
    assert "IIQSYNC_GENERAL_PAGESIZE" in problem


# -- missing files -----------------------------------------------------------------------


def test_missing_explicit_path_is_an_error(tmp_path):
    missing = tmp_path / "nope" / "config.ini"
    with pytest.raises(ConfigError) as excinfo:
        config.load(missing, env={"IIQSYNC_INCIDENTIQ_INSTANCE": "a.b",
                                  "IIQSYNC_INCIDENTIQ_TOKEN": "t"})
    assert str(missing) in str(excinfo.value)


def test_missing_path_from_environment_is_an_error(tmp_path):
    missing = tmp_path / "gone.ini"
    with pytest.raises(ConfigError) as excinfo:
        config.load(None, env={config.CONFIG_ENV: str(missing)})
    assert str(missing) in str(excinfo.value)


# -- problems ------------------------------------------------------------------------------


def test_unknown_key_names_key_and_suggests():
    path = Path("config.ini")
    path.write_text(OLD_CONFIG.read_text().replace("PageSize: 1000 ", "PageSzie: 100"))
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={})
    [problem] = problems_of(excinfo)
    assert f"{path}: [General] PageSzie is not a known key (did you mean 'PageSize'?)" in problem


def test_did_you_mean_spells_the_key_as_the_readme_does(tmp_path):
    path = write_variant(tmp_path, ("Token: MY_API_BEARER_TOKEN_HERE", "Tokne: abc"),
                         extra="\n[genral]\nThreads: 2\n")
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={}, require_iiq=False)
    assert problems_of(excinfo) == [
        f"{path}: [IncidentIQ] Tokne is not a known key (did you mean 'Token'?)",
        f"{path}: section [genral] is not known (did you mean 'General'?)"]


def test_unknown_section_names_section_and_suggests(tmp_path):
    path = write_variant(tmp_path, extra="\n[Genral]\nPageSize: 10\n")
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={})
    [problem] = problems_of(excinfo)
    assert problem == f"{tmp_path / 'config.ini'}: section [Genral] is not known (did you mean 'General'?)"


@pytest.mark.parametrize("line, key, words", [
    ("Threads: many", "[General] Threads", ["'many'", "int"]),
    ("Threads: -3", "[General] Threads", ["minimum"]),
    ("Threads: 0", "[General] Threads", ["minimum"]),
    ("Timeout: -5", "[General] Timeout", ["minimum"]),
    ("Timeout: soon", "[General] Timeout", ["float"]),
    ("PageSize: 5000", "[General] PageSize", ["maximum 1000", "1000 users"]),
    ("StringLength: 0", "[Database] StringLength", ["minimum"]),
])
def test_bad_number_names_key(tmp_path, line, key, words):
    old = line.split(":")[0]
    original = {"Threads": "Threads: 100", "Timeout": "Timeout: 100",
                "PageSize": "PageSize: 1000 ", "StringLength": "StringLength: 255"}[old]
    path = write_variant(tmp_path, (original, line))
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={})
    [problem] = problems_of(excinfo)
    assert key in problem
    for word in words:
        assert word in problem


def test_bad_number_from_environment_names_the_variable():
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env={"IIQSYNC_GENERAL_PAGESIZE": "5000"})
    [problem] = problems_of(excinfo)
    assert "IIQSYNC_GENERAL_PAGESIZE" in problem
    assert "1000 users" in problem


def test_bad_bool_is_a_problem():
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env={"IIQSYNC_INCIDENTIQ_VERIFYTLS": "sometimes"})
    assert "IIQSYNC_INCIDENTIQ_VERIFYTLS" in problems_of(excinfo)[0]


@pytest.mark.parametrize("value", ["yes", "true", "1", "on"])
def test_bool_words(value):
    assert config.load(OLD_CONFIG, env={"IIQSYNC_INCIDENTIQ_VERIFYTLS": value}).get(
        "IncidentIQ", "VerifyTls") is True


def test_missing_token_names_key_and_variable(tmp_path):
    path = write_variant(tmp_path, ("Token: MY_API_BEARER_TOKEN_HERE\n", ""))
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={})
    [problem] = problems_of(excinfo)
    assert "[IncidentIQ] Token" in problem
    assert "IIQSYNC_INCIDENTIQ_TOKEN" in problem


def test_missing_instance_and_token_are_not_required_when_told(tmp_path):
    path = write_variant(tmp_path, ("Token: MY_API_BEARER_TOKEN_HERE\n", ""),
                         ("Instance: domain.incidentiq.com\n", ""))
    s = config.load(path, env={}, require_iiq=False)
    assert s.token is None and s.base_url is None


def test_bad_connection_string_names_key(tmp_path):
    path = write_variant(tmp_path, (
        "ConnectionString: 'postgresql://azurediamond:hunter2@localhost/mydatabase'",
        "ConnectionString: my database on the server"))
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={})
    [problem] = problems_of(excinfo)
    assert "[Database] ConnectionString" in problem


def test_connection_string_with_bad_port_is_reported_with_the_others():
    env = {"IIQSYNC_DATABASE_CONNECTIONSTRING": "postgresql://u:hunter2@db:port/x",
           "IIQSYNC_GENERAL_THREADS": "many"}
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env=env)
    text = str(excinfo.value)
    assert "[Database] ConnectionString" in text
    assert "IIQSYNC_GENERAL_THREADS" in text
    assert "hunter2" not in text


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:",
                                 "sqlite+pysqlite://",
                                 "sqlite:///file::memory:?cache=shared&uri=true",
                                 "sqlite:///file:iiq?mode=memory&uri=true"])
def test_in_memory_sqlite_is_a_problem_suggesting_a_file(tmp_path, url):
    # Each connection (and each worker) would get its own empty database.
    path = write_variant(tmp_path, (
        "ConnectionString: 'postgresql://azurediamond:hunter2@localhost/mydatabase'",
        f"ConnectionString: {url}"))
    for require_iiq in (True, False):  # sync as well as status, sweep and config
        with pytest.raises(ConfigError) as excinfo:
            config.load(path, env={}, require_iiq=require_iiq)
        [problem] = problems_of(excinfo)
        assert problem.startswith(f"[Database] ConnectionString {url} is an in-memory SQLite "
                                  "database"), problem
        assert "e.g. sqlite:///iiqsync.db" in problem
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env={"IIQSYNC_DATABASE_CONNECTIONSTRING": url})
    assert "[Database] ConnectionString" in str(excinfo.value)


PSYCOPG2_HINT = ("write postgresql+psycopg2://user:pass@host/db (psycopg2 is installed; "
                 "psycopg 3, once installed, is postgresql+psycopg://)")
MYSQL_HINT = "write mysql+pymysql://user:pass@host/db (PyMySQL is installed; it serves MariaDB too)"


@pytest.mark.parametrize("url, hint", [
    ("postgresql+psycopg3://u:hunter2@db/iiq", PSYCOPG2_HINT),
    ("postgres://u:hunter2@db/iiq", PSYCOPG2_HINT),
    ("postgresql+psycopg2binary://u:hunter2@db/iiq", PSYCOPG2_HINT),
    ("mariadb+mysql://u:hunter2@db/iiq", MYSQL_HINT),
    ("mysql+mariadb://u:hunter2@db/iiq", MYSQL_HINT),
    ("sqlserver://u:hunter2@db/iiq", "write mssql+pyodbc://user:pass@host/db?driver=ODBC+Driver+18+"
                                     "for+SQL+Server (and pip install .[mssql])"),
])
def test_driver_sqlalchemy_does_not_know_gets_what_to_write(monkeypatch, url, hint):
    monkeypatch.setattr(config, "_installed", lambda module: False)
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env={"IIQSYNC_DATABASE_CONNECTIONSTRING": url}, require_iiq=False)
    scheme = url.split("://")[0]
    assert problems_of(excinfo) == [
        f"[Database] ConnectionString: SQLAlchemy knows no database driver {scheme!r}; {hint}"]


def test_psycopg3_hint_names_its_sqlalchemy_name_when_it_is_installed(monkeypatch):
    monkeypatch.setattr(config, "_installed", lambda module: module == "psycopg")
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env={"IIQSYNC_DATABASE_CONNECTIONSTRING":
                                     "postgresql+psycopg3://u:hunter2@db/iiq"})
    [problem] = problems_of(excinfo)
    assert problem.endswith("write postgresql+psycopg://user:pass@host/db (SQLAlchemy's name "
                            "for psycopg 3) or postgresql+psycopg2://user:pass@host/db")


@pytest.mark.parametrize("url", ["mariadb+pymysql://u:p@db/iiq", "mysql+pymysql://u:p@db/iiq",
                                 "postgresql+psycopg://u:p@db/iiq", "mssql+pyodbc://u:p@db/iiq"])
def test_drivers_sqlalchemy_knows_pass_installed_or_not(url):
    # A known driver that is not installed is reported when the engine is made.
    assert config.load(OLD_CONFIG, env={"IIQSYNC_DATABASE_CONNECTIONSTRING": url}
                       ).connection_string == url


@pytest.mark.parametrize("url", ["sqlite:///iiqsync.db", "sqlite:////var/lib/iiqsync/iiq.db",
                                 "sqlite:///file:iiq.db?uri=true"])
def test_sqlite_file_is_fine(url):
    assert config.load(OLD_CONFIG, env={"IIQSYNC_DATABASE_CONNECTIONSTRING": url}
                       ).connection_string == url


def test_every_problem_is_reported_at_once(tmp_path):
    path = write_variant(
        tmp_path,
        ("ConnectionString: 'postgresql://azurediamond:hunter2@localhost/mydatabase'",
         "ConnectionString: not a url"),
        ("Token: MY_API_BEARER_TOKEN_HERE\n", ""),
        ("PageSize: 1000 ", "PageSize: 5000"),
        ("Threads: 100", "Threads: lots"),
        ("Timeout: 100", "Timeout: -1"),
        extra="Retries: 3\n\n[Databse]\nSchema: x\n",
    )
    env = {"IIQSYNC_GENERAL_PAGESIZ": "10"}
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env=env)
    problems = problems_of(excinfo)
    expected = ["[Database] ConnectionString", "[IncidentIQ] Token", "[General] PageSize",
                "[General] Threads", "[General] Timeout", "Retries", "[Databse]",
                "IIQSYNC_GENERAL_PAGESIZ"]
    for needle in expected:
        assert sum(needle in p for p in problems) >= 1, (needle, problems)
    assert len(problems) == len(expected)
    message = str(excinfo.value)
    assert f"{len(expected)} problem(s)" in message
    assert all(p in message for p in problems)


def test_table_names_must_differ_and_avoid_reserved_prefix():
    env = {"IIQSYNC_TABLES_ROOMS": "Locations", "IIQSYNC_TABLES_TEAMS": "iiqsync_teams"}
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env=env)
    text = "\n".join(problems_of(excinfo))
    assert "[Tables] Rooms" in text and "[Tables] Locations" in text
    assert "[Tables] Teams" in text and "reserved" in text


def test_broker_url_must_be_a_url():
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env={"IIQSYNC_CELERY_BROKERURL": "redis"})
    assert "[Celery] BrokerUrl" in problems_of(excinfo)[0]


def test_missing_ca_bundle_is_a_problem(tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env={"IIQSYNC_INCIDENTIQ_CABUNDLE": str(tmp_path / "ca.pem")})
    assert "[IncidentIQ] CaBundle" in problems_of(excinfo)[0]


def test_ca_bundle_that_is_no_certificate_is_a_problem(tmp_path):
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env={"IIQSYNC_INCIDENTIQ_CABUNDLE": str(bogus)})
    [problem] = problems_of(excinfo)
    assert "[IncidentIQ] CaBundle" in problem and str(bogus) in problem and "PEM" in problem


NUMERIC = [k for k in config.KEYS if k.kind in ("int", "float")]


@pytest.mark.parametrize("key", NUMERIC, ids=lambda k: f"{k.section}.{k.name}")
def test_every_number_below_its_minimum_is_one_problem_naming_it(key):
    """-1 for any numeric setting: exactly one problem, naming the key and the variable."""
    assert key.minimum is not None and key.minimum >= 0, "every number has a floor"
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env={key.env: "-1"})
    [problem] = problems_of(excinfo)
    assert f"[{key.section}] {key.name}" in problem and key.env in problem
    assert "minimum" in problem


FLOATS = [k for k in config.KEYS if k.kind == "float"]


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"])
@pytest.mark.parametrize("key", FLOATS, ids=lambda k: f"{k.section}.{k.name}")
def test_every_float_that_is_no_finite_number_is_one_problem_naming_it(key, value):
    """float() takes nan and inf: neither is a timeout or a rate (nan passed every
    range check, then failed the run with a traceback)."""
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env={key.env: value})
    [problem] = problems_of(excinfo)
    assert problem.startswith(f"[{key.section}] {key.name} (env {key.env}): {value!r} "
                              "is not a finite number"), problem


@pytest.mark.parametrize("section, line", [
    ("[IncidentIQ]", "RequestsPerSecond: nan"), ("[IncidentIQ]", "RequestsPerSecond: inf"),
    ("[General]", "Timeout: nan"), ("[General]", "Timeout: 'inf'"),
])
def test_no_finite_number_in_the_file_is_named(tmp_path, section, line):
    if section == "[General]":
        path = write_variant(tmp_path, ("Timeout: 100", line))
    else:
        token = "Token: MY_API_BEARER_TOKEN_HERE"
        path = write_variant(tmp_path, (token, f"{token}\n{line}"))
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={})
    [problem] = problems_of(excinfo)
    key = line.split(":")[0]
    assert problem.startswith(f"{section} {key}: ") and "not a finite number" in problem, problem


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_sync_with_a_timeout_of_nan_or_inf_exits_2_naming_the_setting(tmp_path, value):
    """What the user ran: the sync stops before anything starts, with one line per
    problem and no traceback."""
    env = {**os.environ, "IIQSYNC_CONFIG": os.devnull, "IIQSYNC_GENERAL_TIMEOUT": value,
           "IIQSYNC_INCIDENTIQ_REQUESTSPERSECOND": value,
           "IIQSYNC_INCIDENTIQ_INSTANCE": "http://127.0.0.1:9", "IIQSYNC_INCIDENTIQ_TOKEN": "t",
           "IIQSYNC_DATABASE_CONNECTIONSTRING": f"sqlite:///{tmp_path / 'x.db'}"}
    done = subprocess.run([sys.executable, "-m", "iiqsync", "sync", "--local", "teams"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        "iiqsync: configuration has 2 problem(s):",
        "  - [IncidentIQ] RequestsPerSecond (env IIQSYNC_INCIDENTIQ_REQUESTSPERSECOND): "
        f"{value!r} is not a finite number (at least 0.1)",
        f"  - [General] Timeout (env IIQSYNC_GENERAL_TIMEOUT): {value!r} is not a finite "
        "number (from 1 to 86400)"], done.stderr
    assert done.stdout == "" and not (tmp_path / "x.db").exists()


def test_timeout_beyond_what_a_socket_takes_is_a_problem():
    """1e12 s is finite, yet no socket takes it (OverflowError at the first request)."""
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env={"IIQSYNC_GENERAL_TIMEOUT": "1e12"})
    [problem] = problems_of(excinfo)
    assert "[General] Timeout" in problem and "maximum 86400" in problem
    assert config.load(OLD_CONFIG, env={"IIQSYNC_GENERAL_TIMEOUT": "86400"}).timeout == 86400


@pytest.mark.parametrize("token", ["two SECRET", "line\nSECRET", "tab\tSECRET",
                                   "\u201cSECRET\u201d", "Bearer SECRET.abc", "SECRET\x00"])
def test_token_that_cannot_be_a_token_is_a_problem_not_shown(token):
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env={"IIQSYNC_INCIDENTIQ_TOKEN": token})
    [problem] = problems_of(excinfo)
    assert "[IncidentIQ] Token" in problem
    assert "SECRET" not in str(excinfo.value)


# -- secrets --------------------------------------------------------------------------------


def test_token_not_in_repr_or_redacted():
    s = config.load(OLD_CONFIG, env={"IIQSYNC_INCIDENTIQ_TOKEN": SECRET})
    assert SECRET not in repr(s)
    assert SECRET not in str(s)
    shown = s.redacted()
    assert SECRET not in repr(shown)
    assert shown["[IncidentIQ] Token"] == "********"
    assert shown["[General] PageSize"] == 1000


def test_connection_string_password_masked_in_redacted():
    shown = config.load(OLD_CONFIG, env={}).redacted()
    assert shown["[Database] ConnectionString"] == \
        "postgresql://azurediamond:********@localhost/mydatabase"
    assert "hunter2" not in repr(shown)
    assert "hunter2" not in repr(config.load(OLD_CONFIG, env={}))


def test_broker_password_masked_in_redacted():
    shown = config.load(OLD_CONFIG, env={"IIQSYNC_CELERY_BROKERURL":
                                         "redis://:s3cr3t@redis:6379/0"}).redacted()
    assert shown["[Celery] BrokerUrl"] == "redis://:********@redis:6379/0"
    assert "s3cr3t" not in repr(shown)


def test_connection_string_without_password_shown_whole():
    shown = config.load(OLD_CONFIG, env={"IIQSYNC_DATABASE_CONNECTIONSTRING":
                                         "sqlite:///data/iiq.db"}).redacted()
    assert shown["[Database] ConnectionString"] == "sqlite:///data/iiq.db"


def test_secret_that_is_not_a_url_after_all_is_masked_whole():
    shown = config.load(OLD_CONFIG, env={"IIQSYNC_CELERY_BROKERURL": "redis://:s3cr3t@[redis:6379/0"}
                        ).redacted()
    assert shown["[Celery] BrokerUrl"] == "redis://********"


def test_asset_types_shown_as_written():
    guids = "2a1561e5-34ff-4fcf-87de-2a146f0e1c01,00000000-0000-0000-0000-00000000000a"
    shown = config.load(OLD_CONFIG, env={"IIQSYNC_INCIDENTIQ_ASSETTYPES": guids}).redacted()
    assert shown["[IncidentIQ] AssetTypes"] == guids.replace(",", ", ")
    assert config.load(OLD_CONFIG, env={}).redacted()["[IncidentIQ] AssetTypes"] == ""


def test_odbc_connect_password_masked_in_redacted():
    url = ("mssql+pyodbc:///?odbc_connect="
           "DRIVER%3D%7BODBC+Driver+18+for+SQL+Server%7D%3BSERVER%3Ddb%3BUID%3Dsa%3BPWD%3Dhunter2")
    shown = config.load(OLD_CONFIG, env={"IIQSYNC_DATABASE_CONNECTIONSTRING": url}).redacted()
    assert "hunter2" not in repr(shown)


def bad_configs(tmp_path: Path):
    """Config files with problems, each holding SECRET as the token."""
    base = OLD_CONFIG.read_text().replace(OLD_TOKEN, SECRET)
    variants = {
        "bad-number": base.replace("Threads: 100", "Threads: many"),
        "unknown-key": base.replace(f"Token: {SECRET}", f"Token: {SECRET}\nTokn: {SECRET}"),
        "bad-instance": base.replace("Instance: domain.incidentiq.com", "Instance: ftp://x"),
        "token-in-wrong-section": base + f"\n[Extra]\nToken: {SECRET}\n",
        "bad-url": base.replace("ConnectionString: 'postgresql", "ConnectionString: 'nope"),
    }
    for name, text in variants.items():
        path = tmp_path / f"{name}.ini"
        path.write_text(text)
        yield name, path


def test_token_never_in_error_messages(tmp_path):
    seen = 0
    for name, path in bad_configs(tmp_path):
        with pytest.raises(ConfigError) as excinfo:
            config.load(path, env={"IIQSYNC_INCIDENTIQ_TOKN": SECRET})
        assert SECRET not in str(excinfo.value), name
        assert all(SECRET not in p for p in excinfo.value.problems), name
        seen += 1
    assert seen == 5


@pytest.mark.parametrize("text", [
    pytest.param(f"[IncidentIQ]\nInstance: a.incidentiq.com\nToken {SECRET}\n",
                 id="separator-forgotten"),
    pytest.param(f"Token: {SECRET}\n[IncidentIQ]\nInstance: a.incidentiq.com\n",
                 id="before-any-section"),
])
def test_token_not_in_parse_error(tmp_path, text):
    path = tmp_path / "config.ini"
    path.write_text(text)
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={})
    assert str(path) in str(excinfo.value)
    assert SECRET not in str(excinfo.value)


def test_key_given_twice_names_it_and_both_lines(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(f"[IncidentIQ]\nToken: {SECRET}\nInstance: a.incidentiq.com\n"
                    f"; the new one\ntoken = {SECRET}2\n")
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={})
    assert problems_of(excinfo) == [
        f"{path}: [IncidentIQ] Token is given twice (lines 2 and 5); keep one"]


def test_section_given_twice_names_it_and_both_lines(tmp_path):
    path = tmp_path / "config.ini"
    for second in ("[General]", "[general]"):  # configparser tells these apart; iiqsync does not
        path.write_text(f"[General]\nThreads: 2\n\n[IncidentIQ]\nInstance: a\n\n{second}\n"
                        "PageSize: 10\n")
        with pytest.raises(ConfigError) as excinfo:
            config.load(path, env={}, require_iiq=False)
        assert problems_of(excinfo) == [
            f"{path}: section [General] is given twice (lines 1 and 7); put its keys under one"]


def test_unknown_key_given_twice_is_named_as_written(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text("[Extra]\nColour: red\nColour: blue\n")
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={})
    assert problems_of(excinfo) == [f"{path}: [Extra] Colour is given twice (lines 2 and 3); keep one"]


def test_unparseable_file_is_a_config_error(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text("[IncidentIQ]\nInstance: a\nthis line has no separator\n")
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={})
    [problem] = problems_of(excinfo)
    assert problem == f"{path}: cannot be parsed: line(s) 3: not of the form 'Key: value'"


# -- schedule --------------------------------------------------------------------------------


def test_schedule_crontab():
    schedule = config.parse_schedule("0 2 * * *")
    assert schedule.minute == {0}
    assert schedule.hour == {2}
    assert len(schedule.day_of_week) == 7


def test_schedule_crontab_with_ranges_and_steps():
    schedule = config.parse_schedule("*/15 6-18 * * 1-5")
    assert schedule.minute == {0, 15, 30, 45}
    assert schedule.hour == set(range(6, 19))
    assert schedule.day_of_week == {1, 2, 3, 4, 5}


@pytest.mark.parametrize("spec, seconds", [("900", 900.0), (" 30 ", 30.0), ("0.5", 0.5)])
def test_schedule_seconds(spec, seconds):
    assert config.parse_schedule(spec) == seconds


@pytest.mark.parametrize("spec, words", [
    ("61 * * * *", "not a valid crontab"),
    ("0 25 * * *", "not a valid crontab"),
    ("every night", "neither seconds nor a 5-field crontab"),
    ("0 2 * *", "neither seconds nor a 5-field crontab"),
    ("0", "positive"),
    ("-60", "positive"),
    ("nan", "not a finite number"),
    ("inf", "not a finite number"),
    ("1e300", "longer than a year"),
])
def test_schedule_bad(spec, words):
    with pytest.raises(ValueError, match=words):
        config.parse_schedule(spec)


def test_schedule_keys_are_validated_with_their_names():
    env = {"IIQSYNC_SCHEDULE_ASSETS": "61 * * * *", "IIQSYNC_SCHEDULE_DEFAULT": "often",
           "IIQSYNC_SCHEDULE_USERS": "3600"}
    with pytest.raises(ConfigError) as excinfo:
        config.load(OLD_CONFIG, env=env)
    problems = problems_of(excinfo)
    assert len(problems) == 2
    assert any(p.startswith("[Schedule] Assets") for p in problems)
    assert any(p.startswith("[Schedule] Default") for p in problems)


def test_schedule_values_load():
    s = config.load(OLD_CONFIG, env={"IIQSYNC_SCHEDULE_USERS": "3600",
                                     "IIQSYNC_SCHEDULE_TICKETS": "*/10 * * * *"})
    assert s.get("Schedule", "Users") == "3600"
    assert s.get("Schedule", "Tickets") == "*/10 * * * *"
    assert s.get("Schedule", "Default") == "0 2 * * *"


def test_a_directory_given_as_the_config_file_is_an_error(tmp_path):
    """A config mounted as a directory would otherwise be read as no file at all,
    and the sync would run on the defaults."""
    with pytest.raises(ConfigError) as excinfo:
        config.load(tmp_path, env={})
    [problem] = problems_of(excinfo)
    assert problem == f"{tmp_path} is a directory, not a config file (point at the config.ini inside it)"


def test_a_blank_connection_string_is_not_taken_for_the_default(tmp_path):
    """An empty value where the URL should be (a variable a template left unset)
    would otherwise sync into ./iiqsync.db, where nobody looks."""
    with pytest.raises(ConfigError) as excinfo:
        config.load(os.devnull, env={"IIQSYNC_DATABASE_CONNECTIONSTRING": ""}, require_iiq=False)
    assert problems_of(excinfo) == [
        "[Database] ConnectionString (env IIQSYNC_DATABASE_CONNECTIONSTRING) is empty: give the "
        "database's URL, or leave the key out for the default sqlite:///iiqsync.db"]
    path = tmp_path / "config.ini"
    path.write_text("[Database]\nConnectionString:\n")
    with pytest.raises(ConfigError):
        config.load(path, env={}, require_iiq=False)
    assert config.load(os.devnull, env={}, require_iiq=False).connection_string == \
        "sqlite:///iiqsync.db"
