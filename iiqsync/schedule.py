"""The beat schedule: one row per entity, read from [Schedule] in the config.

    [Schedule]
    Default: 0 2 * * *        ; every entity at 02:00 unless it has its own line
    Tickets: 900              ; tickets every 15 minutes
"""

from __future__ import annotations

from .config import Settings, parse_schedule
from .entities import ENTITIES


def beat_schedule(settings: Settings) -> dict:
    """Celery ``beat_schedule``: a ``plan`` task per entity on its own timetable."""
    default = settings.get("Schedule", "Default")
    table = {}
    for entity in ENTITIES.values():
        spec = settings.get("Schedule", entity.table_key) or default
        table[f"sync-{entity.name}"] = {
            "task": "iiqsync.plan",
            "schedule": parse_schedule(spec),
            "args": (entity.name,),
            # A plan that waited past its next slot is stale: the next one will come.
            "options": {"expires": 3600},
        }
    return table
