"""Tokens as chips: each token's text (spaces and newlines made visible), its id, and where its K/V came from.

`TokenStrip` draws one token sequence; `DivergenceView` puts two editable prompts side by side and
marks every token after their first difference as invalidated or computed: the part a prefix cache cannot reuse.
A strip of a long prompt can fold each long run of one provenance to its two ends, so that the places
where the provenance changes (where a hit ends) stay on screen instead of a wall of a thousand chips.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Callable

import ipywidgets as W

from ..checks import check_whole
from ..tokenizer import first_divergence, shared_prefix_length
from .style import PROVENANCE_COLOURS, TEXT_ON, ErrorBox, legend_html

NEUTRAL = "#EEEEEE"  # a chip with no provenance: just a token
# Whitespace would be invisible on a chip, yet it is where prompts most often differ.
VISIBLE_WHITESPACE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


def readable(text: str) -> str:
    """A token's text with spaces, newlines and tabs replaced by visible marks."""
    return "".join(VISIBLE_WHITESPACE.get(ch, ch) for ch in text)


def check_provenance(ids: list[int], provenance: list[str] | None) -> None:
    """Raise a ValueError unless `provenance` is None or one known word per token."""
    if provenance is None:
        return
    if len(provenance) != len(ids):
        raise ValueError(f"Got {len(ids)} tokens but {len(provenance)} provenance labels; give one per token.")
    unknown = set(provenance) - PROVENANCE_COLOURS.keys()
    if unknown:
        raise ValueError(f"Unknown provenance {', '.join(map(repr, sorted(unknown)))}; "
                         f"use {', '.join(PROVENANCE_COLOURS)}.")


def encode_prompt(tokenizer, text: str, max_tokens: int) -> list[int]:
    """`text` as token ids; a ValueError for the view to show if it is empty or longer than the view draws."""
    if not text.strip():
        raise ValueError("The prompt is empty: type a few words.")
    ids = tokenizer.encode(text)
    if len(ids) > max_tokens:
        raise ValueError(f"The prompt has {len(ids)} tokens; this view shows at most {max_tokens}. Shorten it.")
    return ids


def token_texts(tokenizer, ids, provenance: list[str] | None) -> tuple[list[int], list[str]]:
    """The ids as ints and their texts; a ValueError if an id or the provenance labels do not fit."""
    ids = [int(i) for i in ids]
    check_provenance(ids, provenance)
    return ids, tokenizer.token_texts(ids)


def divergence_provenance(ids_cached: list[int], ids_new: list[int]) -> list[str]:
    """Each token of `ids_new` as an ideal token-level cache of `ids_cached` sees it.

    Before the first difference: loaded. After it: invalidated where the cache held a row at that position (held,
    then thrown away), computed beyond the cached prompt's end (new work anyway). Lesson 4 adds a real cache's two
    rules: it stores whole pages only, and it always computes the last prompt token.
    """
    reusable = shared_prefix_length(ids_cached, ids_new)
    return [("loaded" if i < reusable else "invalidated" if i < len(ids_cached) else "computed")
            for i in range(len(ids_new))]


def chip_html(text: str, token_id: int, provenance: str | None) -> str:
    """One token as a chip: visible text on top, id below, and the provenance word under that."""
    background = PROVENANCE_COLOURS.get(provenance, NEUTRAL)
    colour = TEXT_ON.get(background, "#000000")
    label = f'<div style="font-size:9px">{provenance}</div>' if provenance else ""
    title = html.escape(f"token {token_id}: {text!r}" + (f" ({provenance})" if provenance else ""), quote=True)
    return (f'<span class="wb-chip" title="{title}" style="display:inline-block;margin:2px;padding:2px 5px;'
            f'border-radius:4px;border:1px solid #555;background:{background};color:{colour};text-align:center;'
            f'font-family:monospace;vertical-align:top">'
            f'<div style="white-space:pre;font-size:13px">{html.escape(readable(text))}</div>'
            f'<div style="font-size:10px;opacity:0.85">{token_id}</div>{label}</span>')


@dataclass(frozen=True)
class Fold:
    """The middle of a run of one label, left out of a folded view: how many items, and their label."""

    hidden: int
    label: str | None


def unfold_box(fold: int | None, unit: str, redraw: Callable[[], None]) -> W.Checkbox:
    """The "Show every <unit>" box of a view that folds its runs (hidden when it does not fold); ticking it redraws.

    A ValueError unless `fold` is None (no folding) or keeps at least one item at each end of a run.
    """
    if fold is not None:
        check_whole(f"fold ({unit}s kept at each end of a run)", fold, 1)
    box = W.Checkbox(value=False, description=f"Show every {unit}", indent=False,
                     layout=W.Layout(width="auto", display="" if fold else "none"))
    box.observe(lambda _: redraw(), names="value")
    return box


def fold_runs(labels: list, keep: int | None) -> list[int | Fold]:
    """The positions to draw, in order; each run of one label longer than 2 * keep + 1 keeps its first and last
    `keep` positions and a `Fold` for the rest. `keep=None` keeps everything."""
    bounds = [0] + [i for i in range(1, len(labels)) if labels[i] != labels[i - 1]] + [len(labels)]
    shown: list[int | Fold] = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        hidden = 0 if keep is None else end - start - 2 * keep
        if hidden <= 1:  # folding a single item would save nothing
            shown += range(start, end)
        else:
            shown += [*range(start, start + keep), Fold(hidden, labels[start]), *range(end - keep, end)]
    return shown


def fold_text(fold: Fold, what: str = "tokens") -> str:
    """What a fold mark says: '… 1,100 more loaded tokens …'."""
    return f"… {fold.hidden:,} more {fold.label + ' ' if fold.label else ''}{what} …"


def fold_html(fold: Fold) -> str:
    """The chip-sized mark standing for the chips of a folded run's middle."""
    return (f'<span class="wb-fold" style="display:inline-block;margin:2px;padding:2px 8px;border:1px dashed #555;'
            f'border-radius:4px;font-size:12px;vertical-align:top;line-height:2.4em">{html.escape(fold_text(fold))}</span>')


@dataclass
class TokenStripState:
    ids: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # one readable string per token (whitespace kept as is)
    provenance: list[str] | None = None
    hidden: int = 0  # chips left out of folded runs (0 when every token is shown)


class TokenStrip:
    """A row of token chips, optionally coloured and labelled computed / loaded / invalidated.

    With `fold=k`, a run of one provenance longer than 2k + 1 tokens shows its first and last k chips and a
    mark for the rest; a "Show every token" box unfolds them.
    """

    def __init__(self, tokenizer, title: str = "", *, legend: bool = True, fold: int | None = None):
        self.tokenizer = tokenizer
        self.title = title
        self.legend = legend  # False inside a view that draws the colours' legend once for all its parts
        self.fold = fold
        self.state = TokenStripState()
        self.errors = ErrorBox()
        self._chips = W.HTML()
        self.show_all = unfold_box(fold, "token", self._redraw)
        self.widget = W.VBox([self._chips, self.show_all, self.errors.widget])

    def show(self, ids: list[int], provenance: list[str] | None = None) -> None:
        """Draw `ids`; a bad input leaves the strip as it was and shows why in the error box."""
        checked = self.errors.attempt(lambda: token_texts(self.tokenizer, ids, provenance))
        if checked is None:
            return
        ids, texts = checked
        self.state = TokenStripState(ids=ids, texts=texts, provenance=None if provenance is None else list(provenance))
        self._redraw()

    def _redraw(self) -> None:
        self._chips.value = self._render()

    def _render(self) -> str:
        s = self.state
        labels = s.provenance or [None] * len(s.ids)
        shown = fold_runs(labels, None if self.show_all.value else self.fold)
        s.hidden = sum(item.hidden for item in shown if isinstance(item, Fold))
        chips = "".join(fold_html(j) if isinstance(j, Fold) else chip_html(s.texts[j], s.ids[j], labels[j])
                        for j in shown)
        head = f"<b>{html.escape(self.title)}</b> " if self.title else ""
        counts = f"{len(s.ids)} tokens"
        if s.provenance:
            counts += ": " + ", ".join(f"{s.provenance.count(p)} {p}" for p in PROVENANCE_COLOURS if p in s.provenance)
        legend = legend_html(PROVENANCE_COLOURS) if s.provenance and self.legend else ""
        return (f'<div class="wb-token-strip">{head}<span style="color:#555">{counts}</span>{legend}'
                f'<div>{chips}</div></div>')


@dataclass
class DivergenceState:
    text_a: str = ""
    text_b: str = ""
    ids_a: list[int] = field(default_factory=list)
    ids_b: list[int] = field(default_factory=list)
    divergence: int | None = None  # first token index where they differ; None when identical
    reusable: int = 0  # tokens of B a cache of A could supply


class DivergenceView:
    """Two editable prompts; prompt B's tokens after the first difference are marked invalidated or computed."""

    def __init__(self, tokenizer, text_a: str = "", text_b: str = "", max_tokens: int = 512):
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.state = DivergenceState()
        self.errors = ErrorBox()
        layout = W.Layout(width="48%", height="90px")
        self.box_a = W.Textarea(value=text_a, description="A (cached)", layout=layout)
        self.box_b = W.Textarea(value=text_b, description="B (new)", layout=layout)
        self.strip_a = TokenStrip(tokenizer, "A")
        self.strip_b = TokenStrip(tokenizer, "B")
        self.summary = W.HTML()
        for box in (self.box_a, self.box_b):
            box.observe(lambda _: self.update(), names="value")
        self.widget = W.VBox([W.HBox([self.box_a, self.box_b]), self.errors.widget, self.summary,
                              self.strip_a.widget, self.strip_b.widget])
        self.update()

    def update(self) -> None:
        """Re-tokenize both boxes and redraw."""
        a, b = self.box_a.value, self.box_b.value
        try:
            if not a or not b:
                raise ValueError("Both prompts need some text: type in box A and box B.")
            ids_a, ids_b = self.tokenizer.encode(a), self.tokenizer.encode(b)
            longest = max(len(ids_a), len(ids_b))
            if longest > self.max_tokens:
                raise ValueError(f"A prompt here has {longest} tokens; this view shows at most {self.max_tokens}. "
                                 "Shorten it.")
        except ValueError as error:
            self.errors.show(error)
            return
        self.errors.clear()
        split = first_divergence(ids_a, ids_b)
        reusable = shared_prefix_length(ids_a, ids_b)
        self.state = DivergenceState(a, b, ids_a, ids_b, split, reusable)
        self.strip_a.show(ids_a)
        self.strip_b.show(ids_b, divergence_provenance(ids_a, ids_b))
        if split is None:
            text = (f"Identical: all {len(ids_b)} tokens of B could be loaded from an ideal token-level cache of A "
                    "(lesson 4 adds a real cache's two rules: whole pages only, and the last token always computed).")
        else:
            text = (f"First difference at token {split}: {reusable} of B's {len(ids_b)} tokens could be loaded "
                    f"from A's cache; the other {len(ids_b) - reusable} must be computed.")
        self.summary.value = f"<b>{html.escape(text)}</b>"
