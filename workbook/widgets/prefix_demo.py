"""Lesson 4's cold / hit / break-prefix demo: three requests through an Engine with a PrefixCache.

Request 1 empties the cache and computes everything; request 2 keeps the system prompt and asks
another question, so the system prompt's rows are loaded; "Break prefix" moves the date near the
top of the system prompt forward by a day, so every row after it must be computed again. The
view shows which rows were computed or loaded, the counters, TTFT, and the napkin math: each
request with no cache, with this engine's cache, and as a provider would bill it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import ipywidgets as W

from ..engine import Engine, GenerationResult
from ..lessons.invalidation import mark_invalidated, reusable_length
from ..lessons.provider_bills import WARM_GAP_S, SideBySide, chat_request, provider_bills
from ..lessons.scenarios import DEFAULT_SYSTEM_PROMPT, QUESTION_1, QUESTION_2, break_system_prompt, chat
from ..page_pool import PagePool
from ..prefix_cache import PrefixCache
from ..pricing import PriceSheet, Usage, load_price_sheets
from ..tokenizer import first_divergence
from .kv_rows import KVRowsTable
from .style import PER_MILLION_REQUESTS, PROVENANCE_COLOURS, ErrorBox, legend_html, usd
from .tokens import TokenStrip


@dataclass
class RequestRecord:
    """One request the demo sent: what went in, which rows were loaded, and what it cost in tokens."""

    label: str
    system_prompt: str
    question: str
    result: GenerationResult
    provenance: list[str]  # per prompt token: "computed", "loaded" or "invalidated"
    edit_at: int | None = None  # first token that differs from the unedited prompt (Break prefix only)

    @property
    def prompt_ids(self) -> list[int]:
        return self.result.prompt_ids

    @property
    def usage(self) -> Usage:
        return self.result.usage

    @property
    def loaded(self) -> int:
        return self.provenance.count("loaded")

    @property
    def computed(self) -> int:
        """Every prompt row this request ran through the model, invalidated ones included."""
        return len(self.provenance) - self.loaded

    @property
    def invalidated(self) -> int:
        return self.provenance.count("invalidated")

    @property
    def written(self) -> int:
        return self.usage.cache_write_tokens

    @property
    def ttft_s(self) -> float:
        return self.result.timings.ttft_s

@dataclass
class PrefixDemoState:
    """Everything the view shows; the buttons only change this and then redraw."""

    system_prompt: str
    question_1: str
    question_2: str
    provider: str  # key of the chosen price sheet, e.g. "openai/gpt-5.5"
    history: list[RequestRecord] = field(default_factory=list)  # since the last "Send request 1"
    error: str = ""
    note: str = ""

    @property
    def last(self) -> RequestRecord | None:
        return self.history[-1] if self.history else None


class PrefixCacheDemo:
    """Send request 1 (cold), request 2 (prefix loaded) and a broken prefix; watch rows, counters, TTFT and cost."""

    def __init__(self, model, tokenizer, *, system_prompt: str = DEFAULT_SYSTEM_PROMPT,
                 questions: tuple[str, str] = (QUESTION_1, QUESTION_2), page_size: int = 16,
                 capacity_tokens: int = 4096, max_new_tokens: int = 8, provider: str = "openai/gpt-5.5",
                 price_sheets: dict[str, PriceSheet] | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.page_size, self.capacity_tokens = page_size, capacity_tokens
        self.max_new_tokens = max_new_tokens
        self.sheets = load_price_sheets() if price_sheets is None else price_sheets
        self.engine = self._empty_engine()
        self.state = PrefixDemoState(system_prompt, questions[0], questions[1],
                                     provider if provider in self.sheets else next(iter(self.sheets)))
        # One untimed run first, so request 1's TTFT measures prefill, not the first call's one-off set-up.
        Engine(model, tokenizer).generate(chat(system_prompt, questions[0]), max_new_tokens=2)
        self._build(model.config.num_layers)
        self._redraw()

    # ----- actions (the buttons call these; so can a notebook) ---------------------------------

    def send_request_1(self) -> RequestRecord | None:
        """Start from an empty cache and send the system prompt with question 1: everything is computed and written."""
        if not self._inputs_ok(self.state.question_1):
            return None
        kept = self.engine, self.state.history
        self.engine, self.state.history = self._empty_engine(), []
        record = self._send("request 1", self.state.question_1)
        if record is None:  # refused: the old cache and history stay, as if nothing was sent
            self.engine, self.state.history = kept
        return record

    def send_request_2(self) -> RequestRecord | None:
        """The same system prompt with question 2: the system prompt's rows come from the cache."""
        if not self._inputs_ok(self.state.question_2):
            return None
        return self._send("request 2", self.state.question_2)

    def break_prefix(self) -> RequestRecord | None:
        """Move the system prompt's date on by a day, then send question 2 again."""
        if not self.state.history:
            self._fail("Send request 1 first: there is no cached prefix to break yet.")
            return None
        if not self._inputs_ok(self.state.question_2):
            return None
        self.system_box.value = break_system_prompt(self.state.system_prompt)  # the observer updates the state
        return self._send("broken prefix", self.state.question_2)

    def bills(self, sheet: PriceSheet) -> list[SideBySide]:
        """Each request since the last "Send request 1" as this engine served it and as `sheet`'s provider would bill it,
        the clicks replayed a minute apart with a breakpoint after the system prompt."""
        history = self.state.history
        requests = [chat_request(self.tokenizer, chat(r.system_prompt, r.question), at_s=i * WARM_GAP_S,
                                 output_tokens=r.usage.output_tokens) for i, r in enumerate(history)]
        return [SideBySide(sheet, r.usage, bill) for r, bill in zip(history, provider_bills(sheet, requests))]

    # ----- the work -----------------------------------------------------------------------------

    def _empty_engine(self) -> Engine:
        cache = PrefixCache(PagePool.for_tokens(self.capacity_tokens, self.page_size))
        return Engine(self.model, self.tokenizer, cache)

    def _inputs_ok(self, question: str) -> bool:
        if not self.state.system_prompt.strip():
            self._fail("The system prompt is empty. Type one (or copy DEFAULT_SYSTEM_PROMPT) and send again.")
            return False
        if not question.strip():
            self._fail("The user question is empty. Type a question and send again.")
            return False
        return True

    def _send(self, label: str, question: str) -> RequestRecord | None:
        """Answer the click at once (a cold prefill takes a moment on a CPU), refuse double clicks, then run it."""
        buttons = (self.button_1, self.button_2, self.break_button)
        for button in buttons:
            button.disabled = True
        self.status.value = _status_html(f"Sending {label}…")
        try:
            return self._run(label, question)
        finally:
            for button in buttons:
                button.disabled = False

    def _run(self, label: str, question: str) -> RequestRecord | None:
        state, engine = self.state, self.engine
        previous = state.last
        try:
            result = engine.generate(chat(state.system_prompt, question), max_new_tokens=self.max_new_tokens)
        except ValueError as error:  # bad input: too long, budget too small; the engine left the cache as it was
            self._fail(str(error))
            return None
        provenance, edit_at = list(result.provenance), None
        if previous is not None and previous.system_prompt != state.system_prompt:
            # What the cache would have served had the system prompt stayed as last time.
            unedited = engine.prompt_ids(chat(previous.system_prompt, question))
            reusable = reusable_length(previous.prompt_ids, unedited, engine.prefix_cache.pool.page_size)
            provenance = mark_invalidated(provenance, reusable)
            edit_at = first_divergence(unedited, result.prompt_ids)
        record = RequestRecord(label, state.system_prompt, question, result, provenance, edit_at)
        state.history.append(record)
        state.error = ""
        state.note = self._note(record, previous)
        self._redraw()
        return record

    def _note(self, record: RequestRecord, previous: RequestRecord | None) -> str:
        if previous is None:
            return f"{record.label}: the cache was empty, so all {len(record.prompt_ids)} prompt tokens were computed."
        if record.edit_at is not None:
            text = "".join(self.tokenizer.token_texts(record.prompt_ids[record.edit_at:record.edit_at + 1]))
            return (f"{record.label}: the prompt changed at token {record.edit_at} ({text!r}). Only whole pages before it "
                    f"were loaded ({record.loaded}); {record.invalidated} rows the cache held had to be computed again.")
        return f"{record.label}: {record.loaded} prompt tokens were loaded from the cache, {record.computed} computed."

    def _fail(self, message: str) -> None:
        self.state.error = message
        self.errors.show(ValueError(message))
        self.status.value = _status_html(self.state.note)  # nothing was sent: the last note still holds

    # ----- the view -----------------------------------------------------------------------------

    def _build(self, num_layers: int) -> None:
        s = self.state
        self.system_box = W.Textarea(value=s.system_prompt, description="System prompt",
                                     layout=W.Layout(width="100%", height="12em"), style={"description_width": "8em"})
        self.question_1_box = W.Text(value=s.question_1, description="Question 1",
                                     layout=W.Layout(width="100%"), style={"description_width": "8em"})
        self.question_2_box = W.Text(value=s.question_2, description="Question 2",
                                     layout=W.Layout(width="100%"), style={"description_width": "8em"})
        for box, name in ((self.system_box, "system_prompt"), (self.question_1_box, "question_1"),
                          (self.question_2_box, "question_2")):
            box.observe(lambda change, name=name: setattr(self.state, name, change["new"]), names="value")

        self.button_1 = W.Button(description="Send request 1", tooltip="Empty the cache, then send question 1 (cold)")
        self.button_2 = W.Button(description="Send request 2", tooltip="Same system prompt, question 2 (cache hit)")
        self.break_button = W.Button(description="Break prefix", button_style="warning",
                                     tooltip="Move the date in the system prompt on by a day, then send question 2")
        self.button_1.on_click(lambda _: self.send_request_1())
        self.button_2.on_click(lambda _: self.send_request_2())
        self.break_button.on_click(lambda _: self.break_prefix())

        choices = [(f"{sheet.name} ({sheet.provider})", key) for key, sheet in self.sheets.items()]
        self.provider_picker = W.Dropdown(options=choices, value=s.provider, description="Prices of",
                                          style={"description_width": "8em"}, layout=W.Layout(width="30em"))
        self.provider_picker.observe(self._on_provider, names="value")

        self.errors = ErrorBox()
        self.status = W.HTML()
        self.counters = W.HTML()
        self.history_table = W.HTML()
        self.napkin = W.HTML()
        # One legend for the whole demo, at its top: the strip and the rows below use the same colours. A prompt is a
        # few hundred tokens, so both fold each long run of one colour to its ends: where the hit ends stays in view.
        self.strip = TokenStrip(self.tokenizer, title="Prompt tokens of the latest request", legend=False, fold=6)
        self.kv_rows = KVRowsTable(self.tokenizer, num_layers, legend=False, fold=3)
        self.widget = W.VBox([
            W.HTML("<b>Prefix cache: cold, hit, broken prefix</b>"),
            W.HTML(legend_html(PROVENANCE_COLOURS)),
            self.system_box, self.question_1_box, self.question_2_box,
            W.HBox([self.button_1, self.button_2, self.break_button]),
            self.errors.widget, self.status, self.counters,
            self.strip.widget,
            self.kv_rows.widget,
            self.history_table, self.provider_picker, self.napkin,
        ])

    def _on_provider(self, change) -> None:
        self.state.provider = change["new"]
        self.napkin.value = self._napkin_html()

    def _redraw(self) -> None:
        s = self.state
        if s.error:
            self.errors.show(ValueError(s.error))
        else:
            self.errors.clear()
        if s.last is not None:
            self.strip.show(s.last.prompt_ids, s.last.provenance)
            self.kv_rows.show(s.last.prompt_ids, s.last.provenance)
        self.history_table.value = self._history_html()
        self.napkin.value = self._napkin_html()
        self.counters.value = self._counters_html()
        # The status line changes last, so a page that sees the new status sees everything else updated too.
        self.status.value = _status_html(s.note)

    def _counters_html(self) -> str:
        r = self.state.last
        values = [("computed", r.computed if r else 0), ("written", r.written if r else 0), ("loaded", r.loaded if r else 0)]
        colours = {"computed": PROVENANCE_COLOURS["computed"], "written": "#999999", "loaded": PROVENANCE_COLOURS["loaded"]}
        boxes = "".join(
            f'<div class="wb-counter" data-name="{name}" style="display:inline-block;margin-right:18px;padding:4px 10px;'
            f'border-left:8px solid {colours[name]}"><span class="wb-count" style="font-size:1.6em;font-weight:bold">{n}</span>'
            f"<br>tokens {name}</div>"
            for name, n in values
        )
        ttft = f"{r.ttft_s * 1e3:.1f} ms" if r else "–"
        invalid = f" ({r.invalidated} of the computed rows invalidated by the edit)" if r and r.invalidated else ""
        return (f'<div class="wb-counters">{boxes}<div class="wb-counter" data-name="ttft" style="display:inline-block">'
                f'<span class="wb-count" style="font-size:1.6em;font-weight:bold">{ttft}</span><br>time to first token</div>'
                f"<div>{invalid}</div></div>")

    def _history_html(self) -> str:
        if not self.state.history:
            return ""
        head = "".join(f"<th style='padding:2px 8px'>{h}</th>" for h in
                       ("request", "prompt tokens", "loaded", "computed", "of them invalidated", "written", "TTFT", "reply"))
        rows = "".join(
            "<tr>" + "".join(f"<td style='padding:2px 8px'>{c}</td>" for c in (
                html.escape(r.label), len(r.prompt_ids), r.loaded, r.computed, r.invalidated, r.written,
                f"{r.ttft_s * 1e3:.1f} ms", html.escape(repr(r.result.text)))) + "</tr>"
            for r in self.state.history
        )
        return f'<table class="wb-history" style="border-collapse:collapse"><tr>{head}</tr>{rows}</table>'

    def _napkin_html(self) -> str:
        if not self.state.history:
            return "<i>Send a request to see what it would cost.</i>"
        sheet = self.sheets[self.state.provider]
        try:
            bills = self.bills(sheet)
        except ValueError as error:  # a chat template whose system turn is not a stable prefix: nothing to mark
            self.errors.show(error)
            return "<i>No provider bill for this chat template: see the message above.</i>"
        rows = [(html.escape(r.label), f"{r.loaded:,}", f"{b.provider.usage.cache_read_tokens:,} / "
                 f"{b.provider.usage.cache_write_tokens:,}", _per_million(b.no_cache_usd),
                 _per_million(b.engine_usd), _per_million(b.provider_usd))
                for r, b in zip(self.state.history, bills)]
        head = "".join(f"<th style='padding:2px 8px'>{h}</th>" for h in
                       ("request", "this engine: loaded", "provider: read / written", "no cache, × 1M",
                        "this engine, × 1M", "the provider would bill, × 1M"))
        body = "".join("<tr>" + "".join(f"<td style='padding:2px 8px'>{c}</td>" for c in row) + "</tr>" for row in rows)
        prices = (f"{sheet.name}: input ${sheet.input:g}/M, cache write ${sheet.cache_write:g}/M, cache read "
                  f"${sheet.cache_read:g}/M, output ${sheet.output:g}/M (checked {sheet.checked}). \"No cache\" bills "
                  "every prompt token as input; \"this engine\" bills its own usage (pages loaded are reads, new pages "
                  "writes); the provider's bill replays these requests a minute apart under its own caching rules, "
                  "with a breakpoint after the system prompt where the provider takes one.")
        return (f'<div class="wb-napkin"><div>{html.escape(prices)}</div>'
                f'<table style="border-collapse:collapse"><tr>{head}</tr>{body}</table>'
                f"<div>{html.escape(bills[-1].explain())}</div></div>")


def _per_million(usd_per_request: float) -> str:
    return html.escape(usd(usd_per_request * PER_MILLION_REQUESTS))


def _status_html(text: str) -> str:
    return f'<div class="wb-status">{html.escape(text)}</div>'
