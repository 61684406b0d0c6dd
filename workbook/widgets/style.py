"""Shared look of every view: a colour-blind-safe palette (tests/test_palette.py), how errors are shown, how money is written."""

from __future__ import annotations

import html
from typing import Callable, TypeVar

import ipywidgets as W

T = TypeVar("T")

# Each provenance has a colour and a word: the word carries the meaning for readers who cannot tell the colours apart.
# Blue means "loaded from a cache" and nothing else: no other colour here is a blue.
PROVENANCE_COLOURS = {
    "computed": "#E69F00",  # orange: this row was computed in this request
    "loaded": "#0072B2",  # blue: loaded from a cache, no compute spent
    "invalidated": "#882255",  # wine: was cacheable, but a change before it broke the prefix (work thrown away)
}
# Speculative decoding: a rejected guess is work thrown away, so it takes the colour of an invalidated row; the
# target's own token is black.
ACCEPTED, REJECTED, BONUS = "#009E73", PROVENANCE_COLOURS["invalidated"], "#000000"
# Series with no provenance (providers, TTLs, methods) take the palette's other colours, so that orange and blue
# keep meaning computed and loaded in every chart: brown, green, pink, light yellow, black, light grey.
CHART_COLOURS = ["#8C510A", "#009E73", "#EE99FF", "#FFEE99", "#000000", "#CCCCCC"]
TEXT_ON = {"#E69F00": "#000000", "#0072B2": "#FFFFFF", "#882255": "#FFFFFF", "#009E73": "#FFFFFF",
           "#000000": "#FFFFFF", "#8C510A": "#FFFFFF", "#EE99FF": "#000000", "#FFEE99": "#000000", "#CCCCCC": "#000000"}
# Decoding without and with a KV cache (lessons 3 and 7) is a method, not a provenance: black and green, in every
# chart and widget that compares the two (never blue: "without a cache" is not "loaded").
WITHOUT_CACHE, WITH_CACHE = CHART_COLOURS[4], CHART_COLOURS[1]
# "This lesson's stages" in the pipeline picture: light yellow, a colour that carries no data meaning.
HIGHLIGHT = CHART_COLOURS[3]
# Every colour above, once. tests/test_palette.py checks that each pair stays distinguishable under simulated
# protanopia and deuteranopia (Machado, Oliveira & Fernandes 2009).
PALETTE = sorted(set(PROVENANCE_COLOURS.values()) | {ACCEPTED, REJECTED, BONUS, HIGHLIGHT} | set(CHART_COLOURS))


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
