"""One way for long work to say how far it has come: an optional `progress` callback that takes
a `Progress` event. Library code only calls it; the command line draws it (rich, in cli.py).

    def show(event: Progress) -> None:
        print(event.task, event.done, event.total, event.values)
    render_run(db, storage, progress=show)

`done` is always the count so far (never an increment), so a consumer can drop events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Progress:
    task: str  # what is being counted: "rendering", "epoch 3", "refiner", a stage's name
    done: int  # units finished so far
    total: int | None = None  # units in all, when known
    values: Mapping[str, float] = field(default_factory=dict)  # loss, accuracy, rate, failed...


Reporter = Callable[[Progress], None]


def report(progress: Reporter | None, task: str, done: int, total: int | None = None,
           **values: float) -> None:
    """Send an event when someone listens."""
    if progress is not None:
        progress(Progress(task, done, total, values))
