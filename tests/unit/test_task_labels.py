"""How a task shows itself in Flower (argsrepr) and in the worker's log lines."""

import logging

from iiqsync import logs, tasks
from iiqsync.pipeline import ROUND_STRIDE

RUN = "3f9c0e1b2a4d4e5f8a9b0c1d2e3f4a5b"


def test_flower_shows_entity_run_and_page():
    show = lambda task, *args, **kw: tasks.describe(tasks.run_fields(task, args, **kw))  # noqa: E731
    plan_id = "3f9c0e1b-2a4d-4e5f-8a9b-0c1d2e3f4a5b"  # the plan's task id is the run id
    assert show(tasks.plan, "assets", task_id=plan_id) == "assets run=3f9c0e1b2a4d…"
    assert show(tasks.fetch_page, "assets", RUN, 7) == "assets run=3f9c0e1b2a4d… page=7"
    assert show(tasks.fetch_page, "assets", RUN, 2 * ROUND_STRIDE + 7) == \
        "assets run=3f9c0e1b2a4d… page=7 pass=3"
    results = [{"page": p, "rows": 1000} for p in range(1, 40)]
    assert show(tasks.finalize, results, "assets", RUN, 0) == "assets run=3f9c0e1b2a4d…"
    assert show(tasks.finalize, results, "assets", RUN, 1) == "assets run=3f9c0e1b2a4d… pass=2"
    assert show(tasks.sync_all) == ""  # Celery's own repr, "()"


def test_argsrepr_is_set_when_a_task_is_sent(monkeypatch):
    sent = {}

    def send_task(name, args=None, kwargs=None, **options):
        sent.update(options, name=name, args=args)
        return None

    monkeypatch.setattr(tasks.app, "send_task", send_task)
    tasks.fetch_page.apply_async(("users", RUN, 3))
    assert sent["argsrepr"] == "users run=3f9c0e1b2a4d… page=3"
    assert sent["args"] == ("users", RUN, 3)
    tasks.plan.apply_async(("users",))
    assert sent["argsrepr"] == f"users run={sent['task_id'].replace('-', '')[:12]}…"


def test_log_records_carry_the_run(caplog):
    logs.install()
    formatter = logging.Formatter(logs.WORKER_LOG_FORMAT)
    log = logging.getLogger("iiqsync.test")
    with caplog.at_level(logging.INFO, logger="iiqsync.test"):
        with logs.fields(entity="assets", run=RUN, page=7):
            log.info("staged")
        log.info("idle")
    inside, outside = (formatter.format(r) for r in caplog.records)
    assert inside.endswith(f"] entity=assets run={RUN} page=7 iiqsync.test: staged")
    assert outside.endswith("] iiqsync.test: idle")
