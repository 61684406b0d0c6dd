"""The KV cache as a table: one row per token, holding a K and a V vector in every layer.

Collapsed, each token is one row (token, K, V, where it came from); expanded, the row splits
into one K/V cell per layer, which is what a cache really stores and why it grows so fast.
With `fold=k`, each long run of one provenance shows its first and last k rows, so a long prompt's
table stays short and the row where a hit ends stays in view; "Show every row" unfolds it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import ipywidgets as W

from ..checks import check_whole
from .style import PROVENANCE_COLOURS, TEXT_ON, ErrorBox, legend_html
from .tokens import NEUTRAL, Fold, fold_runs, fold_text, readable, token_texts, unfold_box


@dataclass
class KVRowsState:
    ids: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    provenance: list[str] | None = None
    expanded: bool = False
    rows: list[dict] = field(default_factory=list)  # the table as shown, one dict per token


class KVRowsTable:
    """Shows which K/V rows of a prompt were computed and which were loaded; a toggle shows every layer."""

    def __init__(self, tokenizer, num_layers: int, *, legend: bool = True, fold: int | None = None):
        check_whole("num_layers", num_layers, 1)
        self.fold = fold
        self.tokenizer = tokenizer
        self.num_layers = num_layers
        self.legend = legend  # False inside a view that draws the colours' legend once for all its parts
        self.state = KVRowsState()
        self.errors = ErrorBox()
        self.expand = W.ToggleButton(value=False, description="Show every layer", icon="layer-group",
                                     tooltip="Switch between one row per token and one K/V cell per layer",
                                     layout=W.Layout(width="auto"))
        self.expand.observe(self._on_expand, names="value")
        self.show_all = unfold_box(fold, "row", self._redraw)
        self._table = W.HTML()
        self.widget = W.VBox([W.HBox([self.expand, self.show_all]), self.errors.widget, self._table])

    def show(self, ids: list[int], provenance: list[str] | None = None) -> None:
        """Draw the rows of `ids`; `provenance` says per token "computed", "loaded" or "invalidated"."""
        checked = self.errors.attempt(lambda: token_texts(self.tokenizer, ids, provenance))
        if checked is None:
            return
        self.state.ids, self.state.texts = checked
        self.state.provenance = None if provenance is None else list(provenance)
        self._redraw()

    def _on_expand(self, change) -> None:
        self.expand.description = "Collapse layers" if change["new"] else "Show every layer"
        self._redraw()

    def _redraw(self) -> None:
        s = self.state
        s.expanded = self.expand.value
        labels = s.provenance or ["—"] * len(s.ids)
        s.rows = []
        for position, (token_id, text, label) in enumerate(zip(s.ids, s.texts, labels)):
            row = {"position": position, "token": text, "id": token_id}
            if s.expanded:
                row.update({f"layer {layer}": f"K{layer} V{layer}" for layer in range(self.num_layers)})
            else:
                row.update({"K": f"K × {self.num_layers} layers", "V": f"V × {self.num_layers} layers"})
            row["provenance"] = label
            s.rows.append(row)
        self._table.value = self._render()

    def _render(self) -> str:
        s = self.state
        if not s.rows:
            return '<div style="color:#555">No tokens yet.</div>'
        columns = list(s.rows[0])
        head = "".join(f'<th style="padding:2px 6px;text-align:left">{html.escape(c)}</th>' for c in columns)
        keep = None if self.show_all.value else self.fold
        body = [fold_row_html(item, len(columns)) if isinstance(item, Fold) else row_html(s.rows[item], columns)
                for item in fold_runs(s.provenance or [None] * len(s.rows), keep)]
        counts = ""
        if s.provenance:
            counts = ", ".join(f"{s.provenance.count(p)} {p}" for p in PROVENANCE_COLOURS if p in s.provenance)
            counts = f" ({counts})"
        caption = (f"{len(s.ids)} token rows{counts} × {self.num_layers} layers × 2 (K and V) = "
                   f"{2 * len(s.ids) * self.num_layers} vectors stored")
        legend = legend_html(PROVENANCE_COLOURS) if s.provenance and self.legend else ""
        return (f'<div class="wb-kv-rows"><div style="color:#555">{html.escape(caption)}</div>{legend}'
                f'<div style="overflow-x:auto"><table style="border-collapse:collapse">'
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div></div>")


def row_html(row: dict, columns: list[str]) -> str:
    """One token's row; its K/V cells and provenance in the provenance's colour."""
    background = PROVENANCE_COLOURS.get(row["provenance"], NEUTRAL)
    style = f"background:{background};color:{TEXT_ON.get(background, '#000000')}"
    cells = []
    for c in columns:
        value = readable(row[c]) if c == "token" else str(row[c])
        coloured = c in ("K", "V", "provenance") or c.startswith("layer ")
        cells.append(f'<td style="padding:2px 6px;font-family:monospace;white-space:pre;'
                     f'{style if coloured else ""}">{html.escape(value)}</td>')
    return f"<tr>{''.join(cells)}</tr>"


def fold_row_html(fold: Fold, width: int) -> str:
    """The one row standing for a folded run's middle rows."""
    return (f'<tr class="wb-fold"><td colspan="{width}" style="padding:2px 6px;color:#555;border:1px dashed #555">'
            f'{html.escape(fold_text(fold, "rows"))}</td></tr>')
