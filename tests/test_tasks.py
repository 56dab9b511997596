"""Task names are part of the wire format: messages already queued must still find
their task after an upgrade, so the names are pinned here."""

from iiqsync.celery import app


def test_task_names_are_pinned():
    import iiqsync.tasks  # noqa: F401  (registers the tasks)

    names = {n for n in app.tasks if n.startswith("iiqsync.")}
    assert names == {"iiqsync.plan", "iiqsync.fetch_page", "iiqsync.finalize",
                     "iiqsync.fail_run", "iiqsync.record_failure", "iiqsync.sync_all",
                     "iiqsync.sweep"}


def test_reliability_settings():
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit > conf.task_soft_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.result_expires


def test_beat_schedule_has_every_entity():
    from iiqsync.entities import ENTITIES

    schedule = app.conf.beat_schedule
    assert {v["args"][0] for v in schedule.values()} == set(ENTITIES)
    assert all(v["task"] == "iiqsync.plan" for v in schedule.values())
