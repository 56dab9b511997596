"""Flower's settings for iiqsync. ``celery -A iiqsync flower`` reads this file from
its working directory (the image's /app, or a checkout's root); elsewhere pass
``--conf=PATH``. Any setting can also come from the environment as FLOWER_<NAME>,
which wins over this file.

The login is never written here: Flower takes it from FLOWER_BASIC_AUTH
(``user:password``, from a secret), and the image's entrypoint refuses to start
Flower without it.
"""

# The tasks page shows each task's arguments: iiqsync's tasks describe themselves
# as ``entity=assets run=<run id> page=7`` (see iiqsync/tasks.py), so one run's plan,
# page and finalize tasks can be found by searching for its run id.
tasks_columns = "name,state,args,received,runtime,worker,uuid"
