"""Lesson 8's views: the threshold explorer on the labelled pairs, and the price of a wrong answer on the replayed log.

Each cache (a plain threshold, or one with a verification stage) has its pairs scored once
(`semantic.PairScores`); moving the slider only recounts. The view shows the share of paraphrases
served and of near misses served (wrong answers), the precision/recall curve with the current
threshold marked, and the near misses that now get a wrong answer, with their similarity.
`WrongAnswerCostView` weighs the dollars a threshold saves on the replayed log against what its
wrong answers cost. The state lives in `view.state`, so tests move the controls from Python.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import ipywidgets as W
import plotly.graph_objects as go

from ..errors import WorkbookError
from ..semantic.pairs import GRID, Pair, PairScores, Rates
from ..semantic.tuning import ThresholdOutcome
from .style import ACCEPTED, REJECTED, usd

SHOWN_NEAR_MISSES = 12


@dataclass
class ThresholdState:
    cache: str
    split: str
    threshold: float
    rates: Rates | None = None
    near_misses: list[tuple[Pair, float]] = field(default_factory=list)  # served near misses, most similar first


class ThresholdView:
    """`scores[cache][split]` holds the scored pairs of each cache ("plain threshold", ...) on each split."""

    def __init__(self, scores: dict[str, dict[str, PairScores]], threshold: float = 0.8):
        self.scores = scores
        first = next(iter(scores))
        self.state = ThresholdState(first, next(iter(scores[first])), threshold)
        self._build()
        self.update()

    def update(self) -> None:
        s = self.state
        s.cache, s.split, s.threshold = self.cache_picker.value, self.split_picker.value, self.slider.value
        scores = self.scores[s.cache][s.split]
        s.rates = scores.rates(s.threshold)
        s.near_misses = scores.near_misses_served(s.threshold)
        curve = scores.sweep()
        with self.figure.batch_update():
            self.figure.data[0].x = [r.paraphrase_hits for r in curve]
            self.figure.data[0].y = [r.precision for r in curve]
            self.figure.data[0].customdata = [r.threshold for r in curve]
            self.figure.data[1].x, self.figure.data[1].y = [s.rates.paraphrase_hits], [s.rates.precision]
            self.figure.layout.title.text = f"{s.cache}, {s.split} pairs"
        self.summary.value = summary_html(s.rates)
        self.listing.value = near_misses_html(s.near_misses)

    def _build(self) -> None:
        s = self.state
        self.cache_picker = W.Dropdown(options=list(self.scores), value=s.cache, description="Cache")
        self.split_picker = W.ToggleButtons(options=list(self.scores[s.cache]), value=s.split, description="Pairs")
        self.slider = W.FloatSlider(value=s.threshold, min=float(GRID[0]), max=float(GRID[-1]), step=0.01,
                                    readout_format=".2f", description="Threshold", continuous_update=True,
                                    layout=W.Layout(width="60%"))
        for control in (self.cache_picker, self.split_picker, self.slider):
            control.observe(lambda _: self.update(), names="value")
        self.figure = go.FigureWidget(
            data=[go.Scatter(mode="lines", name="every threshold", line={"color": ACCEPTED},
                             hovertemplate="threshold %{customdata:.2f}<br>paraphrases served %{x:.1%}"
                                           "<br>answers served that are right %{y:.1%}<extra></extra>"),
                  go.Scatter(mode="markers", name="this threshold", marker={"color": REJECTED, "size": 14})],
            layout=go.Layout(height=340, margin={"t": 40, "l": 60, "r": 20, "b": 50}, title={"text": ""},
                             xaxis={"title": "recall: paraphrases served", "tickformat": ".0%",
                                    "range": [-0.02, 1.02]},
                             yaxis={"title": "precision: served answers that are right", "tickformat": ".0%",
                                    "range": [-0.02, 1.02]}))
        self.summary, self.listing = W.HTML(), W.HTML()
        self.widget = W.VBox([
            W.HTML("<b>Threshold explorer.</b> A cache serves a stored answer when the cosine similarity of the two "
                   "queries is at least the threshold (and, with a verification stage, when their numbers, negations, "
                   "opposites and named values agree). The curve is every threshold: left is strict, right serves "
                   "more paraphrases (recall) and, once near misses get through, fewer right answers (precision)."),
            W.HBox([self.cache_picker, self.split_picker]), self.slider, self.summary, self.figure, self.listing])


def summary_html(r: Rates) -> str:
    return (f'<p class="wb-threshold">At <b>{r.threshold:.2f}</b> the cache serves <b>{r.paraphrase_hits:.0%}</b> of the '
            f"paraphrases and <b>{r.false_hits:.0%}</b> of the near misses (wrong answers); "
            f"{r.precision:.0%} of the {r.served} answers it serves are right.</p>")


def near_misses_html(near_misses: list[tuple[Pair, float]]) -> str:
    if not near_misses:
        return "<p>No near miss is served at this threshold.</p>"
    rows = "".join(f"<tr><td>{sim:.3f}</td><td>{html.escape(p.cached)}</td><td>{html.escape(p.incoming)}</td>"
                   f"<td>{p.kind}</td></tr>" for p, sim in near_misses[:SHOWN_NEAR_MISSES])
    more = len(near_misses) - SHOWN_NEAR_MISSES
    tail = f"<p>…and {more} more.</p>" if more > 0 else ""
    return (f"<b>Near misses served: {len(near_misses)}</b> (most similar first)<table class='wb-near-misses'>"
            "<tr><th>cosine</th><th>cached query</th><th>new query</th><th>what differs</th></tr>"
            f"{rows}</table>{tail}")


@dataclass
class WrongAnswerCostState:
    usd_per_wrong: float
    best: ThresholdOutcome | None = None  # the threshold worth most at this price of a wrong answer


class WrongAnswerCostView:
    """A slider for what one wrong answer costs the business; the cache's net worth at each threshold, best marked."""

    def __init__(self, outcomes: list[ThresholdOutcome], usd_per_wrong: float = 0.10):
        if not outcomes:
            raise WorkbookError("WrongAnswerCostView needs the replayed log at one threshold at least.")
        self.outcomes = outcomes
        self.state = WrongAnswerCostState(usd_per_wrong)
        self.slider = W.FloatLogSlider(value=usd_per_wrong, base=10, min=-4, max=2, step=0.25, readout_format=".4f",
                                       description="$ per wrong answer", style={"description_width": "10em"},
                                       layout=W.Layout(width="60%"))
        self.slider.observe(lambda _: self.update(), names="value")
        self.figure = go.FigureWidget(
            data=[go.Scatter(mode="lines+markers", name="net worth", line={"color": ACCEPTED}),
                  go.Scatter(mode="markers", name="best threshold", marker={"color": REJECTED, "size": 14})],
            layout=go.Layout(height=320, margin={"t": 30, "l": 70, "r": 20, "b": 50},
                             xaxis={"title": "threshold"},
                             yaxis={"title": "saved minus wrong answers' cost ($ per day)", "tickprefix": "$"}))
        self.summary = W.HTML()
        self.widget = W.VBox([self.slider, self.summary, self.figure])
        self.update()

    def update(self) -> None:
        s = self.state
        s.usd_per_wrong = self.slider.value
        net = [o.net_usd(s.usd_per_wrong) for o in self.outcomes]
        s.best = max(self.outcomes, key=lambda o: (o.net_usd(s.usd_per_wrong), o.threshold))
        with self.figure.batch_update():
            self.figure.data[0].x, self.figure.data[0].y = [o.threshold for o in self.outcomes], net
            self.figure.data[1].x, self.figure.data[1].y = [s.best.threshold], [s.best.net_usd(s.usd_per_wrong)]
        self.summary.value = (f"<p>At {usd(s.usd_per_wrong)} per wrong answer the cache is worth most at threshold "
                              f"<b>{s.best.threshold:.2f}</b>: it saves {usd(s.best.saved_usd)} and serves "
                              f"{s.best.wrong} wrong answer{'s' if s.best.wrong != 1 else ''}, net "
                              f"<b>{usd(s.best.net_usd(s.usd_per_wrong))}</b>.</p>")
