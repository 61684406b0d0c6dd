"""What one click costs: each lesson widget's Python-side response time on the shipped models.

A widget's handler runs in the kernel; the browser adds its own round trip on top. The
lessons aim for about 0.2 s per click on a laptop CPU with the embedded models.
"""

from __future__ import annotations

from typing import Callable

import torch
from tqdm.auto import tqdm

from ..checkpoints import default_draft_model, default_model
from ..model import load_model
from ..timing import Stopwatch, Timing, device_name, save_results
from ..tokenizer import load_tokenizer
from .speculative import DOC_PAGE  # the documentation page lesson 6 continues

GOAL_S = 0.2
SYSTEM = "You are a friendly support assistant for Lumen Books."
STORY = "May the force be with you. Write a short story:"


def add_arguments(parser) -> None:
    parser.add_argument("--model", default=None, help="target model (default: $WORKBOOK_MODEL or tiny)")
    parser.add_argument("--draft", default=None, help="draft model (default: $WORKBOOK_DRAFT_MODEL or tiny-draft)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="one repeat: a smoke test, not a measurement")
    parser.add_argument("--no-save", dest="save", action="store_false", help="print only; do not write data/benchmarks/")


def toggle(widget, a, b) -> Callable[[], None]:
    """An action that flips a widget's value between a and b: each call is one user change."""
    return lambda: setattr(widget, "value", b if widget.value == a else a)


def interactions(model, draft, tokenizer) -> list[tuple[str, Callable[[], None], Callable[[], None] | None]]:
    """(what the learner does, the action, what runs untimed before it) for every lesson widget."""
    from ..lessons.calculator import Traffic
    from ..widgets import (AttentionGrid, CostCalculatorView, DecodeStepper, DivergenceView, KVRowsTable,
                           PrefixCacheDemo, PromptLabView, RadixTreeView, SpeculativeView)

    divergence = DivergenceView(tokenizer, SYSTEM + " Where is my order?", SYSTEM + " Can I get a refund?")
    rows = KVRowsTable(tokenizer, num_layers=model.config.num_layers)
    ids = tokenizer.encode(SYSTEM)
    rows.show(ids, ["computed"] * len(ids))
    grid = AttentionGrid(model, tokenizer, prompt="The cache keeps each row once it is computed.")
    stepper = DecodeStepper(model, tokenizer, prompt=STORY)
    demo = PrefixCacheDemo(model, tokenizer)
    tree = RadixTreeView(model, tokenizer)
    lab = PromptLabView(model, tokenizer)
    breaker = next(iter(lab.checkboxes.values()))
    spec = SpeculativeView(model, draft, tokenizer, DOC_PAGE, k=4, max_new_tokens=24)
    # A busy day at OpenAI, the slowest provider to replay per token: each change replays a full budget of requests.
    calculator = CostCalculatorView(Traffic(model_key="openai/gpt-5.4", lifetime="in_memory", static_tokens=1_100,
                                            requests_per_day=100_000, arrivals="poisson"))
    explorer, costs = semantic_views(tokenizer)
    return [
        ("lesson 1: edit prompt B of the divergence view", toggle(divergence.box_b, SYSTEM + " Refund?", SYSTEM + " Refund!"), None),
        ("lesson 2: change the attention grid's layer", toggle(grid.layer, 0, model.config.num_layers - 1), None),
        ("lesson 2: append a token to the attention grid", grid.append_button.click, grid.show_button.click),
        ("lesson 3: one decode step", stepper.step_button.click, stepper.reset_button.click),
        ("lesson 3: expand the KV-rows table", toggle(rows.expand, True, False), None),
        ("lesson 4: send request 1 (cold)", demo.button_1.click, None),
        ("lesson 4: send request 2 (hit)", demo.button_2.click, demo.button_1.click),
        ("lesson 4: break the prefix", demo.break_button.click, lambda: (demo.button_1.click(), demo.button_2.click())),
        ("lesson 4: send a batch to the radix tree", tree.send_button.click, None),
        ("lesson 5: switch a cache breaker", toggle(breaker, True, False), None),
        ("lesson 5: move the temperature slider", toggle(lab.temperature_slider, 0.2, 0.7), None),
        ("lesson 6: next speculative step", spec.next_button.click, spec.previous_button.click),
        ("lesson 6: move the k slider (runs again)", toggle(spec.k_slider, 3, 5), None),
        ("lesson 7: move the cost calculator's static tokens", toggle(calculator.static_slider, 1_100, 1_200), None),
        ("lesson 8: move the threshold slider", toggle(explorer.slider, 0.6, 0.8), None),
        ("lesson 8: switch the explorer to held-out pairs", toggle(explorer.split_picker, "tune", "heldout"), None),
        ("lesson 8: move the price of a wrong answer", toggle(costs.slider, 0.01, 1.0), None),
    ]


def semantic_views(tokenizer):
    """Lesson 8's threshold explorer (both caches, both splits) and wrong-answer view, as the lesson builds them."""
    from ..lessons.scenarios import DEFAULT_SYSTEM_PROMPT
    from ..pricing import load_price_sheets
    from ..semantic import PairScores, disagreement, load_embedder, load_pairs, outcomes
    from ..widgets import ThresholdView, WrongAnswerCostView

    embedder = load_embedder()
    splits = {split: load_pairs(split) for split in ("tune", "heldout")}
    explorer = ThresholdView({name: {split: PairScores(pairs, embedder, verify) for split, pairs in splits.items()}
                              for name, verify in (("plain threshold", None), ("verification stage", disagreement))})
    def count(text: str) -> int:
        return len(tokenizer.encode(text))

    day = outcomes(embedder, [0.6, 0.7, 0.8, 0.9], load_price_sheets()["anthropic/claude-sonnet-4-5"], count,
                   count(DEFAULT_SYSTEM_PROMPT))
    return explorer, WrongAnswerCostView(day)


def time_action(action, before, repeats: int, device) -> Timing:
    """Median of `repeats` timed actions, after one untimed warm-up; `before` runs untimed each time."""
    samples = []
    for i in range(repeats + 1):
        if before is not None:
            before()
        with Stopwatch(device) as clock:
            action()
        if i:
            samples.append(clock.elapsed_s)
    return Timing.from_samples(samples, device_name=device_name(device), warmup=1)


def run(*, model: str | None = None, draft: str | None = None, repeats: int = 5, threads: int | None = None,
        quick: bool = False, save: bool = True) -> dict:
    """Time one click in every lesson widget, print it and (unless `quick` or not `save`) save it."""
    if threads:
        torch.set_num_threads(threads)
    name, draft_name = model or default_model(), draft or default_draft_model()
    target, drafter, tokenizer = load_model(name), load_model(draft_name), load_tokenizer(name)
    repeats = 1 if quick else repeats
    rows = [{"interaction": what, **time_action(action, before, repeats, target.device).to_dict()}
            for what, action, before in tqdm(interactions(target, drafter, tokenizer), desc="widgets")]
    device = device_name(target.device)
    print(f"One click, Python side ({name} and {draft_name} on {device}); median of {repeats}")
    for r in rows:
        flag = "" if r["median_s"] <= GOAL_S else f"  over {GOAL_S:.1f} s"
        print(f"  {r['interaction']:48s} {r['median_s'] * 1e3:8.1f} ms{flag}")
    payload = {"model": name, "draft": draft_name, "device": device, "goal_s": GOAL_S, "clicks": rows}
    if save and not quick:
        print(f"saved to {save_results('widgets', payload, device=target.device)}")
    return payload
