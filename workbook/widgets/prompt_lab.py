"""Lesson 5's prompt lab view: edit the template, switch cache breakers on and off, watch the hit shrink.

Every change re-runs `PromptLab.run` (yesterday's request cached, today's sent) and redraws the
first divergent token, the share of the static part reused, the rows computed again, and two
bills side by side: this engine's usage and what the chosen provider would bill. The state
lives in `view.state`, so tests click it from Python.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field, replace

import ipywidgets as W

from ..lessons.prompt_lab import BREAKERS, LabResult, PromptLab, PromptTemplate
from ..lessons.provider_bills import SideBySide
from ..pricing import PriceSheet, load_price_sheets
from .style import PER_MILLION_REQUESTS, PROVENANCE_COLOURS, ErrorBox, legend_html, usd
from .tokens import TokenStrip

PAGE_SIZES = [1, 4, 16, 64]
WIDE = {"description_width": "10em"}


@dataclass
class PromptLabState:
    """What the view shows; the controls only change this, then the lab runs and the view redraws."""

    template: PromptTemplate
    user_name: str
    user_message: str
    breakers: set[str] = field(default_factory=set)
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 1
    page_size: int = 16
    provider: str = "anthropic/claude-sonnet-4-5"
    result: LabResult | None = None
    baseline: LabResult | None = None  # the same template and page size with no breakers: the cost to beat
    error: str = ""
    latency_s: float = 0.0  # the last update, from the change to the redrawn view


class PromptLabView:
    """Checkboxes for the breakers, editors for the template, sliders for settings that do not matter."""

    def __init__(self, model, tokenizer, *, template: PromptTemplate | None = None, page_size: int = 16,
                 provider: str = "anthropic/claude-sonnet-4-5", price_sheets: dict[str, PriceSheet] | None = None):
        self.lab = PromptLab(model, tokenizer, page_size=page_size)
        self.sheets = load_price_sheets() if price_sheets is None else price_sheets
        self.state = PromptLabState(template or PromptTemplate(), self.lab.current.user_name, self.lab.current.user_message,
                                    page_size=page_size, provider=provider if provider in self.sheets else next(iter(self.sheets)))
        self._baseline_of = None  # the inputs the baseline was run with; a new template or page size needs a new one
        self._build(tokenizer)
        self.update()

    # ----- actions ----------------------------------------------------------------------------------

    def set_breaker(self, name: str, on: bool = True) -> None:
        """Tick or clear one breaker's checkbox (the view re-runs through the checkbox's observer)."""
        self.checkboxes[name].value = on

    def update(self) -> None:
        """Rebuild the template from the editors, run the lab, redraw; a bad input is shown, not raised."""
        start = time.perf_counter()
        s = self.state
        try:
            s.template = PromptTemplate(self.system_box.value, self.tools_box.value, self.policy_box.value,
                                        self.date_box.value, self.layout_picker.value)
            if not self.name_box.value.strip() or not self.message_box.value.strip():
                raise ValueError("The customer's name and message must not be empty.")
            s.user_name, s.user_message = self.name_box.value, self.message_box.value
            self.lab.current = replace(self.lab.current, user_name=s.user_name, user_message=s.user_message)
            if self.lab.page_size != s.page_size:
                self.lab.set_page_size(s.page_size)
            inputs = (s.template, s.user_name, s.user_message, s.page_size)
            if self._baseline_of != inputs:
                s.baseline, self._baseline_of = self.lab.run(s.template), inputs
            s.result = self.lab.run(s.template, s.breakers, temperature=s.temperature, top_p=s.top_p,
                                    max_new_tokens=s.max_new_tokens)
            s.error = ""
        except ValueError as error:  # the engine and the lab leave their caches as they were
            s.error = str(error)
        self._redraw()
        s.latency_s = time.perf_counter() - start

    # ----- the view ---------------------------------------------------------------------------------

    def _build(self, tokenizer) -> None:
        s, t = self.state, self.state.template
        area = dict(layout=W.Layout(width="100%"), style=WIDE, continuous_update=False)
        self.system_box = W.Textarea(value=t.system, description="System prompt", rows=3, **area)
        self.tools_box = W.Textarea(value=t.tools_json, description="Tools (JSON)", rows=6, **area)
        self.policy_box = W.Textarea(value=t.policy, description="Policy document", rows=5, **area)
        self.date_box = W.Text(value=t.date_line, description="Date line", **area)
        self.name_box = W.Text(value=s.user_name, description="Customer name", **area)
        self.message_box = W.Text(value=s.user_message, description="Customer message", **area)
        self.layout_picker = W.Dropdown(options=["static-first", "dynamic-first"], value=t.layout, description="Layout",
                                        style=WIDE)
        for box in (self.system_box, self.tools_box, self.policy_box, self.date_box, self.name_box, self.message_box,
                    self.layout_picker):
            box.observe(lambda _: self.update(), names="value")

        self.checkboxes = {name: W.Checkbox(value=False, description=b.label, tooltip=b.why, indent=False,
                                            layout=W.Layout(width="auto"))
                           for name, b in BREAKERS.items()}
        for name, box in self.checkboxes.items():
            box.observe(lambda change, name=name: self._on_breaker(name, change["new"]), names="value")

        slider = dict(continuous_update=False, style=WIDE)
        self.temperature_slider = W.FloatSlider(value=s.temperature, min=0.0, max=1.5, step=0.1, description="temperature", **slider)
        self.top_p_slider = W.FloatSlider(value=s.top_p, min=0.1, max=1.0, step=0.05, description="top_p", **slider)
        self.max_tokens_slider = W.IntSlider(value=s.max_new_tokens, min=1, max=8, description="max new tokens", **slider)
        self.page_picker = W.Dropdown(options=PAGE_SIZES, value=s.page_size, description="Page size (tokens)", style=WIDE)
        self.provider_picker = W.Dropdown(options=[(f"{sheet.name} ({sheet.provider})", key) for key, sheet in self.sheets.items()],
                                          value=s.provider, description="Prices of", style=WIDE,
                                          layout=W.Layout(width="32em"))
        for widget, name in ((self.temperature_slider, "temperature"), (self.top_p_slider, "top_p"),
                             (self.max_tokens_slider, "max_new_tokens"), (self.page_picker, "page_size"),
                             (self.provider_picker, "provider")):
            widget.observe(lambda change, name=name: self._on_setting(name, change["new"]), names="value")

        self.errors = ErrorBox()
        self.summary = W.HTML()
        # Its legend is drawn once, above; each long run of one colour folds to its ends, so the view stays short.
        self.strip = TokenStrip(tokenizer, title="Today's request, token by token", legend=False, fold=10)
        self.widget = W.VBox([
            W.HTML("<b>Prompt lab: what breaks a cache hit?</b> The cache holds yesterday's request from Ana; "
                   "each change below re-sends today's request and shows what the cache could still serve."),
            W.HBox([W.VBox([self.system_box, self.tools_box, self.policy_box, self.date_box, self.name_box,
                            self.message_box, self.layout_picker], layout=W.Layout(width="55%")),
                    W.VBox([W.HTML("<b>Cache breakers</b>"), *self.checkboxes.values(),
                            W.HTML("<b>Settings that should not matter</b>"), self.temperature_slider,
                            self.top_p_slider, self.max_tokens_slider, W.HTML("<b>Cache and prices</b>"),
                            self.page_picker, self.provider_picker], layout=W.Layout(width="45%"))]),
            self.errors.widget, self.summary, W.HTML(legend_html(PROVENANCE_COLOURS)), self.strip.widget,
        ])

    def _on_breaker(self, name: str, on: bool) -> None:
        if on:
            self.state.breakers.add(name)
        else:
            self.state.breakers.discard(name)
        self.update()

    def _on_setting(self, name: str, value) -> None:
        setattr(self.state, name, value)
        if name == "provider":  # prices change no tokens: redraw without re-running
            self._redraw()
        else:
            self.update()

    def _redraw(self) -> None:
        s = self.state
        if s.error:
            self.errors.show(ValueError(s.error))
            return
        self.errors.clear()
        r = s.result
        self.strip.show(r.ids, r.provenance)
        self.summary.value = self._summary_html(r, s.baseline, self.sheets[s.provider])

    def _summary_html(self, r: LabResult, baseline: LabResult, sheet: PriceSheet) -> str:
        texts = self.lab.tokenizer.token_texts
        now = texts(r.ids[r.divergence:r.divergence + 1])
        before = texts(r.cached_ids[r.divergence:r.divergence + 1])
        if r.cacheable:
            reuse = (f"Reused {r.loaded:,} of the {r.cacheable:,} cacheable tokens of the static part ({r.reused_share:.0%}); "
                     f"{r.recomputed:,} rows computed again although the cache held them.")
        else:
            reuse = (f"The first value that changes per request comes at token {r.static_tokens}, before a single whole "
                     f"page of fixed text: this layout leaves the cache nothing to reuse ({r.loaded:,} tokens loaded).")
        lines = [
            f"First difference at token {r.divergence}: today {now!r}, yesterday {before!r}.",
            reuse,
            f"{r.lost_to_pages:,} tokens before the first difference were computed anyway: the cache loads whole "
            f"pages of {r.page_size} and never the last prompt token.",
            f"Time to first token {r.result.timings.ttft_s * 1e3:.1f} ms (no breakers: {baseline.result.timings.ttft_s * 1e3:.1f} ms).",
        ]
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        bills = r.bills(sheet)
        return (f'<ul class="wb-lab-summary">{items}</ul>{bills_table_html(bills, baseline.bills(sheet))}'
                f'<div class="wb-lab-explain">{html.escape(bills.explain())}</div>')


def bills_table_html(bills: SideBySide, clean: SideBySide) -> str:
    """This request's prompt as this engine served it and as the provider would bill it, with the extra over `clean`."""
    e, p = bills.engine, bills.provider.usage
    rows = [("read from the cache", f"{e.cache_read_tokens:,}", f"{p.cache_read_tokens:,}"),
            ("written to the cache", f"{e.cache_write_tokens:,}", f"{p.cache_write_tokens:,}"),
            ("plain input", f"{e.input_tokens:,}", f"{p.input_tokens:,}"),
            ("input $ per million requests", usd(bills.engine_usd * PER_MILLION_REQUESTS),
             usd(bills.provider_usd * PER_MILLION_REQUESTS)),
            ("extra over no breakers, $ per million", usd((bills.engine_usd - clean.engine_usd) * PER_MILLION_REQUESTS),
             usd((bills.provider_usd - clean.provider_usd) * PER_MILLION_REQUESTS))]
    cell = "<td style='padding:2px 8px;text-align:right'>{}</td>"
    head = (f"<tr><th></th><th style='padding:2px 8px'>this engine</th><th style='padding:2px 8px'>the provider would "
            f"bill ({html.escape(bills.sheet.name)})</th></tr>")
    body = "".join(f"<tr><td style='padding:2px 8px'>{html.escape(what)}</td>{cell.format(ours)}"
                   f"{cell.format(theirs)}</tr>" for what, ours, theirs in rows)
    return f'<table class="wb-lab-bills" style="border-collapse:collapse">{head}{body}</table>'
