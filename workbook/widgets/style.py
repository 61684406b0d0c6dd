"""Shared look of every view: a colour-blind-safe palette (Okabe & Ito), how errors are shown, how money is written."""

from __future__ import annotations

import html
from typing import Callable, TypeVar

import ipywidgets as W

T = TypeVar("T")

# Each provenance has a colour and a word: the word carries the meaning for readers who cannot tell the colours apart.
PROVENANCE_COLOURS = {
    "computed": "#E69F00",  # orange: this row was computed in this request
    "loaded": "#0072B2",  # blue: loaded from a cache, no compute spent
    "invalidated": "#D55E00",  # vermillion: was cacheable, but a change before it broke the prefix
}
ACCEPTED, REJECTED, BONUS = "#009E73", "#CC79A7", "#56B4E9"  # speculative decoding: green, purple, sky blue
TEXT_ON = {"#E69F00": "#000000", "#0072B2": "#FFFFFF", "#D55E00": "#FFFFFF", "#009E73": "#FFFFFF",
           "#CC79A7": "#000000", "#56B4E9": "#000000"}
# Series with no provenance (providers, TTLs, methods) take the palette's other colours, so that orange and blue
# keep meaning computed and loaded in every chart.
CHART_COLOURS = ["#56B4E9", "#009E73", "#CC79A7", "#F0E442", "#000000", "#999999"]
# Decoding without and with a KV cache (lessons 3 and 7) is a method, not a provenance: the palette's first
# two chart colours, in every chart and widget that compares the two.
WITHOUT_CACHE, WITH_CACHE = CHART_COLOURS[0], CHART_COLOURS[1]


def use_workbook_palette() -> None:
    """Draw every plotly chart made after this in the workbook's palette instead of plotly's own colours."""
    import plotly.graph_objects as go
    import plotly.io as pio

    pio.templates["workbook"] = go.layout.Template(layout={"colorway": CHART_COLOURS})
    pio.templates.default = "plotly+workbook"


def legend_html(colours: dict[str, str]) -> str:
    """A one-line legend: a swatch and a word for each entry."""
    items = "".join(
        f'<span style="display:inline-block;margin-right:12px"><span style="display:inline-block;width:12px;height:12px;'
        f'background:{c};border:1px solid #333;vertical-align:middle"></span> {html.escape(name)}</span>'
        for name, c in colours.items()
    )
    return f'<div class="wb-legend">{items}</div>'


class ErrorBox:
    """Shows a bad-input message inside the view instead of a traceback."""

    def __init__(self):
        self.message = ""
        self.widget = W.HTML("")

    def show(self, error: Exception) -> None:
        self.message = str(error)
        self.widget.value = f'<div class="wb-error" style="color:#B00020;font-weight:bold">⚠ {html.escape(self.message)}</div>'

    def clear(self) -> None:
        self.message = ""
        self.widget.value = ""

    def attempt(self, work: Callable[[], T]) -> T | None:
        """`work()`'s result, clearing the box; or None, showing why, when it raises a ValueError (bad input)."""
        try:
            result = work()
        except ValueError as error:
            self.show(error)
            return None
        self.clear()
        return result


PER_MILLION_REQUESTS = 1_000_000  # costs are shown per request and per million requests


def usd(amount: float) -> str:
    """Dollars, with cents for big sums and enough digits to see a single request's fraction of a cent."""
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}" if abs(amount) >= 1 else f"{sign}${abs(amount):.6f}"
