"""A timing with a button to take it again.

A time measured on a laptop moves with whatever else the laptop is doing: one unlucky run can show a cache hit
slower than a cold start. Where a lesson's claim rests on a timing, this view shows the measurement's sentence
with a "Measure again" button beside it, and keeps every run, so the learner sees the spread for themselves.
"""

from __future__ import annotations

import html
from typing import Callable, Generic, TypeVar

import ipywidgets as W

from .style import ErrorBox

M = TypeVar("M")


class MeasureAgain(Generic[M]):
    """Runs `take()` now and at every click; shows `describe(measurement)` and how many runs there were."""

    def __init__(self, take: Callable[[], M], describe: Callable[[M], str], *, label: str = "Measure again"):
        self.take, self.describe, self.label = take, describe, label
        self.measurements: list[M] = []
        self.errors = ErrorBox()
        self.button = W.Button(description=label, icon="refresh", tooltip="Take the measurement again",
                               layout=W.Layout(width="auto", flex="0 0 auto"))
        self.text = W.HTML()
        self.button.on_click(lambda _: self.run())
        self.widget = W.VBox([W.HBox([self.button, self.text], layout=W.Layout(align_items="center")),
                              self.errors.widget])
        self.run()

    @property
    def latest(self) -> M:
        """The last measurement taken."""
        return self.measurements[-1]

    def run(self) -> None:
        """Measure once more (the button is disabled meanwhile) and show the new sentence."""
        self.button.disabled, self.button.description = True, "Measuring…"
        try:
            measured = self.errors.attempt(self.take)
        finally:
            self.button.disabled, self.button.description = False, self.label
        if measured is None:
            return
        self.measurements.append(measured)
        runs = len(self.measurements)
        count = "first run" if runs == 1 else f"run {runs}"
        self.text.value = (f'<span class="wb-measured">{html.escape(self.describe(measured))}</span> '
                           f'<span style="color:#666">({count})</span>')
