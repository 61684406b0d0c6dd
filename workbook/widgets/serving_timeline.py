"""Lesson 9's serving timeline: what every request did in every step of a batched run.

Requests are rows and steps are columns. Each cell says whether the request was prefilling its
prompt, decoding one token, waiting, preempted (its pages taken back, to be recomputed later) or
finished in that step; blank is before it arrived or after it finished. The view drives a real
`Server` over an arrival trace, one step per click, in one of two modes:

* continuous: each request is submitted in the step it arrives and joins the running batch
  between steps, so a short request never waits for a long one (Orca, vLLM);
* static: the driver holds arrivals back and submits a batch of up to `max_running` only when
  the server has nothing running or queued, so every request waits for the slowest request of
  the batch before it. The server is the same; only the driver's submissions differ.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field, replace

import ipywidgets as W

from ..errors import WorkbookError
from ..checks import check_whole
from ..page_pool import PagePool
from ..prefix_cache import PrefixCache
from ..server import DEFAULT_PAGE_SIZE, Server, StepSnapshot
from .style import CHART_COLOURS, PROVENANCE_COLOURS, TEXT_ON, ErrorBox, legend_html

MODES = ("continuous", "static")
# Each state has a colour, a symbol drawn in the cell (for readers who cannot tell the colours apart) and words.
STATES = {
    "prefill": (PROVENANCE_COLOURS["computed"], "P", "prefill: prompt rows computed"),
    "decode": (CHART_COLOURS[1], "D", "decode: one new token"),
    "waiting": (CHART_COLOURS[5], "·", "waiting: queued, or no room in this step"),
    "preempted": (PROVENANCE_COLOURS["invalidated"], "✗", "preempted: pages taken back, recomputed later"),
    "finished": (CHART_COLOURS[4], "✓", "finished in this step"),
}
TEXT = {**TEXT_ON, CHART_COLOURS[5]: "#000000", CHART_COLOURS[4]: "#FFFFFF"}


def cell_state(snapshot: StepSnapshot, request_id: int) -> str:
    """What `request_id` did in one step, or "" if the step does not mention it."""
    for state, ids in (("finished", snapshot.finished), ("preempted", snapshot.preempted),
                       ("prefill", snapshot.prefill), ("decode", snapshot.decode), ("waiting", snapshot.waiting)):
        if request_id in ids:
            return state
    return ""


def timeline(snapshots: list[StepSnapshot], request_ids) -> list[list[str]]:
    """Cell states, one row per request and one column per snapshot.

    A state is "prefill", "decode", "waiting", "preempted", "finished", or "" before the request
    arrives and after it has finished. A request that is in the batch but got no tokens in a step
    (the step's token budget ran out before its turn) is not mentioned by that snapshot: it counts
    as waiting too.
    """
    rows = []
    for rid in request_ids:
        row = [cell_state(s, rid) for s in snapshots]
        first = next((i for i, c in enumerate(row) if c), len(row))
        end = row.index("finished") if "finished" in row else len(row)
        rows.append([c or ("waiting" if first < i < end else "") for i, c in enumerate(row)])
    return rows


@dataclass
class TimelineState:
    """The run so far. Request i is the i-th arrival of the trace (ties in trace order) and has server id i:
    the driver submits in that order, the server numbers requests from 0, and a refused request ends the run."""

    trace: list[tuple[int, list[int], int]]  # (arrival step, prompt ids, max new tokens), by arrival
    mode: str = "continuous"
    snapshots: list[StepSnapshot] = field(default_factory=list)  # one per step, numbered by the view's clock
    cells: list[list[str]] = field(default_factory=list)  # timeline(snapshots, requests)
    submitted: int = 0  # requests handed to the server so far
    done: bool = False
    error: str = ""

    @property
    def steps(self) -> int:
        return len(self.snapshots)

    @property
    def finished(self) -> int:
        return sum(len(s.finished) for s in self.snapshots)

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.snapshots)

    @property
    def mean_batch(self) -> float:
        """Requests that ran (prefill or decode) per step, idle steps included."""
        return sum(len(s.prefill) + len(s.decode) for s in self.snapshots) / max(self.steps, 1)


class ServingTimelineView:
    """Step a batched server through an arrival trace and draw who did what in every step."""

    def __init__(self, model, tokenizer, trace: list[tuple[int, list[int], int]], *, mode: str = "continuous",
                 max_running: int = 4, max_batch_tokens: int = 256, prefill_chunk: int | None = None,
                 capacity_tokens: int = 4096):
        self.model, self.tokenizer, self.trace = model, tokenizer, list(trace)
        self.max_running, self.max_batch_tokens, self.prefill_chunk = max_running, max_batch_tokens, prefill_chunk
        self.capacity_tokens = capacity_tokens
        self.server: Server | None = None
        self.state = TimelineState([], mode)
        self.errors = ErrorBox()
        self.mode_buttons = W.ToggleButtons(options=MODES, value=mode if mode in MODES else MODES[0],
                                            description="batching")
        self.step_button = W.Button(description="Step", icon="step-forward", tooltip="Run one server step")
        self.run_button = W.Button(description="Run to end", icon="fast-forward")
        self.reset_button = W.Button(description="Reset", icon="undo", tooltip="Start again from step 0")
        self.summary = W.HTML()
        self.legend = W.HTML(legend_html({words: colour for colour, _, words in STATES.values()}))
        self.picture = W.HTML()
        self.mode_buttons.observe(self._on_mode, names="value")
        self.step_button.on_click(lambda _: self.step())
        self.run_button.on_click(lambda _: self.run_to_end())
        self.reset_button.on_click(lambda _: self.reset())
        self.widget = W.VBox([self.mode_buttons, W.HBox([self.step_button, self.run_button, self.reset_button]),
                              self.errors.widget, self.summary, self.legend, self.picture])
        self.reset(mode)

    # ----- actions (the buttons call these; so can a notebook) ---------------------------------

    def reset(self, mode: str | None = None) -> None:
        """Start the run again on an empty server (in `mode`, if given); bad settings are shown, not raised."""
        mode = self.state.mode if mode is None else mode
        self.state, self.server = TimelineState([], mode), None
        try:
            if mode not in MODES:
                raise WorkbookError(f"mode must be one of {', '.join(MODES)}, not {mode!r}.")
            self.mode_buttons.value = mode  # _on_mode sees the state's mode already and does nothing
            if not self.trace:
                raise WorkbookError("The trace is empty: give at least one (arrival step, prompt ids, max new tokens).")
            for arrival, _, _ in self.trace:
                check_whole("arrival step", arrival, 0)
            self.state.trace = sorted(self.trace, key=lambda request: request[0])
            self.server = Server(self.model, self.tokenizer, PrefixCache(PagePool.for_tokens(self.capacity_tokens, DEFAULT_PAGE_SIZE)),
                                 self.max_running, self.max_batch_tokens, self.prefill_chunk)
        except ValueError as error:
            self._fail(error)
        else:
            self.errors.clear()
        self._draw()

    def step(self) -> StepSnapshot | None:
        """Submit this step's arrivals, run one server step and redraw; None once the run is over."""
        snapshot = self._advance()
        self._draw()
        return snapshot

    def run_to_end(self) -> None:
        """Step until every request has finished (or one was refused), then redraw once."""
        while self._advance() is not None:
            pass
        self._draw()

    def _on_mode(self, change) -> None:
        if change["new"] != self.state.mode:
            self.reset(change["new"])

    # ----- the driver -------------------------------------------------------------------------------

    def _advance(self) -> StepSnapshot | None:
        s, server = self.state, self.server
        if s.done or s.error:
            return None
        # Requests submitted..arrived-1 have arrived by now and not been submitted yet (the trace is sorted).
        arrived = next((i for i in range(s.submitted, len(s.trace)) if s.trace[i][0] > s.steps), len(s.trace))
        if s.mode == "continuous" or not (server.running or server.waiting):
            batch = arrived if s.mode == "continuous" else min(arrived, s.submitted + self.max_running)
            for i in range(s.submitted, batch):
                arrival, prompt, max_new_tokens = s.trace[i]
                try:
                    server.submit(prompt, max_new_tokens=max_new_tokens, stop_at_eos=False)
                except ValueError as error:
                    self._fail(WorkbookError(f"Request {i} (arriving at step {arrival}) was refused: {error}"))
                    return None
                s.submitted += 1
        try:
            snapshot = server.step()
        except ValueError as error:
            self._fail(error)
            return None
        if snapshot is None:
            if s.submitted == len(s.trace):
                s.done = True
                return None
            # Nothing has arrived yet: an idle step, so that columns keep counting steps.
            snapshot = StepSnapshot(0, {}, (), (), (), (), 0, server.pool.pages_in_use, server.pool.pages_shared, 0.0)
        held = tuple(range(s.submitted, arrived))  # arrived, but held back by static batching
        snapshot = replace(snapshot, step=s.steps + 1, waiting=snapshot.waiting + held)
        s.snapshots.append(snapshot)
        s.cells = timeline(s.snapshots, range(len(s.trace)))
        return snapshot

    def _fail(self, error: Exception) -> None:
        self.state.error = str(error)
        self.errors.show(error)

    # ----- drawing ----------------------------------------------------------------------------

    def _draw(self) -> None:
        s = self.state
        self.step_button.disabled = self.run_button.disabled = s.done or bool(s.error)
        end = " The run is over." if s.done else ""
        self.summary.value = "" if s.error else (
            f"<div><b>{s.mode.capitalize()} batching</b>: {s.steps} steps, {s.tokens} tokens processed, "
            f"<b>{s.mean_batch:.1f} requests per step</b> on average; {s.finished} of {len(s.trace)} requests "
            f"finished.{end}</div>")
        self.picture.value = timeline_html(s)


def timeline_html(s: TimelineState) -> str:
    """The timeline as an HTML table with inline styles (it survives a static HTML export)."""
    cell = "width:16px;height:16px;padding:0;text-align:center;font-size:10px;border:1px solid #DDD"
    head = "".join(f'<th style="font-size:9px;font-weight:normal">{n}</th>' for n in range(1, s.steps + 1))
    rows = []
    for i, ((arrival, prompt, new), states) in enumerate(zip(s.trace, s.cells or [[]] * len(s.trace))):
        label = (f'<th style="text-align:left;white-space:nowrap;padding-right:6px" title="arrives at step {arrival}; '
                 f'{len(prompt)} prompt tokens, {new} new tokens">#{i} <span style="font-weight:normal;font-size:10px;'
                 f'color:#555">@{arrival} · {len(prompt)}+{new}</span></th>')
        tds = []
        for j, state in enumerate(states):
            if not state:
                tds.append(f'<td style="{cell}"></td>')
                continue
            colour, symbol, _ = STATES[state]
            tokens = s.snapshots[j].prefill.get(i)
            tip = f"request {i}, step {j + 1}: {state}" + (f" ({tokens} prompt tokens)" if tokens else "")
            tds.append(f'<td class="wb-cell-{state}" title="{html.escape(tip, quote=True)}" '
                       f'style="{cell};background:{colour};color:{TEXT[colour]}">{symbol}</td>')
        rows.append(f"<tr>{label}{''.join(tds)}</tr>")
    return ('<div style="overflow-x:auto"><table class="wb-timeline" style="border-collapse:collapse">'
            f'<tr><th style="text-align:left;font-size:10px">request @arrival · prompt+new</th>{head}</tr>'
            f"{''.join(rows)}</table></div>")
