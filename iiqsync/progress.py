"""Progress bars on a terminal (rich); silent elsewhere so logs stay clean."""

from __future__ import annotations


class Progress:
    """Per-entity page progress. A no-op when disabled."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._bar = None
        self._tasks: dict[str, int] = {}

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("{task.description:<10}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("pages"), TimeElapsedColumn(),
                            TextColumn("{task.fields[state]}"), transient=False)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def add(self, entity: str, total: int) -> None:
        if self._bar is None:
            return
        if entity in self._tasks:
            self._bar.update(self._tasks[entity], total=total)
        else:
            self._tasks[entity] = self._bar.add_task(entity, total=total, state="")

    def total(self, entity: str, total: int) -> None:
        if self._bar is not None and entity in self._tasks:
            self._bar.update(self._tasks[entity], total=total, completed=0, state="re-reading")

    def advance(self, entity: str, n: int = 1) -> None:
        if self._bar is not None and entity in self._tasks:
            self._bar.advance(self._tasks[entity], n)

    def set(self, entity: str, completed: int) -> None:
        if self._bar is not None and entity in self._tasks:
            self._bar.update(self._tasks[entity], completed=completed)

    def done(self, entity: str, state: str) -> None:
        if self._bar is None:
            return
        if entity not in self._tasks:
            self._tasks[entity] = self._bar.add_task(entity, total=1, state="")
        self._bar.update(self._tasks[entity], state=state)
