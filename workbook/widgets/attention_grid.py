"""The causal mask and the model's real attention weights as heatmaps, and what appending a token changes.

"Append a token" adds the model's greedy next token and recomputes everything from scratch (no
cache), then measures how much each earlier row moved: nothing, because no earlier query can
see the new key. That fact is what makes keeping K/V rows safe.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import ipywidgets as W
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .style import PROVENANCE_COLOURS, ErrorBox
from .tokens import encode_prompt, readable

ALLOWED, MASKED = PROVENANCE_COLOURS["loaded"], "#DDDDDD"


@dataclass
class AttentionGridState:
    ids: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    layer: int = 0
    head: int = 0
    mask: torch.Tensor | None = None  # [n, n] bool, True where query (row) may see key (column)
    weights: list[torch.Tensor] = field(default_factory=list)  # per layer [heads, n, n]
    outputs: list[torch.Tensor] = field(default_factory=list)  # per layer [heads, n, head_dim]
    next_id: int | None = None  # the model's greedy choice after the last token
    appended: int = 0  # tokens added with the button since the prompt was set
    # After an append: the largest change anywhere in the earlier rows (all layers and heads); ~0.
    max_change_weights: float | None = None
    max_change_outputs: float | None = None


class AttentionGrid:
    """Heatmaps of the causal mask and of one layer/head's attention weights on a prompt."""

    def __init__(self, model, tokenizer, prompt: str = "May the force", max_tokens: int = 48):
        cfg = model.config
        self.model, self.tokenizer = model, tokenizer
        self.max_tokens = min(max_tokens, cfg.max_position_embeddings)
        self.state = AttentionGridState()
        self.errors = ErrorBox()
        self.prompt = W.Text(value=prompt, description="Prompt", layout=W.Layout(width="60%"))
        self.show_button = W.Button(description="Show", tooltip="Run the model on this prompt")
        self.layer = W.Dropdown(options=[(f"layer {i}", i) for i in range(cfg.num_layers)], description="Layer")
        self.head = W.Dropdown(options=[(f"head {h}", h) for h in range(cfg.num_heads)], description="Head")
        self.append_button = W.Button(description="Append a token", button_style="primary",
                                      tooltip="Add the model's next (greedy) token and recompute everything")
        self.status = W.HTML()
        self.figure = go.FigureWidget(make_subplots(
            rows=1, cols=2, horizontal_spacing=0.12,
            subplot_titles=("Causal mask: may this query see this key?", "Attention weights (each row sums to 1)")))
        self.figure.add_heatmap(row=1, col=1, colorscale=[[0, MASKED], [1, ALLOWED]], zmin=0, zmax=1,
                                showscale=False, texttemplate="%{text}", hoverinfo="text")
        self.figure.add_heatmap(row=1, col=2, colorscale="Cividis", zmin=0, zmax=1, hoverinfo="text",
                                colorbar=dict(title="weight"))
        self.figure.update_layout(height=460, margin=dict(l=10, r=10, t=40, b=10))
        for col in (1, 2):
            self.figure.update_yaxes(autorange="reversed", title_text="query (row)", row=1, col=col)
            self.figure.update_xaxes(title_text="key (column)", tickangle=-60, row=1, col=col)

        self.show_button.on_click(lambda _: self.set_prompt(self.prompt.value))
        self.append_button.on_click(lambda _: self.append_token())
        self.layer.observe(lambda _: self._draw(), names="value")
        self.head.observe(lambda _: self._draw(), names="value")
        self.widget = W.VBox([W.HBox([self.prompt, self.show_button]),
                              W.HBox([self.layer, self.head, self.append_button]),
                              self.errors.widget, self.status, self.figure])
        self.set_prompt(prompt)

    def set_prompt(self, text: str) -> None:
        """Tokenize `text`, run the model on it and draw layer/head as picked."""
        try:
            ids = encode_prompt(self.tokenizer, text, self.max_tokens)
        except ValueError as error:
            self.errors.show(error)
            return
        self.errors.clear()
        self.state.appended = 0
        self.state.max_change_weights = self.state.max_change_outputs = None
        self._run(ids)
        self.status.value = (f"{len(ids)} tokens. Row i is query i: it may look at keys 0..i only, so everything "
                             "right of the diagonal is masked and gets weight exactly 0.")
        self._draw()

    def append_token(self) -> None:
        """Add the greedy next token, recompute from scratch and measure how much the earlier rows changed."""
        s = self.state
        if not s.ids:
            self.errors.show(ValueError("There is no prompt yet: type one and press Show."))
            return
        if len(s.ids) + 1 > self.max_tokens:
            self.errors.show(ValueError(f"The grid shows at most {self.max_tokens} tokens. "
                                        "Press Show to start again from the prompt."))
            return
        self.errors.clear()
        n = len(s.ids)
        old_weights, old_outputs = s.weights, s.outputs
        self._run(s.ids + [s.next_id])
        s.appended += 1
        # Earlier rows: the first n queries against all n + 1 keys (the new key's column must be 0).
        moved = max(float((new[:, :n, :n] - old).abs().max()) for new, old in zip(s.weights, old_weights))
        new_key = max(float(w[:, :n, n].abs().max()) for w in s.weights)
        s.max_change_weights = max(moved, new_key)
        s.max_change_outputs = max(float((new[:, :n] - old).abs().max()) for new, old in zip(s.outputs, old_outputs))
        self.status.value = (
            f"Appended {html.escape(repr(s.texts[-1]))} (id {s.ids[-1]}) and recomputed everything without a cache. "
            f"Rows 0–{n - 1} changed by at most <b>{s.max_change_weights:.1e}</b> (weights) and "
            f"<b>{s.max_change_outputs:.1e}</b> (attention outputs), across all {len(s.weights)} layers and "
            f"{s.weights[0].shape[0]} heads: only the new row is new work.")
        self._draw()

    def _run(self, ids: list[int]) -> None:
        steps = []
        logits = self.model(torch.tensor([ids], device=self.model.device), record_attention=steps)
        s = self.state
        s.ids, s.texts = ids, self.tokenizer.token_texts(ids)
        s.mask = steps[0].mask.cpu()
        s.weights = [step.weights[0].float().cpu() for step in steps]
        s.outputs = [step.output[0].float().cpu() for step in steps]
        s.next_id = int(logits[0, -1].argmax())

    def _draw(self) -> None:
        s = self.state
        s.layer, s.head = self.layer.value, self.head.value
        if not s.ids:
            return
        n = len(s.ids)
        labels = [f"{i} {readable(t)}" for i, t in enumerate(s.texts)]
        weights = s.weights[s.layer][s.head].tolist()
        allowed = s.mask.tolist()
        pair = [[f"query {i} {s.texts[i]!r} → key {j} {s.texts[j]!r}" for j in range(n)] for i in range(n)]
        with self.figure.batch_update():
            mask_map, weight_map = self.figure.data
            mask_map.z = [[int(a) for a in row] for row in allowed]
            mask_map.text = [["✓" if a else "✗" for a in row] for row in allowed]
            mask_map.hovertext = [[f"{p}: {'allowed' if a else 'masked'}" for p, a in zip(pr, ar)]
                                  for pr, ar in zip(pair, allowed)]
            weight_map.z = weights
            weight_map.hovertext = [[f"{p}: {w:.3f}" for p, w in zip(pr, wr)] for pr, wr in zip(pair, weights)]
            for heatmap in (mask_map, weight_map):
                heatmap.x = heatmap.y = list(range(n))
            for col in (1, 2):
                self.figure.update_xaxes(tickvals=list(range(n)), ticktext=labels, row=1, col=col)
                self.figure.update_yaxes(tickvals=list(range(n)), ticktext=labels, row=1, col=col)
            # Outline the newest row after an append, so the one row of new work stands out without colour.
            self.figure.layout.shapes = [dict(type="rect", xref="x2", yref="y2", x0=-0.5, x1=n - 0.5, y0=n - 1.5,
                                              y1=n - 0.5, line=dict(color="#000000", width=3, dash="dash"))
                                         ] if s.appended else []
