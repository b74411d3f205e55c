"""Progress bars for the library's progress callbacks (mstar_data/progress.py): one rich bar per task name on a
terminal; in a log file (not a terminal), one plain line per task at each quarter and at the end, so the file
shows the real totals rather than a frozen bar."""

from __future__ import annotations

from mstar_cli.options import console, say


class ProgressBars:
    """`with ProgressBars() as progress:` then pass `progress` to the library; `progress.log` prints a line
    above the bars."""

    def __init__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.live = console.is_terminal
        self.bars = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TextColumn("{task.fields[rate]}", markup=False), console=console,
                             transient=False)
        self.tasks: dict[str, int] = {}
        self.logged: dict[str, int] = {}  # without a terminal: the last quarter logged per task

    def __enter__(self) -> "ProgressBars":
        if self.live:
            self.bars.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.bars.__exit__(*exc)

    def __call__(self, task: str, done: int, total: int, note: str = "") -> None:
        if not self.live:
            quarter = 4 * done // total if total else 4
            if quarter > self.logged.get(task, 0) or (task not in self.logged and done == 0):
                self.logged[task] = quarter
                say(f"{task}: {done:,}/{total:,}{' ' + note if note else ''}")
            return
        if task not in self.tasks:
            self.tasks[task] = self.bars.add_task(task, total=total, completed=done, rate=note)
        else:
            self.bars.update(self.tasks[task], completed=done, total=total, rate=note)

    def log(self, message: str) -> None:
        say(message)
