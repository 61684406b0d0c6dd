"""Lesson 7's cost calculator view: sliders for a prompt and a day of traffic; the day's bill with and without a cache.

Every change builds a `Traffic`, runs `lessons.calculator.estimate_day` (a replay through
`providers.simulate`) and redraws $/day both ways, the hit rate the replay achieved, the
break-even reuse count and each cliff the bill fell off. The state lives in `view.state`, so tests
move the controls from Python.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass

import ipywidgets as W

from ..lessons.calculator import ARRIVALS, DayEstimate, Traffic, arrivals_text, estimate_day, lifetimes
from ..pricing import PriceSheet, load_price_sheets
from .style import ErrorBox, usd

REQUESTS_PER_DAY = [1, 6, 24, 48, 96, 144, 288, 480, 1_440, 2_880, 10_000, 50_000, 100_000, 1_000_000]
CLIFF_TITLES = {"minimum": "Minimum length", "step": "128-token steps", "expiry": "Lifetime expiry"}
WIDE = {"description_width": "11em"}


@dataclass
class CostCalculatorState:
    """What the view shows: the traffic the controls describe, and its priced day (or why it could not be priced)."""

    traffic: Traffic
    estimate: DayEstimate | None = None
    error: str = ""
    latency_s: float = 0.0  # the last update, from the change to the redrawn view


class CostCalculatorView:
    """Controls for layout, traffic, model and lifetime; below them, the day's bill and its cliffs."""

    def __init__(self, traffic: Traffic | None = None, *, price_sheets: dict[str, PriceSheet] | None = None):
        self.sheets = load_price_sheets() if price_sheets is None else price_sheets
        self.state = CostCalculatorState(traffic or Traffic())
        self._quiet = False  # set while one change moves other controls, so the view recomputes once
        self._build()
        self.update()

    def update(self) -> None:
        """Read the controls into a `Traffic`, price its day and redraw; a bad input is shown, not raised."""
        if self._quiet:
            return
        start = time.perf_counter()
        s = self.state
        s.traffic = Traffic(model_key=self.model_picker.value, lifetime=self.lifetime_picker.value,
                            static_tokens=self.static_slider.value, dynamic_tokens=self.dynamic_slider.value,
                            output_tokens=self.output_slider.value, requests_per_day=self.requests_slider.value,
                            arrivals=self.arrivals_picker.value, burst_size=self.burst_slider.value,
                            seed=s.traffic.seed)
        s.estimate = self.errors.attempt(lambda: estimate_day(s.traffic, sheets=self.sheets))
        s.error = self.errors.message
        self.burst_slider.disabled = s.traffic.arrivals != "bursty"
        self.summary.value = "" if s.estimate is None else summary_html(s.estimate)
        s.latency_s = time.perf_counter() - start

    # ----- the controls -----------------------------------------------------------------------------

    def _build(self) -> None:
        t = self.state.traffic
        sheet = self.sheets[t.model_key]
        slider = dict(continuous_update=False, style=WIDE, layout=W.Layout(width="95%"))
        self.provider_picker = W.Dropdown(options=list(dict.fromkeys(s.provider for s in self.sheets.values())),
                                          value=sheet.provider, description="Provider", style=WIDE)
        self.model_picker = W.Dropdown(options=self._models(sheet.provider), value=t.model_key, description="Model",
                                       style=WIDE)
        self.lifetime_picker = W.Dropdown(options=self._lifetimes(t.model_key), value=t.lifetime,
                                          description="Cache lifetime", style=WIDE)
        self.static_slider = W.IntSlider(value=t.static_tokens, min=0, max=50_000, description="Static tokens", **slider)
        self.dynamic_slider = W.IntSlider(value=t.dynamic_tokens, min=0, max=10_000, description="Dynamic tokens",
                                          **slider)
        self.output_slider = W.IntSlider(value=t.output_tokens, min=0, max=4_000, description="Output tokens", **slider)
        days = sorted({*REQUESTS_PER_DAY, t.requests_per_day})
        self.requests_slider = W.SelectionSlider(options=[(f"{n:,}", n) for n in days], value=t.requests_per_day,
                                                 description="Requests per day", **slider)
        self.arrivals_picker = W.Dropdown(options=[(label, key) for key, label in ARRIVALS.items()], value=t.arrivals,
                                          description="Arrivals", style=WIDE)
        self.burst_slider = W.IntSlider(value=t.burst_size, min=1, max=20, description="Requests per burst", **slider)
        self.provider_picker.observe(lambda change: self._on_provider(change["new"]), names="value")
        self.model_picker.observe(lambda change: self._on_model(change["new"]), names="value")
        for control in (self.lifetime_picker, self.static_slider, self.dynamic_slider,
                        self.output_slider, self.requests_slider, self.arrivals_picker, self.burst_slider):
            control.observe(lambda _: self.update(), names="value")

        self.errors = ErrorBox()
        self.summary = W.HTML()
        self.widget = W.VBox([
            W.HTML("<b>Cost calculator.</b> Every request sends the same static part, then a dynamic part that is new "
                   "each time. Each change replays the day's requests against the provider's caching rules "
                   "(<code>workbook.providers.simulate</code>) and prices the day; a busy day's first requests "
                   "only (at most a few thousand), the rest at their average."),
            W.HBox([W.VBox([W.HTML("<b>Prompt</b>"), self.static_slider, self.dynamic_slider, self.output_slider],
                           layout=W.Layout(width="50%")),
                    W.VBox([W.HTML("<b>Traffic</b>"), self.requests_slider, self.arrivals_picker, self.burst_slider],
                           layout=W.Layout(width="50%"))]),
            W.HBox([self.provider_picker, self.model_picker, self.lifetime_picker]),
            self.errors.widget, self.summary,
        ])

    def _models(self, provider: str) -> list[tuple[str, str]]:
        return [(s.name, key) for key, s in self.sheets.items() if s.provider == provider]

    def _lifetimes(self, model_key: str) -> list[tuple[str, str]]:
        return [(label, key) for key, label in lifetimes(self.sheets[model_key]).items()]

    def _on_provider(self, provider: str) -> None:
        """A new provider brings its own models and lifetimes: swap both, then recompute once."""
        self._quiet = True
        try:
            self.model_picker.options = self._models(provider)
            self.model_picker.value = self.model_picker.options[0][1]
            self._swap_lifetimes(self.model_picker.value)
        finally:
            self._quiet = False
        self.update()

    def _on_model(self, model_key: str) -> None:
        """A model offers its own lifetimes (OpenAI's retention): keep the chosen one if it can, then recompute."""
        if self._quiet:
            return
        self._quiet = True
        try:
            self._swap_lifetimes(model_key)
        finally:
            self._quiet = False
        self.update()

    def _swap_lifetimes(self, model_key: str) -> None:
        kept = self.lifetime_picker.value
        self.lifetime_picker.options = self._lifetimes(model_key)
        offered = [key for _, key in self.lifetime_picker.options]
        self.lifetime_picker.value = kept if kept in offered else offered[0]


def summary_html(e: DayEstimate) -> str:
    """The priced day as a small table, then the replay note and the cliffs."""
    t, sheet = e.traffic, e.sheet
    if abs(e.saved_usd) < 1e-9:  # no read, and no write premium either: the bill is the same
        verdict = "changes nothing"
    elif e.saved_usd > 0:
        verdict = f"saves {usd(e.saved_usd)} a day ({e.saved_fraction:.0%})"
    else:
        verdict = f"costs {usd(-e.saved_usd)} a day more ({-e.saved_fraction:.0%})"
    reads = "" if e.reads_per_write is None else f"; here each write was read {e.reads_per_write:,.1f} times"
    pays = "never" if e.break_even is None else f"after {e.break_even} read{'s' if e.break_even != 1 else ''} per write"
    rows = [
        ("Traffic", f"{t.requests_per_day:,} requests a day, {arrivals_text(t)}"),
        ("With the cache", f"{usd(e.cached_usd)} a day" + (f" (storage {usd(e.storage_usd)})" if e.storage_usd else "")),
        ("Without a cache", f"{usd(e.uncached_usd)} a day"),
        ("So caching", verdict),
        ("Hit rate", f"{e.hit_rate:.1%} of requests read the prefix; {e.cached_token_share:.1%} of input tokens "
                     "billed as cached"),
        ("Break-even", f"caching pays {pays} (<code>break_even_reuses</code>){reads}"),
    ]
    table = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{name}</th><td>{value}</td></tr>"
                    for name, value in rows)
    cliffs = "".join(f'<li class="wb-cliff"><b>{CLIFF_TITLES[c.kind]}:</b> {html.escape(c.message)}</li>'
                     for c in e.cliffs) or "<li>No cliff: the whole static part is read on every hit.</li>"
    return (f'<table class="wb-calculator">{table}</table><p><i>{html.escape(e.replay_note())} Prices: {sheet.name}, '
            f"checked {sheet.checked}.</i></p><b>Cliffs</b><ul>{cliffs}</ul>")
