"""Lesson 10's audit bench: pick a deployment (isolation and one mitigation) and a pairing, run a small audit.

Each click builds a fresh `audit.Deployment` on the shipped model, collects the attacker's hit and
miss timings, and draws both histograms and the ROC curve, with the verdict in words. The state lives
in `view.state`, so tests drive it from Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as W
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..audit import ALPHA, ISOLATIONS, PAIRINGS, Comparison, Deployment, Mitigations, Samples, collect, compare
from ..audit.procedure import VICTIM
from .style import PROVENANCE_COLOURS

MITIGATIONS = {
    "none": Mitigations(),
    "pad every response to a deadline": Mitigations(pad_to_deadline=True),
    "random delay up to 20 ms": Mitigations(jitter_s=0.020),
    "no caching under 1,024 tokens": Mitigations(min_cached_tokens=1024),
    "pages of 64 tokens": Mitigations(page_size=64),
}


@dataclass
class AuditState:
    isolation: str = "global"
    mitigation: str = "none"
    pairing: str = "another organisation"
    trials: int = 20
    samples: Samples | None = None
    comparison: Comparison | None = None


class AuditView:
    def __init__(self, model, tokenizer, *, trials: int = 20):
        self.model, self.tokenizer = model, tokenizer
        self.state = AuditState(trials=trials)
        self.isolation_picker = W.Dropdown(options=list(ISOLATIONS), value=self.state.isolation, description="Isolation")
        self.mitigation_picker = W.Dropdown(options=list(MITIGATIONS), value=self.state.mitigation,
                                            description="Mitigation")
        self.pairing_picker = W.Dropdown(options=list(PAIRINGS), value=self.state.pairing, description="Attacker")
        self.run_button = W.Button(description="Run the audit", button_style="primary")
        self.run_button.on_click(lambda _: self.run())
        self.figure = go.FigureWidget(make_subplots(rows=1, cols=2, subplot_titles=(
            "attacker's time to first token", "ROC of a threshold detector")))
        self.figure.add_histogram(name="after the victim (hit?)", marker_color=PROVENANCE_COLOURS["loaded"],
                                  opacity=0.7, row=1, col=1)
        self.figure.add_histogram(name="nobody sent it (miss)", marker_color=PROVENANCE_COLOURS["computed"],
                                  opacity=0.7, row=1, col=1)
        self.figure.add_scatter(name="ROC", mode="lines", line={"color": "#000000"}, row=1, col=2)
        self.figure.add_scatter(name="chance", mode="lines", x=[0, 1], y=[0, 1], line={"dash": "dot", "color": "#999999"},
                                row=1, col=2)
        self.figure.update_layout(barmode="overlay", height=340, margin={"t": 40, "b": 40})
        self.figure.update_xaxes(title_text="ms", row=1, col=1)
        self.figure.update_xaxes(title_text="false positive rate", row=1, col=2)
        self.figure.update_yaxes(title_text="true positive rate", row=1, col=2)
        self.verdict = W.HTML()
        self.widget = W.VBox([
            W.HTML("<b>Audit bench.</b> The victim (acme/alice) sends a prefix; the attacker probes. Pick who the "
                   "attacker is, how the deployment salts its cache, and one mitigation, then run a small audit."),
            W.HBox([self.isolation_picker, self.mitigation_picker, self.pairing_picker, self.run_button]),
            self.verdict, self.figure])

    def run(self) -> None:
        s = self.state
        s.isolation, s.mitigation, s.pairing = (self.isolation_picker.value, self.mitigation_picker.value,
                                                self.pairing_picker.value)
        deployment = Deployment(self.model, self.tokenizer, s.isolation, MITIGATIONS[s.mitigation])
        s.samples = collect(deployment.send, VICTIM, PAIRINGS[s.pairing], trials=s.trials,
                            vocab_size=self.model.config.vocab_size)
        s.comparison = compare(s.samples.hits, s.samples.misses)
        c = s.comparison
        with self.figure.batch_update():
            self.figure.data[0].x = [t * 1e3 for t in s.samples.hits]
            self.figure.data[1].x = [t * 1e3 for t in s.samples.misses]
            self.figure.data[2].x, self.figure.data[2].y = list(c.false_positive_rate), list(c.true_positive_rate)
        found = ("<b>shared</b>: timing tells the attacker what the victim sent" if c.shared
                 else "<b>no sharing found</b> at this sample size")
        self.verdict.value = (f"<p class='wb-verdict'>{found}. AUC {c.auc:.2f} (0.5 = a coin toss), p = {c.p_value:.1e} "
                              f"(the audit calls it shared below {ALPHA:g}); {s.trials} hit and {s.trials} miss probes.</p>")
