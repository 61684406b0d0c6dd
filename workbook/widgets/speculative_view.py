"""Lesson 6's step viewer: the real draft-and-verify trace of `speculative_generate`, one step at a time.

Each step shows what the drafter proposed, which proposals the target accepted and which it
rejected (colour and word), the target's own token (the correction, or a bonus when all passed),
and how many cache rows were rolled back. Sliders for k and temperature run generation again;
"Previous step" / "Next step" only redraw the trace that is already there, so they are instant.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import ipywidgets as W

from ..request import GenerationResult
from ..speculative import PromptLookupDrafter, SpeculativeStep, speculative_generate
from ..timing import Stopwatch
from .style import ACCEPTED, BONUS, REJECTED, TEXT_ON, ErrorBox, legend_html
from .tokens import NEUTRAL, readable

DRAFT_MODEL, PROMPT_LOOKUP = "draft model", "prompt lookup"
# Colour and a word (or symbol) for every role, so the picture reads without telling colours apart.
ROLES = {
    "accepted ✓": ACCEPTED,
    "rejected ✗": REJECTED,
    "discarded": REJECTED,  # after a rejection: thrown away without being judged
    "correction": BONUS,
    "bonus ★": BONUS,
    "plain step": BONUS,  # nothing was proposed, so the target made one token as plain decoding would
}
LEGEND = {"accepted ✓": ACCEPTED, "rejected ✗ / discarded (after a rejection)": REJECTED,
          "target's own token: correction, or bonus ★ when all passed": BONUS}
CONTEXT_SHOWN = 10  # tokens of text before the step, to read the proposals in context


@dataclass
class SpeculativeViewState:
    """Everything the view shows: the request's settings, its trace, and which step is on screen."""

    prompt: str = ""
    prompt_ids: list[int] = field(default_factory=list)
    drafter: str = DRAFT_MODEL
    k: int = 4
    temperature: float = 0.0
    seed: int = 0
    max_new_tokens: int = 24
    result: GenerationResult | None = None  # the latest run; its trace is result.speculation
    step: int = 0  # index into result.speculation.steps
    run_seconds: float = 0.0  # wall time of the latest generation

    @property
    def n_steps(self) -> int:
        return len(self.result.speculation.steps) if self.result else 0

    @property
    def current(self) -> SpeculativeStep | None:
        return self.result.speculation.steps[self.step] if self.result else None

    def text_before(self, step: int) -> list[int]:
        """Prompt and generated tokens as they stood when `step` began."""
        made = [t for s in self.result.speculation.steps[:step] for t in s.new_tokens]
        return self.prompt_ids + made


class SpeculativeView:
    """Step through speculative decoding on a target and a draft model (or prompt lookup)."""

    def __init__(self, target, draft, tokenizer, prompt: str, k: int = 4, temperature: float = 0.0,
                 max_new_tokens: int = 24, seed: int = 0, max_k: int = 8, max_prompt_tokens: int = 256):
        self.target, self.draft, self.tokenizer = target, draft, tokenizer
        self.max_prompt_tokens = max_prompt_tokens
        self.state = SpeculativeViewState(k=k, temperature=temperature, seed=seed, max_new_tokens=max_new_tokens,
                                          drafter=DRAFT_MODEL if draft is not None else PROMPT_LOOKUP)
        self.errors = ErrorBox()
        self.prompt_box = W.Textarea(value=prompt, description="Prompt", layout=W.Layout(width="95%", height="70px"))
        self.run_button = W.Button(description="Run", button_style="primary", tooltip="Generate again from this prompt")
        # continuous_update=False: a drag re-runs generation once, when the slider is let go.
        self.k_slider = W.IntSlider(value=k, min=1, max=max_k, description="k (drafts)", continuous_update=False)
        self.temperature_slider = W.FloatSlider(value=temperature, min=0.0, max=1.5, step=0.1, description="temperature",
                                                continuous_update=False)
        options = [DRAFT_MODEL, PROMPT_LOOKUP] if draft is not None else [PROMPT_LOOKUP]
        self.drafter_buttons = W.ToggleButtons(options=options, value=self.state.drafter, description="drafter")
        self.previous_button = W.Button(description="Previous step", icon="arrow-left")
        self.next_button = W.Button(description="Next step", icon="arrow-right")
        self.step_label = W.HTML()
        self.picture = W.HTML()
        self.stats = W.HTML()

        self.run_button.on_click(lambda _: self.run())
        self.previous_button.on_click(lambda _: self.previous_step())
        self.next_button.on_click(lambda _: self.next_step())
        self.k_slider.observe(lambda change: self.run(k=change["new"]), names="value")
        self.temperature_slider.observe(lambda change: self.run(temperature=change["new"]), names="value")
        self.drafter_buttons.observe(lambda change: self.run(drafter=change["new"]), names="value")
        self.widget = W.VBox([
            W.HBox([self.prompt_box, self.run_button]),
            W.HBox([self.k_slider, self.temperature_slider]), self.drafter_buttons,
            self.errors.widget, self.stats,
            W.HBox([self.previous_button, self.next_button, self.step_label]),
            W.HTML(legend_html(LEGEND)), self.picture,
        ])
        self.run()

    # ----- actions ----------------------------------------------------------------------------

    def run(self, prompt: str | None = None, k: int | None = None, temperature: float | None = None,
            drafter: str | None = None) -> None:
        """Generate again with any setting changed; bad input keeps the last trace and shows why."""
        s = self.state
        prompt = self.prompt_box.value if prompt is None else prompt
        k = s.k if k is None else k
        temperature = s.temperature if temperature is None else temperature
        drafter = s.drafter if drafter is None else drafter
        try:
            if not prompt.strip():
                raise ValueError("The prompt is empty: type a few words to continue.")
            if drafter == DRAFT_MODEL and self.draft is None:
                raise ValueError("This view has no draft model; choose prompt lookup.")
            ids = self.tokenizer.encode(prompt)
            if len(ids) > self.max_prompt_tokens:
                raise ValueError(f"The prompt has {len(ids)} tokens; this view takes at most "
                                 f"{self.max_prompt_tokens}. Shorten it.")
            draft = self.draft if drafter == DRAFT_MODEL else PromptLookupDrafter()
            with Stopwatch(self.target.device) as clock:
                # speculative_generate checks k, temperature and the context length before any work.
                result = speculative_generate(self.target, draft, ids, k=k, max_new_tokens=s.max_new_tokens,
                                              temperature=temperature, seed=s.seed)
        except ValueError as error:
            self.errors.show(error)
            return
        self.errors.clear()
        self.state = SpeculativeViewState(prompt, ids, drafter, k, temperature, s.seed, s.max_new_tokens,
                                          result, step=0, run_seconds=clock.elapsed_s)
        self._draw_stats()
        self._draw_step()

    def next_step(self) -> None:
        """Show the following step of the trace (no generation)."""
        self.go_to(self.state.step + 1)

    def previous_step(self) -> None:
        """Show the step before (no generation)."""
        self.go_to(self.state.step - 1)

    def go_to(self, step: int) -> None:
        """Show step `step` (0-based), kept within the trace."""
        if self.state.result is None:
            return
        self.state.step = max(0, min(step, self.state.n_steps - 1))
        self._draw_step()

    # ----- drawing ----------------------------------------------------------------------------

    def _draw_stats(self) -> None:
        r, s = self.state.result.speculation, self.state
        drafts = (f"{r.draft_forwards} draft-model forwards" if s.drafter == DRAFT_MODEL
                  else "no draft model: proposals are copied from earlier text")
        self.stats.value = (
            f"<div>{r.tokens} tokens in <b>{len(r.steps)} target passes</b> (plus the prefill): "
            f"<b>{r.tokens_per_target_pass:.2f} tokens per target pass</b>, where plain decoding makes 1. "
            f"Acceptance rate <b>{r.acceptance_rate:.0%}</b> ({r.accepted} of {r.proposed} proposals); "
            f"per-token α = {r.per_token_acceptance:.2f}; {drafts}; ran in {s.run_seconds * 1e3:.0f} ms.</div>")

    def _draw_step(self) -> None:
        s, step = self.state, self.state.current
        i = s.step
        self.previous_button.disabled = i == 0
        self.next_button.disabled = i >= s.n_steps - 1
        self.step_label.value = f"&nbsp;step <b>{i + 1}</b> of {s.n_steps}"
        before = s.text_before(i)
        context = "".join(chip(t, tid, NEUTRAL) for t, tid in zip(self._texts(before[-CONTEXT_SHOWN:]),
                                                                    before[-CONTEXT_SHOWN:]))
        roles = step_roles(step)
        proposals = "".join(chip(t, tid, ROLES[role], role)
                            for t, tid, role in zip(self._texts(step.proposed), step.proposed, roles))
        if not step.proposed:
            proposals = '<i style="color:#555">nothing: the drafter found no earlier copy of the last tokens</i>'
        own = "plain step" if not step.proposed else "bonus ★" if step.bonus else "correction"
        target_chip = chip(self._texts([step.next_token])[0], step.next_token, ROLES[own], own)
        why = {"plain step": "nothing to check, so this pass made one token, like plain decoding",
               "bonus ★": "every proposal passed, so the target's token at the next position is a free extra one",
               "correction": "the target replaced the first rejected proposal with its own token"}[own]
        self.picture.value = (
            f'<div class="wb-spec-step">'
            f'<div><b>Text so far</b> (last {min(CONTEXT_SHOWN, len(before))} tokens): …{context}</div>'
            f'<div><b>Draft proposed {len(step.proposed)}</b> (asked for {step.k}): {proposals}</div>'
            f'<div><b>Target checked them in one pass</b> and added: {target_chip} '
            f'<span style="color:#555">({html.escape(why)})</span></div>'
            f'<div>This step added <b>{len(step.new_tokens)} token(s)</b>: {step.n_accepted} accepted + 1 from the target.</div>'
            f'{cache_table(step)}</div>')

    def _texts(self, ids: list[int]) -> list[str]:
        return self.tokenizer.token_texts(ids)


def step_roles(step: SpeculativeStep) -> list[str]:
    """One role word per proposal: accepted, then the first rejected one, then the discarded rest."""
    n = step.n_accepted
    if n == len(step.proposed):
        return ["accepted ✓"] * n
    return ["accepted ✓"] * n + ["rejected ✗"] + ["discarded"] * (len(step.proposed) - n - 1)


def chip(text: str, token_id: int, colour: str, word: str = "") -> str:
    """A token chip: its visible text, its id, and the word that says its role."""
    faded = "opacity:0.55;border-style:dashed;" if word == "discarded" else ""
    label = f'<div style="font-size:9px">{html.escape(word)}</div>' if word else ""
    return (f'<span class="wb-chip" title="{html.escape(f"token {token_id}: {text!r} {word}", quote=True)}" '
            f'style="display:inline-block;margin:2px;padding:2px 5px;border-radius:4px;border:1px solid #555;{faded}'
            f'background:{colour};color:{TEXT_ON.get(colour, "#000000")};text-align:center;font-family:monospace;'
            f'vertical-align:top"><div style="white-space:pre;font-size:13px">{html.escape(readable(text))}</div>'
            f'<div style="font-size:10px;opacity:0.85">{token_id}</div>{label}</span>')


def cache_table(step: SpeculativeStep) -> str:
    """Rows in each KV cache right after the verify pass, after the rollback, and how many were dropped."""
    rows = [("target", step.target_rows_before, step.target_rows_after)]
    if step.draft_rows_before is not None:
        rows.append(("draft", step.draft_rows_before, step.draft_rows_after))
    body = "".join(f"<tr><td>{name}</td><td>{before}</td><td>{after}</td><td>{before - after}</td></tr>"
                   for name, before, after in rows)
    return ('<table class="wb-spec-caches" style="margin-top:4px;border-collapse:collapse" border="1" cellpadding="3">'
            "<tr><th>KV cache</th><th>rows after verify</th><th>rows after rollback</th><th>rolled back</th></tr>"
            f"{body}</table>")
