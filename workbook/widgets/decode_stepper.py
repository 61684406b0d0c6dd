"""Generate token by token twice, side by side: recomputing the whole sequence each step, and with a KV cache.

Each "Step" makes one forward pass on each side and records the K/V rows it computed, its
counted FLOPs (`workbook.counting.forward_flops`) and its measured time. Both sides choose the
same greedy token; the largest logit difference between them is recorded too (it stays ~1e-6).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import ipywidgets as W
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..counting import forward_flops
from ..timing import Stopwatch
from .style import WITH_CACHE, WITHOUT_CACHE, ErrorBox
from .tokens import encode_prompt


@dataclass
class DecodeStepperState:
    prompt_ids: list[int] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)  # prompt + generated so far
    # One entry per step; step 1 processes the whole prompt on both sides (the cache's prefill).
    rows_without: list[int] = field(default_factory=list)  # token rows of K/V computed, each across every layer
    rows_with: list[int] = field(default_factory=list)
    flops_without: list[int] = field(default_factory=list)
    flops_with: list[int] = field(default_factory=list)
    seconds_without: list[float] = field(default_factory=list)
    seconds_with: list[float] = field(default_factory=list)
    max_logit_diff: list[float] = field(default_factory=list)  # |cached - uncached| next-token logits

    @property
    def steps(self) -> int:
        return len(self.rows_with)

    @property
    def generated(self) -> list[int]:
        return self.ids[len(self.prompt_ids):]


class DecodeStepper:
    """Decode one token per click with and without a KV cache; chart rows, FLOPs and time per step."""

    def __init__(self, model, tokenizer, prompt: str = "May the force", max_steps: int = 64,
                 max_prompt_tokens: int = 256):
        self.model, self.tokenizer = model, tokenizer
        self.max_steps, self.max_prompt_tokens = max_steps, max_prompt_tokens
        self.state = DecodeStepperState()
        self._cache = None
        self.errors = ErrorBox()
        self.prompt = W.Text(value=prompt, description="Prompt", layout=W.Layout(width="60%"))
        self.reset_button = W.Button(description="Reset", tooltip="Start again from this prompt")
        self.step_button = W.Button(description="Step", button_style="primary", tooltip="Generate one token both ways")
        self.step10_button = W.Button(description="Step ×10")
        self.text = W.HTML()
        self.figure = go.FigureWidget(make_subplots(
            rows=1, cols=3, horizontal_spacing=0.08,
            subplot_titles=("K/V rows computed", "FLOPs (counted)", "time (measured, ms)")))
        for col in (1, 2, 3):
            for name, colour, dash, symbol in (("without cache", WITHOUT_CACHE, "solid", "circle"),
                                               ("with KV cache", WITH_CACHE, "dash", "square")):
                self.figure.add_scatter(row=1, col=col, name=name, legendgroup=name, showlegend=col == 1,
                                        mode="lines+markers", line=dict(color=colour, dash=dash),
                                        marker=dict(symbol=symbol, size=6))
            self.figure.update_xaxes(title_text="step (1 = the prompt)", row=1, col=col)
        self.figure.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10),
                                  legend=dict(orientation="h", y=-0.25))

        self.reset_button.on_click(lambda _: self.reset(self.prompt.value))
        self.step_button.on_click(lambda _: self.step())
        self.step10_button.on_click(lambda _: self.step(10))
        self.widget = W.VBox([W.HBox([self.prompt, self.reset_button]),
                              W.HBox([self.step_button, self.step10_button]),
                              self.errors.widget, self.text, self.figure])
        self.reset(prompt)

    def reset(self, text: str) -> None:
        """Start over from `text`: an empty cache and no tokens generated."""
        try:
            ids = encode_prompt(self.tokenizer, text, self.max_prompt_tokens)
            self._cache = self.model.new_cache(len(ids) + self.max_steps)
        except ValueError as error:
            self.errors.show(error)
            return
        self.errors.clear()
        self.state = DecodeStepperState(prompt_ids=ids, ids=list(ids))
        self._run([ids[0]])  # warm-up, not counted: the first call of a fresh model pays one-off costs
        self._draw()

    def step(self, n: int = 1) -> None:
        """Generate `n` more tokens, one forward pass per side for each."""
        if not self.state.prompt_ids:
            self.errors.show(ValueError("There is no prompt yet: type one and press Reset."))
            return
        for _ in range(n):
            if self.state.steps >= self.max_steps:
                self.errors.show(ValueError(f"This view stops after {self.max_steps} steps. "
                                            "Press Reset to start again."))
                break
            self._one_step()
        self._draw()

    def _one_step(self) -> None:
        s, cfg = self.state, self.model.config
        # Without a cache: the whole sequence goes through the model again.
        n = len(s.ids)
        with Stopwatch(self.model.device) as clock:
            uncached = self._run(s.ids)
        s.rows_without.append(n)
        s.flops_without.append(forward_flops(cfg, n_new=n).total)
        s.seconds_without.append(clock.elapsed_s)
        # With the cache: only what it does not hold yet (the whole prompt on step 1, then one token).
        new = s.ids[self._cache.length:]
        with Stopwatch(self.model.device) as clock:
            cached = self._run(new, self._cache)
        s.rows_with.append(len(new))
        s.flops_with.append(forward_flops(cfg, n_new=len(new), n_past=n - len(new)).total)
        s.seconds_with.append(clock.elapsed_s)
        s.max_logit_diff.append(float((cached - uncached).abs().max()))
        s.ids.append(int(cached.argmax()))

    def _run(self, ids: list[int], cache=None) -> torch.Tensor:
        """Next-token logits after `ids` (continuing `cache` if given)."""
        return self.model(torch.tensor([ids], device=self.model.device), cache=cache, last_only=True)[0, -1]

    def _draw(self) -> None:
        s = self.state
        steps = list(range(1, s.steps + 1))
        series = [s.rows_without, s.rows_with, s.flops_without, s.flops_with,
                  [t * 1e3 for t in s.seconds_without], [t * 1e3 for t in s.seconds_with]]
        with self.figure.batch_update():
            for trace, ys in zip(self.figure.data, series):
                trace.x, trace.y = steps, ys
        prompt = html.escape(self.tokenizer.decode(s.prompt_ids))
        generated = html.escape(self.tokenizer.decode(s.generated))
        summary = "Press Step to generate the first token."
        if s.steps:
            summary = (f"Step {s.steps}: without a cache the model computed {s.rows_without[-1]} rows, with it "
                       f"{s.rows_with[-1]}. Totals so far: {sum(s.rows_without)} vs {sum(s.rows_with)} rows. "
                       f"Largest logit difference between the two: {max(s.max_logit_diff):.1e}.")
        self.text.value = (f'<div style="font-family:monospace;white-space:pre-wrap">{prompt}'
                           f'<b style="color:{WITH_CACHE}">{generated}</b></div><div>{html.escape(summary)}</div>')
