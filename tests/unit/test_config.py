"""iiqsync.config: an old-tool config.ini loads unchanged; problems are reported at once."""

from __future__ import annotations

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
    assert any("[IncidentIQ] Instance" in p for p in problems_of(excinfo))


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
    assert "pageszie" in problem.lower()
    assert "did you mean 'pagesize'" in problem.lower()


def test_unknown_section_names_section_and_suggests(tmp_path):
    path = write_variant(tmp_path, extra="\n[Genral]\nPageSize: 10\n")
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={})
    [problem] = problems_of(excinfo)
    assert "[Genral]" in problem
    assert "general" in problem.lower()


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
                "[General] Threads", "[General] Timeout", "retries", "[Databse]",
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


def test_unparseable_file_is_a_config_error(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text("[IncidentIQ]\nInstance: a\nInstance: b\n")
    with pytest.raises(ConfigError) as excinfo:
        config.load(path, env={})
    assert "cannot be parsed" in str(excinfo.value)


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
