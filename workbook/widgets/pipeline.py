"""The whole pipeline in one picture: text → tokens → embeddings → layers (K/V rows) → logits → next token, and
where each cache sits on it. Every lesson shows it at the top with the stages it covers highlighted.

Drawn as SVG text, so it shows in JupyterLab, in a static page (`make book`) and on GitHub alike.
"""

from __future__ import annotations

import html

from ..errors import WorkbookError
from .style import HIGHLIGHT, TEXT_ON  # light yellow: never the blue that means "loaded from a cache"

PLAIN, INK = "#F2F2F2", "#333333"

# key -> (x, y, width, label, note under the label)
BOXES = {
    "text": (10, 70, 110, "text", "the prompt"),
    "tokens": (150, 70, 110, "tokens", "ids, one per piece"),
    "embeddings": (290, 70, 120, "embeddings", "a vector per id"),
    "layers": (440, 70, 150, "layers", "attention + MLP, K/V rows"),
    "logits": (620, 70, 100, "logits", "a score per id"),
    "next": (750, 70, 120, "next token", "greedy or sampled"),
    "semantic": (10, 0, 250, "semantic cache", "a similar question's answer, no model run"),
    "kv": (400, 165, 150, "KV cache", "this request's rows, kept"),
    "prefix": (560, 165, 170, "prefix cache", "rows shared across requests"),
    "draft": (740, 165, 140, "draft model", "guesses k tokens to check"),
}
LESSON_STAGES = {
    1: ("text", "tokens"), 2: ("embeddings", "layers"), 3: ("layers", "kv"), 4: ("kv", "prefix"),
    5: ("tokens", "prefix"), 6: ("next", "draft"), 7: ("kv", "prefix", "semantic"), 8: ("semantic",),
    9: ("layers", "kv", "prefix"),
    10: ("prefix",), 11: ("tokens", "prefix"), 12: ("prefix",),
}
FLOW = ["text", "tokens", "embeddings", "layers", "logits", "next"]
LINKS = [((65, 48), (65, 70)), ((475, 165), (475, 118)), ((600, 165), (580, 118)), ((830, 165), (830, 118))]  # cache to stage


def pipeline_svg(highlight=()) -> str:
    """The pipeline as SVG, with the stages in `highlight` (keys of BOXES) filled in the highlight yellow and outlined."""
    unknown = set(highlight) - BOXES.keys()
    if unknown:
        raise WorkbookError(f"No pipeline stage named {', '.join(sorted(unknown))}; the stages are {', '.join(BOXES)}.")
    parts = [_arrow(BOXES[a], BOXES[b]) for a, b in zip(FLOW, FLOW[1:])]
    parts.append('<path d="M790 118 C790 148 205 148 205 118" fill="none" stroke="#333" stroke-dasharray="4 3" '
                 'marker-end="url(#arrow)"/><text x="215" y="158" font-size="11" fill="#333">decode: the new token goes '
                 'back in, one step at a time</text>')
    parts += [f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#333" stroke-dasharray="2 2"/>'
              for (x1, y1), (x2, y2) in LINKS]
    parts += [_box(key, key in highlight) for key in BOXES]
    return ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 890 220" width="890" height="220" '
            'font-family="sans-serif" role="img" aria-label="the inference pipeline and its caches">'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
            'orient="auto"><path d="M0 0 L10 5 L0 10 z" fill="#333"/></marker></defs>' + "".join(parts) + "</svg>")


def _box(key: str, lit: bool) -> str:
    x, y, width, label, note = BOXES[key]
    fill = HIGHLIGHT if lit else PLAIN
    ink = TEXT_ON[HIGHLIGHT] if lit else INK
    dashed = "" if key in FLOW else ' stroke-dasharray="5 3"'  # caches are drawn dashed: optional helpers
    return (f'<g data-stage="{key}" data-lit="{str(lit).lower()}"><rect x="{x}" y="{y}" width="{width}" height="48" '
            f'rx="6" fill="{fill}" stroke="{INK}" stroke-width="{2.5 if lit else 1}"{dashed}/>'
            f'<text x="{x + width / 2}" y="{y + 20}" text-anchor="middle" font-size="14" font-weight="bold" '
            f'fill="{ink}">{html.escape(label)}</text><text x="{x + width / 2}" y="{y + 38}" text-anchor="middle" '
            f'font-size="10.5" fill="{ink}">{html.escape(note)}</text></g>')


def _arrow(a, b) -> str:
    """From the right edge of box `a` to the left edge of box `b`, at mid-height (the flow's boxes share a row)."""
    x, y, width = a[:3]
    return f'<line x1="{x + width}" y1="{y + 24}" x2="{b[0] - 2}" y2="{y + 24}" stroke="#333" marker-end="url(#arrow)"/>'


def show_pipeline(lesson: int):
    """The pipeline with lesson `lesson`'s stages highlighted, as something a notebook displays."""
    from IPython.display import SVG

    if lesson not in LESSON_STAGES:
        raise WorkbookError(f"No lesson {lesson!r}; the lessons are {', '.join(map(str, LESSON_STAGES))}.")
    return SVG(pipeline_svg(LESSON_STAGES[lesson]))
