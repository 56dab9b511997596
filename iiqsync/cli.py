"""The ``iiqsync`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

from . import argtypes, config
from .entities import ENTITIES, get_entity
from .errors import ConfigError, IIQSyncError
from .runs import utcnow

log = logging.getLogger("iiqsync")

EPILOG = """\
Settings come from config.ini (or --config / IIQSYNC_CONFIG) and IIQSYNC_<SECTION>_<KEY>
environment variables, e.g. IIQSYNC_INCIDENTIQ_TOKEN. Run 'iiqsync config' to see them.
--config FILE goes before or after the command: 'iiqsync --config FILE sync' or
'iiqsync sync --config FILE' (given both, the later one counts).
Entities: """ + ", ".join(ENTITIES)

CONFIG_HELP = ("path of config.ini (default: $IIQSYNC_CONFIG, else ./config.ini); also "
               "accepted before the command")


def version() -> str:
    """The installed package's version, or the source tree's when not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("iiqsync")
    except PackageNotFoundError:
        return _source_version() or "unknown"


def _source_version() -> str | None:
    """The version in pyproject.toml next to this package (a checkout run without
    being installed)."""
    import tomllib
    from pathlib import Path

    try:
        with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as f:
            project = tomllib.load(f).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return project.get("version") if project.get("name") == "iiqsync" else None


class _Version(argparse.Action):
    """--version, with the version looked up only when asked for."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"iiqsync {version()}")
        parser.exit()


# A subcommand's --config: when not given, the attribute is left alone (SUPPRESS),
# and main() takes the one given before the command.
_CONFIG = dict(metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
# -v after the command too; its own dest, so that one given before is not erased.
_VERBOSE = dict(action="count", dest="verbose_after", default=0,
                help="more log output (-vv for debug), as before the command")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="iiqsync",
        description="Copy Incident IQ users, assets, locations, rooms, teams, tickets and "
                    "custom fields into a SQL database.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="more log output (-vv for debug)")
    p.add_argument("--version", action=_Version, help="print iiqsync's version and exit")
    # Its own dest: a subcommand's --config (default: not given) must not erase it.
    p.add_argument("--config", dest="global_config", metavar="FILE",
                   help="path of config.ini (default: $IIQSYNC_CONFIG, else ./config.ini); "
                        "before or after the command, the later one counts")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("sync", help="sync entities now (on the broker, or in-process)",
                       description="Sync entities. With a broker configured ([Celery] BrokerUrl) "
                                   "this enqueues one plan task per entity for the workers; "
                                   "with --local, or without a broker, it runs the same job "
                                   "in this process on [General] Threads threads.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("entities", nargs="*", metavar="ENTITY",
                   help="entities to sync: " + ", ".join(ENTITIES) + " (default, or 'all': every one)")
    s.add_argument("--config", **_CONFIG)
    s.add_argument("-v", "--verbose", **_VERBOSE)
    s.add_argument("--local", action="store_true", help="run in this process, no broker")
    s.add_argument("--wait", action="store_true",
                   help="with a broker: wait for the runs to end and print the outcome")
    s.add_argument("--timeout", type=argtypes.positive, default=6 * 3600,
                   help="with --wait: give up waiting after this many seconds")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")

    d = sub.add_parser("demo", help="run the bundled IIQ simulator and sync it into SQLite",
                       description="Start the bundled IIQ simulator on a free loopback port, "
                                   "sync every entity into a SQLite file in-process, and print "
                                   "what landed. Needs no account, broker or server.")
    d.add_argument("-v", "--verbose", **_VERBOSE)
    d.add_argument("--db", default="iiqsync.db",
                   help="SQLite file (default %(default)s, the file 'iiqsync status' reads "
                        "when nothing else is configured)")
    d.add_argument("--users", type=argtypes.count, default=1500, help="users in the district "
                   "(default %(default)s)")
    d.add_argument("--assets", type=argtypes.count, default=3000, help="assets (default %(default)s)")
    d.add_argument("--tickets", type=argtypes.count, default=2500, help="tickets (default %(default)s)")
    d.add_argument("--page-size", type=argtypes.page_size, default=250,
                   help="items per API page, 1 to 1000 (default %(default)s)")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")

    f = sub.add_parser("fake-iiq", help="run the bundled IIQ API simulator", add_help=False)
    f.add_argument("args", nargs=argparse.REMAINDER)

    st = sub.add_parser("status", help="latest runs per entity",
                        description="Print the latest run of each entity and, with a Redis "
                                    "broker, what waits in its queue for a worker. With "
                                    "--max-age, exit 1 when an entity has not succeeded within "
                                    "that many hours (for a monitoring check).")
    st.add_argument("--config", **_CONFIG)
    st.add_argument("-v", "--verbose", **_VERBOSE)
    st.add_argument("--max-age", type=argtypes.positive, metavar="HOURS",
                    help="exit 1 if an entity's last success is older than this")
    st.add_argument("--runs", type=argtypes.at_least_one, default=1, help="runs to show per entity")

    sw = sub.add_parser("sweep", help="drop staging tables left by dead runs",
                        description="End runs whose lock expired, whose tasks Redis lost or "
                                    "whose in-process sync was killed on this machine, and drop "
                                    "the staging tables no running run owns. Every plan does this "
                                    "first; run it by hand to tidy up without syncing.")
    sw.add_argument("--config", **_CONFIG)
    sw.add_argument("-v", "--verbose", **_VERBOSE)

    u = sub.add_parser("unlock", help="end an entity's running run by hand and free the entity",
                       description="End the running run of each ENTITY as failed, drop its "
                                   "staging tables and free the entity, so the next sync starts "
                                   "at once. For a run whose process was killed where this "
                                   "machine cannot see it (another host or container); a run "
                                   "killed on this machine is ended by the next sync itself. "
                                   "Safe even if the run is alive: its swap is then refused and "
                                   "the final tables keep their rows.")
    u.add_argument("entities", nargs="+", metavar="ENTITY", help="entities to free, or 'all'")
    u.add_argument("--config", **_CONFIG)
    u.add_argument("-v", "--verbose", **_VERBOSE)

    c = sub.add_parser("config", help="check the configuration and print it (secrets masked)",
                       description="Print every setting with its value, from the config file "
                                   "and IIQSYNC_* variables (secrets masked), then check that "
                                   "a sync could start: exit 0 when ready, 2 with each problem "
                                   "named when not.")
    c.add_argument("--config", **_CONFIG)
    c.add_argument("-v", "--verbose", **_VERBOSE)
    return p


def _simulator_args(argv: list[str]) -> list[str] | None:
    """The simulator's own arguments when the command is fake-iiq, after any of the
    global options (-v, --config FILE), which it has no use for; else None."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] == "--config" else 1
    return argv[i + 1:] if i < len(argv) and argv[i] == "fake-iiq" else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    simulator_args = _simulator_args(argv)
    if simulator_args is not None:
        # The simulator parses its own arguments (its --help lists every knob).
        from .simulator.server import main as simulator_main

        return simulator_main(simulator_args) or 0
    parser = _parser()
    args = parser.parse_args(argv)
    # --config after the command wins over one before it (it comes later).
    if "config" not in vars(args):
        args.config = args.global_config
    if args.config:
        # The Celery app reads its broker from the settings when it is first
        # imported: it must see the file given here, not ./config.ini.
        os.environ["IIQSYNC_CONFIG"] = str(args.config)
    verbose = args.verbose + getattr(args, "verbose_after", 0)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    # A cron or systemd timeout sends SIGTERM: end the way Ctrl-C does, so a local
    # run records its failure, drops its staging tables and frees its lock.
    signal.signal(signal.SIGTERM, _terminated)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, UsageError) as exc:
        print(f"iiqsync: {exc}", file=sys.stderr)
        return 2
    except IIQSyncError as exc:
        print(f"iiqsync: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Only an in-process sync has runs of its own to record; enqueued runs go on
        # on the workers whether or not this command waits for them.
        if _ran_local:
            said = "interrupted; unfinished runs were recorded as failed"
        elif args.command == "sync":
            said = "interrupted; the runs sent to the workers go on ('iiqsync status' shows them)"
        else:
            said = "interrupted"
        print(f"iiqsync: {said}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: the reader left, nothing went wrong.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _terminated(signum, frame):
    raise KeyboardInterrupt


# -- sync -------------------------------------------------------------------------
def _entities(names: list[str]) -> list[str]:
    if not names or "all" in names:
        return list(ENTITIES)
    out, problems = [], []
    for name in names:
        try:
            entity = get_entity(name).name
        except KeyError as exc:
            problems.append(str(exc.args[0]))
            continue
        if entity not in out:
            out.append(entity)
    if problems:
        raise UsageError("; ".join(problems))
    return out


class UsageError(IIQSyncError):
    """The command line names something that does not exist."""


def cmd_sync(args) -> int:
    entities = _entities(args.entities)
    settings = config.load(args.config, require_iiq=True)
    if args.local or not settings.broker_url:
        if not args.local:
            print("iiqsync: no broker configured ([Celery] BrokerUrl); running in-process",
                  file=sys.stderr)
        return _run_local(settings, entities, progress=not args.no_progress)
    return _enqueue(settings, entities, args.wait, args.timeout, not args.no_progress)


# Set once an in-process sync starts: what an interruption should say.
_ran_local = False


def _run_local(settings, entities, progress=True) -> int:
    global _ran_local
    _ran_local = True
    from . import local, pipeline
    from .progress import Progress

    pipeline.context(settings)  # one clear error if the database cannot be used
    with Progress(enabled=progress and sys.stderr.isatty()) as bar:
        results = local.sync(settings, entities, bar)
    _print_results(results)
    return 0 if all(r["status"] in ("succeeded", "skipped") for r in results) else 1


def _print_results(results) -> None:
    width = max(len(r["entity"]) for r in results)
    for r in results:
        line = f"{r['entity']:<{width}}  {r['status']:<9}"
        if r["status"] == "succeeded":
            line += f"  {r['rows']:>9,} rows"
            if r.get("moved"):
                line += f"  ({r['moved']} moved during the run)"
            if r.get("skipped"):
                line += f"  ({r['skipped']} items without a key skipped)"
        if "seconds" in r:
            line += f"  {r['seconds']:.1f}s"
        if r.get("error") or r.get("reason"):
            line += f"  {r.get('error') or r.get('reason')}"
        print(line)


def _enqueue(settings, entities, wait, timeout, progress) -> int:
    from . import pipeline
    from .tasks import plan

    pipeline.context(settings)  # the database is reachable and iiqsync's tables exist
    _check_broker(settings)
    task_ids = {}
    for name in entities:
        task_ids[name] = _sent(plan.delay(name))
        print(f"enqueued {name}: run {task_ids[name].replace('-', '')}")
    _say_if_no_worker(settings)
    if not wait:
        return 0
    return _wait(settings, task_ids, timeout, progress)


def _sent(result) -> str:
    """The id of a task just sent; nothing else of its result object is kept.

    Sending a task with the Redis result backend subscribes to its result (pub/sub,
    for a ``.get()`` that iiqsync never calls: ``--wait`` follows the run in the
    database). Left subscribed, the result object's ``__del__`` unsubscribes, over
    the network, whenever it is collected, which can be at interpreter shutdown,
    when that fails and Python prints "Exception ignored in AsyncResult.__del__".
    Unsubscribed here, while the connection is up, its ``__del__`` has nothing to do."""
    result.backend.remove_pending_result(result)
    return result.id


def _say_if_no_worker(settings) -> None:
    """A run waits in the queue until a worker takes it: say so when none answers
    now (workers that scale from zero, as with KEDA, start once the queue fills)."""
    from .celery import app

    try:
        # limit=1: the first answer is enough, rather than waiting out the timeout.
        answered = app.control.inspect(timeout=1.0, limit=1).ping()
    except Exception:  # the broker was reachable a moment ago; this is only a hint
        return
    if not answered:
        print(f"note: no worker answered on {config._mask_url(settings.broker_url)}; the runs wait "
              "in the queue until one starts (celery -A iiqsync worker)", file=sys.stderr)


def _check_broker(settings) -> None:
    """One clear message instead of Celery's reconnect loop when Redis is away."""
    from .celery import app
    from .config import _mask_url

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:
        from .errors import FatalError

        raise FatalError(f"cannot reach the broker {_mask_url(settings.broker_url)}: "
                         f"{exc} (check [Celery] BrokerUrl)") from None


UNSEEN_AFTER = 30.0  # seconds before --wait says a run has not started


def _wait(settings, task_ids: dict[str, str], timeout: float, progress: bool) -> int:
    """Follow the runs in the database until each has ended; a plan task that died
    before recording its run is reported from its Celery result."""
    from . import pipeline
    from .celery import app
    from .progress import Progress

    run_ids = {name: task_id.replace("-", "") for name, task_id in task_ids.items()}
    # Read with a GET of the stored result when asked; never subscribed to.
    results = {name: app.AsyncResult(task_id) for name, task_id in task_ids.items()}
    books = pipeline.context(settings).books
    started = time.monotonic()
    deadline = started + timeout
    final: dict[str, dict] = {}
    followed: set[str] = set()
    unseen_said = False
    with Progress(enabled=progress and sys.stderr.isatty()) as bar:
        while len(final) < len(run_ids) and time.monotonic() < deadline:
            for name, run_id in run_ids.items():
                if name in final:
                    continue
                run = books.get(run_id)
                if run is None:
                    if results[name].state == "FAILURE":
                        error = results[name].result
                        final[name] = {"entity": name, "status": "failed",
                                       "error": f"{type(error).__name__}: {error}"}
                        bar.done(name, "failed")
                    elif not unseen_said and time.monotonic() - started > UNSEEN_AFTER:
                        unseen_said = True
                        database = config._mask_url(settings.connection_string)
                        print(f"note: run {run_id} of {name} is not in {database} after "
                              f"{UNSEEN_AFTER:g}s: no worker has taken it yet, or the "
                              "workers write to another database "
                              "([Database] ConnectionString must be the same here as theirs)",
                              file=sys.stderr)
                    continue
                if run.pages:
                    bar.add(name, run.pages)
                    bar.set(name, books.page_summary(run_id, pages=(0, pipeline.ROUND_STRIDE))["done"])
                behind = run.layout.get("behind") if run.status == "skipped" else None
                if behind and name not in followed and books.get(behind) is not None:
                    # The entity was busy with an earlier run (a retried job, a second
                    # trigger): its outcome is what this sync is waiting for. (A lock
                    # whose run has no record is reported as the skip it caused.)
                    followed.add(name)
                    run_ids[name] = behind
                    print(f"{name}: run {behind}, started earlier, is in progress; waiting for it",
                          file=sys.stderr)
                    continue
                if run.status != "running":
                    with books.engine.connect() as conn:
                        row = conn.execute(books.runs.select()
                                           .where(books.runs.c.run_id == run_id)).first()
                    final[name] = {"entity": name, "status": row.status, "rows": row.rows or 0,
                                   "moved": row.moved, "skipped": row.skipped,
                                   "error": row.error if row.status != "succeeded" else None,
                                   "seconds": ((row.finished or row.started) - row.started)
                                   .total_seconds()}
                    bar.done(name, row.status)
            time.sleep(0.5)
    for name, run_id in run_ids.items():
        if name not in final:
            untaken = books.get(run_id) is None
            final[name] = {"entity": name, "status": "waiting",
                           "error": (f"not started after {timeout:g}s: no worker has taken it"
                                     if untaken else f"still running after {timeout:g}s")}
    _print_results(list(final.values()))
    return 0 if all(r["status"] in ("succeeded", "skipped") for r in final.values()) else 1


# -- demo -------------------------------------------------------------------------
def cmd_demo(args) -> int:
    from .simulator.district import District
    from .simulator.server import SimulatorServer

    district = District(users=args.users, assets=args.assets, tickets=args.tickets)
    token = "iiqsync-demo-token"
    if os.path.exists(args.db):
        print(f"updating {args.db} (existing tables are replaced atomically)")
    with SimulatorServer(district, token=token) as server:
        print(f"IIQ simulator listening on {server.url}")
        env = {"IIQSYNC_INCIDENTIQ_INSTANCE": server.url, "IIQSYNC_INCIDENTIQ_TOKEN": token,
               "IIQSYNC_DATABASE_CONNECTIONSTRING": f"sqlite:///{args.db}",
               "IIQSYNC_GENERAL_PAGESIZE": str(args.page_size),
               "IIQSYNC_INCIDENTIQ_REQUESTSPERSECOND": "1000"}
        settings = config.load(path=os.devnull, env=env)
        started = time.monotonic()
        code = _run_local(settings, list(ENTITIES), progress=not args.no_progress)
        print(f"\nsynced in {time.monotonic() - started:.1f}s into {args.db}:")
    _print_tables(settings)
    status = "iiqsync status"
    if _configured_database(args.config) != f"sqlite:///{args.db}":
        # The demo's file is not what `iiqsync status` would read here (a config.ini
        # or the environment names another database).
        status = f"IIQSYNC_DATABASE_CONNECTIONSTRING=sqlite:///{args.db} iiqsync status"
    print(f"\nRun history: {status}\n"
          f"Query it:    sqlite3 {args.db} 'SELECT AssetTag, ModelName, LocationName "
          "FROM Assets LIMIT 5'")
    return code


def _print_tables(settings) -> None:
    import sqlalchemy as sa

    from . import db

    engine = db.get_engine(settings.connection_string)
    names = []
    for entity in ENTITIES.values():
        names.append(settings.table_name(entity.table_key))
        if entity.custom_fields:
            names.append(settings.table_name(entity.custom_fields.table_key))
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        for name in names:
            if not inspector.has_table(name, schema=settings.schema):
                print(f"  {name:<20} (missing)")
                continue
            table = sa.Table(name, sa.MetaData(), schema=settings.schema)
            count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            cols = len(inspector.get_columns(name, schema=settings.schema))
            print(f"  {name:<20} {count:>8,} rows  {cols:>3} columns")


# -- status -----------------------------------------------------------------------
def _configured_database(path: str | None = None) -> str | None:
    try:
        return config.load(path, require_iiq=False).connection_string
    except ConfigError:
        return None


def _no_database_file(settings, nothing: str) -> bool:
    """Whether the database is a SQLite file that does not exist, said as ``nothing``
    and why. Reading it would create an empty file: most likely the wrong directory or
    config file, which the message names."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(settings.connection_string)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or os.path.exists(
            parsed.database):
        return False
    where = settings.source or "no config file: defaults and environment"
    print(f"{nothing}: the SQLite file {os.path.abspath(parsed.database)} does not exist "
          f"({where})", file=sys.stderr)
    return True


def cmd_status(args) -> int:
    from . import pipeline

    settings = config.load(args.config, require_iiq=False)
    if _no_database_file(settings, "no runs yet"):
        return 1 if args.max_age is not None else 0
    books = pipeline.context(settings).books
    print(f"runs in {config._mask_url(settings.connection_string)}", file=sys.stderr)
    now = utcnow()
    last_ok = books.last_success()
    rows = books.latest(args.runs)
    stale = [] if args.max_age is None else [
        n for n in ENTITIES
        if n not in last_ok or (now - last_ok[n]).total_seconds() > args.max_age * 3600]

    def last_success(entity: str) -> str:
        # The age of the entity's last success, whatever its latest run did.
        age = _age(now - last_ok[entity]) if entity in last_ok else "never"
        return f"{age} STALE" if entity in stale else age

    queue = _read_queue(settings)
    queued = set(queue[1]["plans"]) if queue[1] else set()
    columns = _columns()
    print(f"{'entity':<10} {'status':<9} {'started (UTC)':<19} {'took':>7} {'rows':>9}  "
          f"{'last success':<15} error")
    untold = []  # runs whose error does not fit on their row: printed whole below
    for r in sorted(rows, key=lambda r: (r.entity, r.started), reverse=False):
        took = f"{(r.finished - r.started).total_seconds():.0f}s" if r.finished else "-"
        line = (f"{r.entity:<10} {r.status:<9} {r.started:%Y-%m-%d %H:%M:%S} {took:>7} "
                f"{(r.rows if r.rows is not None else '-'):>9}  {last_success(r.entity):<15} ")
        error = (r.error or "").strip() if r.status != "succeeded" else ""
        room = max(columns - len(line), STATUS_ERROR_MIN)
        if "\n" in error or len(error) > room:
            untold.append(r)
            error = error.partition("\n")[0][:room - 1] + "…"
        print((line + error).rstrip())
    seen = {r.entity for r in rows}
    for name in ENTITIES:
        if name not in seen:
            state = "queued" if name in queued else "-"
            print(f"{name:<10} {state:<9} {'-':<19} {'-':>7} {'-':>9}  {last_success(name)}")
    if untold:
        _print_errors(untold, columns)
    _print_queue(queue)
    if stale:
        print(f"STALE: no success within {args.max_age:g}h: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


def _read_queue(settings) -> tuple[str, dict | None, str | None]:
    """What waits on the broker for a worker: a sync sent while no worker runs (or
    all are busy) has no run in the database yet, and would not show otherwise.
    (where, what waits or None without a Redis broker, why it could not be read)."""
    import redis

    from . import broker
    from .celery import app

    where = config._mask_url(settings.broker_url or "")
    try:
        return where, broker.waiting(settings, app.conf.task_default_queue), None
    except redis.exceptions.RedisError as exc:
        return where, None, type(exc).__name__


def _print_queue(queue: tuple[str, dict | None, str | None]) -> None:
    where, found, error = queue
    if error:
        print(f"\nqueue on {where}: cannot be read ({error})")
    elif found is None:
        return
    elif not found["total"]:
        print(f"\nqueue on {where}: empty")
    else:
        parts = []
        if found["plans"]:
            parts.append(f"runs not started yet: {', '.join(found['plans'])}")
        if found["pages"]:
            parts.append(f"{found['pages']:,} page tasks")
        if found["other"]:
            parts.append(f"{found['other']:,} other messages")
        print(f"\nqueue on {where}: {found['total']:,} waiting for a worker "
              f"({'; '.join(parts)})")


# The error column of `iiqsync status` is at least this wide, however narrow the
# terminal; an error longer than the room left is printed whole under the table.
STATUS_ERROR_MIN = 40


def _columns() -> int:
    """The terminal's width; when the output is not a terminal, a width that keeps a
    row of the table on one line for most errors ($COLUMNS if set)."""
    import shutil

    return shutil.get_terminal_size((160, 24)).columns


def _print_errors(runs, columns: int) -> None:
    """The whole error of each run, under the table: wrapped to the terminal's width,
    or, piped, each line of it whole (so that grep finds it)."""
    import textwrap

    wrap = sys.stdout.isatty()
    print("\nerrors:")
    for r in runs:
        print(f"  {r.entity}: {r.status} run {r.run_id} (started "
              f"{r.started:%Y-%m-%d %H:%M:%S} UTC)")
        for part in r.error.strip().splitlines():
            text = part.strip()
            indent = "    " + part[:len(part) - len(text)]
            if not wrap:
                print(indent + text)
                continue
            # A list item ("- [General] PageSize: ...") wraps under its text.
            hang = indent + ("  " if text.startswith("- ") else "")
            print(textwrap.fill(text, width=max(columns, STATUS_ERROR_MIN), initial_indent=indent,
                                subsequent_indent=hang, break_long_words=False,
                                break_on_hyphens=False))


def _age(delta) -> str:
    seconds = delta.total_seconds()
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f}h ago"
    return f"{seconds / 86400:.1f}d ago"


def cmd_sweep(args) -> int:
    from . import pipeline

    settings = config.load(args.config, require_iiq=False)
    if _no_database_file(settings, "nothing to sweep"):
        return 0
    dropped = pipeline.sweep(pipeline.context(settings))
    print(f"dropped {len(dropped)} leftover staging table(s)" +
          (": " + ", ".join(dropped) if dropped else ""))
    return 0


def cmd_unlock(args) -> int:
    from . import pipeline

    settings = config.load(args.config, require_iiq=False)
    if _no_database_file(settings, "nothing to unlock"):
        return 0
    books = pipeline.context(settings).books
    for entity in _entities(args.entities):
        run_id = books.lock_holder(entity)
        if run_id is None:
            print(f"{entity}: not locked")
            continue
        pipeline.fail(settings, entity, run_id, "ended by hand (iiqsync unlock)")
        print(f"{entity}: run {run_id} ended as failed; the entity is free")
    return 0


def cmd_config(args) -> int:
    try:
        settings = config.load(args.config, require_iiq=False)
    except ConfigError:
        # Nothing to print: name every problem at once, those of the IIQ keys too.
        config.load(args.config, require_iiq=True)
        raise
    print(f"# from {settings.source or 'defaults and environment'}")
    ignored = {f"[{k.section}] {k.name}": k.help for k in config.KEYS if k.help.startswith("ignored")}
    for key, value in settings.redacted().items():
        note = f"   ; {ignored[key]}" if key in ignored else ""
        print(f"{key} = {'' if value is None else value}{note}")
    problems = []
    try:
        config.load(args.config, require_iiq=True)
    except ConfigError as exc:
        problems += exc.problems
    problems += _database_problems(settings)
    if problems:
        print(f"\nnot ready to sync: {ConfigError(problems)}", file=sys.stderr)
        return 2
    print(f"\nready to sync: the settings are complete and the database {_where(settings)} "
          "can be used", file=sys.stderr)
    return 0


def _where(settings) -> str:
    return config._mask_url(settings.connection_string)


def _database_problems(settings) -> list[str]:
    """Whether a sync could use the database: its driver loads and it answers. A
    SQLite file is not created for the check; its folder must exist."""
    import sqlalchemy as sa

    from . import db

    try:
        engine = db.get_engine(settings.connection_string)
    except ConfigError as exc:
        return exc.problems
    if engine.dialect.name == "sqlite":
        folder = os.path.dirname(os.path.abspath(engine.url.database or "."))
        return [] if os.path.isdir(folder) else [
            f"[Database] ConnectionString: the folder {folder} of the SQLite file does not exist"]
    try:
        with engine.connect():
            pass
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig or exc).strip().splitlines()[0][:300]
        return [f"[Database] ConnectionString: cannot connect to {_where(settings)}: {first}"]
    return []


COMMANDS = {"sync": cmd_sync, "demo": cmd_demo, "status": cmd_status, "sweep": cmd_sweep,
            "unlock": cmd_unlock,
            "config": cmd_config}
