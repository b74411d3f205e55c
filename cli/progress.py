"""Progress bars for the library's progress callbacks (mstar_data/progress.py): one rich bar per task name."""

from __future__ import annotations

from mstar_cli.options import console


class ProgressBars:
    """`with ProgressBars() as progress:` then pass `progress` to the library; `progress.log` prints a line
    above the bars."""

    def __init__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TextColumn("{task.fields[rate]}"), console=console,
                             transient=False)
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> "ProgressBars":
        self.bars.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.__exit__(*exc)

    def __call__(self, task: str, done: int, total: int, note: str = "") -> None:
        if task not in self.tasks:
            self.tasks[task] = self.bars.add_task(task, total=total, completed=done, rate=note)
        else:
            self.bars.update(self.tasks[task], completed=done, total=total, rate=note)

    def log(self, message: str) -> None:
        self.bars.console.print(message, markup=False, highlight=False)
