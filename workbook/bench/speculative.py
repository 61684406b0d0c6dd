"""Speculative decoding, measured: tokens/s against target-only decoding, beside the theory and `transformers`.

One run on one machine measures, greedy and on lesson-style prompts:
- target-only decoding, and speculative decoding with the draft model for each k;
- the per-token acceptance α and the cost ratio c (one draft forward / one target forward),
  and the speedup they predict, (1 − α^(k+1)) / ((1 − α)(k·c + 1)), beside the measured one;
- the same pair through `transformers`' assisted generation (its defaults, and a fixed k);
- prompt-lookup drafting on an input-grounded task: the answer should quote a documentation page in the prompt.

    python -m workbook.bench speculative [--max-new-tokens 64] [--repeats 5] [--quick]

Each timed repeat runs every method once over all prompts, in a shuffled order, so drift in a
shared machine's load lands on all of them alike; the tables show medians over repeats.
"""

from __future__ import annotations

import inspect
import json
import random
import statistics
from dataclasses import dataclass, field
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..checkpoints import default_draft_model, default_model, resolve_checkpoint
from ..model import Transformer, load_model
from ..speculative import (PromptLookupDrafter, SpeculativeTrace, expected_tokens_per_pass, predicted_speedup,
                           speculative_generate, target_generate)
from ..shapes import RANDOM_WEIGHTS_NOTE, random_model, shape_names
from ..timing import Stopwatch, device_name, forward_ms, save_results
from ..tokenizer import load_tokenizer

SUPPORT_SYSTEM = """You are the customer support assistant of Lumen Books. You help customers with orders, returns and product questions.

# Policies
- If you cannot help, offer to hand the conversation to a human agent.
- Returns are accepted within 30 days of delivery. Items must be unused.
- Never share another customer's order details.
- Always look up an order with lookup_order before answering questions about it."""

TUTOR_SYSTEM = """You are a patient programming tutor. You explain Python clearly to beginners.

# Policies
- If you are not sure what a function does, call search_docs before answering.
- Put code in fenced code blocks marked `python`.
- Keep answers short: one idea, one example."""

DOCS_SYSTEM = """You are CodeHelper, an assistant that helps programmers write and understand Python code.

# Policies
- Use Python 3.10 or newer in examples.
- If you are not sure what a function does, call search_docs before answering.

# Tools
To call a tool, reply with only a JSON object: {"tool": <name>, "arguments": <object>}. The result comes back in a tool message."""


DOC_PAGE = "Module json\n\nJSON (JavaScript Object Notation) is a lightweight data interchange format. The json module"


def lesson_prompts(tokenizer) -> list[list[int]]:
    """Short chats like the lessons': a support question, a tutoring question, a documentation page to continue."""
    chats = [
        [{"role": "system", "content": SUPPORT_SYSTEM}, {"role": "user", "content": "Where is my order A12345? It has not arrived yet."}],
        [{"role": "system", "content": TUTOR_SYSTEM}, {"role": "user", "content": "How do I read a text file line by line?"}],
    ]
    return [tokenizer.encode_chat(chat) for chat in chats] + [tokenizer.encode(DOC_PAGE)]


def quoting_prompt(tokenizer, sentences: int = 2) -> list[int]:
    """An input-grounded task: a documentation search returns a page, and the answer should quote it.

    The page is the start of `json.dumps`' real docstring, cut so the whole chat stays near the
    256-token window the shipped models were trained on.
    """
    name = "json.dumps"
    page = " ".join(inspect.getdoc(json.dumps).split())
    summary = ". ".join(page.split(". ")[:sentences]).rstrip(".") + "."
    return tokenizer.encode_chat([
        {"role": "system", "content": DOCS_SYSTEM},
        {"role": "user", "content": f"What does {name} do?"},
        {"role": "assistant", "content": json.dumps({"tool": "search_docs", "arguments": {"query": name}})},
        {"role": "tool", "content": json.dumps({"title": f"{name}(obj, **kw)", "summary": summary})},
    ])


NOTE = """\
acceptance_rate = accepted / proposed drafts. alpha = accepted / judged drafts (drafts after a rejection are
never judged): the per-token acceptance that predicted_speedup = (1 - alpha^(k+1)) / ((1 - alpha)(k c + 1))
assumes, with c = draft forward / target forward for one token. That formula also assumes independent
acceptances and a verify pass as cheap as a one-token pass; speedup_from_pass_costs = tokens_per_pass /
(n c + target pass over n+1 tokens / one-token pass, summed over the steps that ran with n drafts each) drops
both assumptions, using what was measured; the passes are timed alone, between the runs.
c_in_loop = draft time per forward during decoding / target-only time per token: above c when the
two models compete for the CPU caches. Rows without a fixed k (adaptive, confidence stop) have no formula prediction."""


def add_arguments(parser) -> None:
    parser.add_argument("--model", default=None, help="target model (default: $WORKBOOK_MODEL or tiny)")
    parser.add_argument("--draft", default=None, help="draft model (default: $WORKBOOK_DRAFT_MODEL or tiny-draft)")
    parser.add_argument("--shape", choices=shape_names(), default=None,
                        help="only the cost of verifying k+1 tokens, on a real model's shape with random weights")
    parser.add_argument("--ks", type=int, nargs="+", default=list(range(1, 9)), help="draft lengths to try")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice; 1 suits tiny models on a busy CPU)")
    parser.add_argument("--no-transformers", action="store_true", help="skip the transformers comparison")
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke test, not a measurement")
    parser.add_argument("--no-save", dest="save", action="store_false", help="print only; do not write data/benchmarks/")


# ----- the methods being timed -----------------------------------------------------------------------

VARIABLE_K_MAX = 16  # the ceiling for adaptive k and for drafts cut short by the draft's confidence


@dataclass
class Method:
    """One way of generating, for one row of a table."""

    name: str
    k: int | None  # drafts per step when fixed (None: no drafting, or a k that varies)
    run: Callable[[list[int]], object]  # prompt -> a workbook result, or the new tokens as a list
    drafter: str | None = None  # "model" or "lookup" for our speculative methods: a lookup costs no forward (c = 0)
    results: list[SpeculativeTrace] = field(default_factory=list)  # statistics of the latest repeat

    def generate(self, prompt: list[int]) -> list[int]:
        out = self.run(prompt)
        if isinstance(out, list):
            return out
        if out.speculation is not None:
            self.results.append(out.speculation)
        return out.output_ids


def workbook_methods(target, draft, ks, max_new: int) -> list[Method]:
    """Target-only, a fixed k for each k, then two ways of letting k vary: adaptive k and a draft-confidence stop."""

    def spec(p, **settings):
        return speculative_generate(target, draft, p, max_new_tokens=max_new, **settings)

    k_max = max(VARIABLE_K_MAX, *ks)
    return [Method("target only", None, lambda p: target_generate(target, p, max_new))] + [
        Method(f"speculative k={k}", k, lambda p, k=k: spec(p, k=k), "model") for k in ks] + [
        Method(f"speculative adaptive k (4..{k_max})", None, lambda p: spec(p, k=4, k_max=k_max, adaptive_k=True), "model")] + [
        Method(f"speculative k<={k_max}, stop below {conf}", None,
               lambda p, conf=conf: spec(p, k=k_max, min_draft_confidence=conf), "model") for conf in (0.3, 0.5)]


def lookup_methods(target, draft, max_new: int) -> list[Method]:
    """Prompt lookup (no draft model, so c = 0) beside the draft model, on the input-grounded task."""
    return [Method("target only", None, lambda p: target_generate(target, p, max_new))] + [
        Method(f"speculative prompt lookup k={k}", k, lambda p, k=k: speculative_generate(
            target, PromptLookupDrafter(max_ngram=3), p, k=k, max_new_tokens=max_new), "lookup") for k in (2, 4, 8)] + [
        Method("speculative draft model k=4", 4,
               lambda p: speculative_generate(target, draft, p, k=4, max_new_tokens=max_new), "model")]


def transformers_generate(hf_target, prompt: list[int], max_new: int, **settings) -> list[int]:
    """Greedy `generate` of a transformers model; `settings` pick assisted generation or prompt lookup."""
    ids = torch.tensor([prompt], device=hf_target.device)
    out = hf_target.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new, **settings)
    return out[0, len(prompt):].tolist()


def transformers_methods(hf_target, hf_draft, ks, max_new: int) -> list[Method]:
    """transformers' generate: alone, with the draft as assistant (its defaults, then each k held fixed)."""
    config = hf_draft.generation_config  # assisted generation reads its settings from the assistant's config
    keys = ("num_assistant_tokens", "num_assistant_tokens_schedule", "assistant_confidence_threshold")
    defaults = tuple(getattr(config, key) for key in keys)  # None: transformers' defaults (20 drafts, confidence 0.4)

    def assisted(prompt, settings):
        for key, value in zip(keys, settings):
            setattr(config, key, value)
        return transformers_generate(hf_target, prompt, max_new, assistant_model=hf_draft)

    # A fixed k is like ours: k drafts every step, no confidence cut-off.
    return [Method("transformers only", None, lambda p: transformers_generate(hf_target, p, max_new)),
            Method("transformers assisted (defaults)", None, lambda p: assisted(p, defaults))] + [
        Method(f"transformers assisted k={k}", k, lambda p, k=k: assisted(p, (k, "constant", 0.0))) for k in ks]


def transformers_lookup(hf_target, max_new: int) -> Method:
    return Method("transformers prompt lookup k=4", 4, lambda p: transformers_generate(
        hf_target, p, max_new, prompt_lookup_num_tokens=4, max_matching_ngram_size=3))


def load_transformers(name: str, device):
    from transformers import AutoModelForCausalLM, logging

    logging.set_verbosity_error()  # generate() warns about unset pad tokens on every call
    model = AutoModelForCausalLM.from_pretrained(resolve_checkpoint(name), dtype=torch.float32).to(device).eval()
    model.generation_config.eos_token_id = None  # every method makes exactly max_new_tokens tokens
    model.generation_config.pad_token_id = 0
    return model


# ----- timing ---------------------------------------------------------------------------------------

def time_methods(methods: list[Method], prompts: list[list[int]], repeats: int, warmup: int, device, desc: str,
                 probe: Callable[[], None] | None = None) -> tuple[dict[str, list[float]], dict[str, list[list[int]]]]:
    """Seconds each method takes for all prompts, per repeat, and the tokens of its last repeat.

    `probe` (if given) runs once in every timed repeat, at a shuffled place among the methods.
    """
    seconds = {m.name: [] for m in methods}
    outputs = {}
    order = random.Random(0)
    with tqdm(total=(repeats + warmup) * len(methods) * len(prompts), desc=desc) as bar:
        for repeat in range(warmup + repeats):
            tasks = methods + ([probe] if probe and repeat >= warmup else [])
            for method in order.sample(tasks, len(tasks)):
                if method is probe:
                    probe()
                    continue
                method.results.clear()
                total, tokens = 0.0, []
                for prompt in prompts:
                    with Stopwatch(device) as clock:
                        tokens.append(method.generate(prompt))
                    total += clock.elapsed_s
                    bar.update()
                if repeat >= warmup:
                    seconds[method.name].append(total)
                outputs[method.name] = tokens
    return seconds, outputs


@dataclass
class PassCosts:
    """Timed forward passes: the target over n tokens (n = 1 is plain decoding), the draft over one token.

    `probe` is called once per timed repeat, between the generation runs, so the costs are
    measured under the same (shared, drifting) machine load as the runs they explain.
    """

    target: Transformer
    draft: Transformer
    prompt: list[int]
    target_samples: dict[int, list[float]]
    draft_samples: list[float] = field(default_factory=list)

    def probe(self, repeats: int = 20) -> None:
        for n, samples in self.target_samples.items():
            samples.append(forward_ms(self.target, self.prompt, n, repeats))
        self.draft_samples.append(forward_ms(self.draft, self.prompt, 1, repeats))

    @property
    def target_ms(self) -> dict[int, float]:
        return {n: statistics.median(samples) for n, samples in self.target_samples.items()}

    @property
    def draft_ms(self) -> float:
        return statistics.median(self.draft_samples)

    @property
    def c(self) -> float:
        """The cost ratio of the speedup formula: one draft forward / one target forward."""
        return self.draft_ms / self.target_ms[1]

    def verify_ratio(self, k: int) -> float:
        """What verifying k drafts (a pass over k+1 tokens) costs, in one-token target passes; the formula takes 1."""
        return self.target_ms[k + 1] / self.target_ms[1]


# ----- rows of the table ----------------------------------------------------------------------------

def summarise(methods: list[Method], seconds: dict, outputs: dict, baseline: str, costs: PassCosts) -> list[dict]:
    """One row per method: tokens/s, speedup over `baseline`, and for ours α, tokens per pass, predictions."""
    tokens = {name: sum(len(t) for t in out) for name, out in outputs.items()}
    base_s_per_token = statistics.median(seconds[baseline]) / tokens[baseline]
    rows = []
    for m in methods:
        median = statistics.median(seconds[m.name])
        row = {"method": m.name, "k": m.k, "tokens": tokens[m.name], "median_s": median,
               "samples_s": seconds[m.name], "tokens_per_s": tokens[m.name] / median,
               "same_tokens_as_target": outputs[m.name] == outputs[baseline]}
        row["speedup"] = row["tokens_per_s"] * base_s_per_token
        if m.results:
            row.update(speculative_stats(m, row["speedup"], costs, base_s_per_token))
        rows.append(row)
    return rows


def speculative_stats(m: Method, speedup: float, costs: PassCosts, base_s_per_token: float) -> dict:
    """α, tokens per pass, the in-loop draft cost, and the speedups predicted by the formula and by pass costs."""
    results = m.results
    steps = [step for r in results for step in r.steps]
    accepted, proposed, judged = (sum(getattr(r, key) for r in results) for key in ("accepted", "proposed", "judged"))
    alpha = accepted / judged if judged else 0.0
    stats = {"acceptance_rate": accepted / proposed if proposed else 0.0, "alpha": alpha,
             "tokens_per_pass": sum(r.tokens for r in results) / len(steps)}
    c = costs.c if m.drafter == "model" else 0.0
    if c and proposed:  # one draft forward inside the loop, next to the target-only decode step
        stats["c_in_loop"] = sum(r.seconds["draft"] for r in results) / proposed / base_s_per_token
    # What these very steps would cost with passes as fast as when timed alone, in target decode steps.
    step_costs = sum(len(s.proposed) * c + costs.verify_ratio(len(s.proposed)) for s in steps)
    from_costs = stats["tokens_per_pass"] * len(steps) / step_costs
    stats.update(speedup_from_pass_costs=from_costs, measured_over_pass_costs=speedup / from_costs)
    if m.k is not None:  # the formula needs a fixed k
        predicted = predicted_speedup(alpha, m.k, c)
        stats.update(expected_tokens_per_pass=expected_tokens_per_pass(alpha, m.k), predicted_speedup=predicted,
                     measured_over_predicted=speedup / predicted)
    return stats


COLUMNS = [  # (key, header, format) of the numbers that only speculative rows have
    ("acceptance_rate", "acc.rate", ".2f"), ("alpha", "α", ".2f"), ("c_in_loop", "c in loop", ".3f"),
    ("tokens_per_pass", "tok/pass", ".2f"),
    ("expected_tokens_per_pass", "expected", ".2f"), ("predicted_speedup", "predicted", ".2f"),
    ("measured_over_predicted", "meas/pred", ".0%"), ("speedup_from_pass_costs", "from costs", ".2f"),
    ("measured_over_pass_costs", "meas/costs", ".0%"),
]


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    header = f"{'method':<34} {'tok/s':>7} {'speedup':>7} " + " ".join(f"{h:>10}" for _, h, _ in COLUMNS)
    print(header)
    print("-" * len(header))
    for r in rows:
        same = "" if r["same_tokens_as_target"] else "  (tokens differ from target only)"
        print(f"{r['method']:<34} {r['tokens_per_s']:>7.1f} {r['speedup']:>6.2f}x "
              + " ".join(cell(r, key, fmt, 10) for key, _, fmt in COLUMNS) + same)


def cell(row: dict, key: str, fmt: str, width: int) -> str:
    """One right-aligned table cell; blank where the method has no such number."""
    return format(row[key], fmt).rjust(width) if row.get(key) is not None else " " * width


def verdict(rows: list[dict]) -> dict:
    """The issue's targets: best speedup >= 1.5x, >= 85% of predicted, not slower than transformers' best assisted run."""
    ours = [r for r in rows if r["method"].startswith("speculative")]
    best = max(ours, key=lambda r: r["tokens_per_s"])
    best_fixed = max((r for r in ours if r["k"] is not None), key=lambda r: r["tokens_per_s"])
    hf = [r for r in rows if r["method"].startswith("transformers assisted")]
    hf_best = max(hf, key=lambda r: r["tokens_per_s"]) if hf else None
    return {
        "best": best["method"], "best_speedup": best["speedup"],
        "best_fixed_k": best_fixed["k"], "best_fixed_k_speedup": best_fixed["speedup"],
        "best_fixed_k_measured_over_predicted": best_fixed["measured_over_predicted"],
        "best_fixed_k_measured_over_pass_costs": best_fixed["measured_over_pass_costs"],
        "transformers_best": hf_best["method"] if hf_best else None,
        "transformers_best_speedup": hf_best["speedup"] if hf_best else None,
        "speedup_at_least_1_5x": best["speedup"] >= 1.5,
        "at_least_85_percent_of_predicted": best_fixed["measured_over_predicted"] >= 0.85,
        "not_slower_than_transformers": hf_best is None or best["tokens_per_s"] >= hf_best["tokens_per_s"],
        "all_greedy_outputs_identical": all(r["same_tokens_as_target"] for r in ours),
    }


# ----- the command ----------------------------------------------------------------------------------

def run(*, model: str | None = None, draft: str | None = None, shape: str | None = None, ks=tuple(range(1, 9)),
        max_new_tokens: int = 64, repeats: int = 5, warmup: int = 1, device: str = "auto", threads: int | None = None,
        no_transformers: bool = False, quick: bool = False, save: bool = True) -> dict:
    """Measure, print and (unless `quick` or not `save`) save the speculative benchmark; the options are the command's."""
    if quick:
        ks, max_new_tokens, repeats, warmup = [1, 4], 8, 1, 1
    if threads:
        torch.set_num_threads(threads)
    if shape:
        return run_shape(shape, ks, device=device, save=save and not quick)
    ks, max_new = list(ks), max_new_tokens
    target_name, draft_name = model or default_model(), draft or default_draft_model()
    target, draft_lm = load_model(target_name, device), load_model(draft_name, device)
    tokenizer, device = load_tokenizer(target_name), target.device
    prompts, quoting = lesson_prompts(tokenizer), [quoting_prompt(tokenizer)]

    costs = PassCosts(target, draft_lm, prompts[0], {n: [] for n in range(1, max(ks + [VARIABLE_K_MAX]) + 2)})

    methods = workbook_methods(target, draft_lm, ks, max_new)
    lookup = lookup_methods(target, draft_lm, max_new)
    if not no_transformers:
        hf_target, hf_draft = load_transformers(target_name, device), load_transformers(draft_name, device)
        methods += transformers_methods(hf_target, hf_draft, ks, max_new)
        lookup.append(transformers_lookup(hf_target, max_new))
    rows = summarise(methods, *time_methods(methods, prompts, repeats, warmup, device, "draft model",
                                            probe=costs.probe), "target only", costs)
    lookup_rows = summarise(lookup, *time_methods(lookup, quoting, repeats, warmup, device, "prompt lookup"),
                            "target only", costs)

    where = device_name(device)
    print(f"\n{target_name} ({target.num_parameters() / 1e6:.1f}M) drafted by {draft_name} "
          f"({draft_lm.num_parameters() / 1e6:.1f}M) on {where}, torch threads {torch.get_num_threads()}; "
          f"{max_new} new tokens, greedy, median of {repeats} repeats after {warmup} warm-up")
    print(f"one-token forward: target {costs.target_ms[1]:.2f} ms, draft {costs.draft_ms:.2f} ms, so c = {costs.c:.3f}; "
          "target pass over k+1 tokens / one token: "
          + ", ".join(f"k={k} {costs.verify_ratio(k):.2f}" for k in ks))
    print_table(f"Lesson prompts ({len(prompts)} prompts)", rows)
    print_table(f"Input-grounded task: the answer quotes a {len(quoting[0])}-token prompt", lookup_rows)
    checks = verdict(rows)
    print("\nTargets: " + "; ".join(f"{k} = {v}" for k, v in checks.items() if isinstance(v, bool)))
    if quick:
        print("(--quick: a smoke test; these numbers mean nothing)")

    payload = {"target": target_name, "draft": draft_name, "device": where, "threads": torch.get_num_threads(),
               "max_new_tokens": max_new, "repeats": repeats, "warmup": warmup,
               "target_pass_ms": costs.target_ms, "draft_forward_ms": costs.draft_ms, "cost_ratio_c": costs.c,
               "draft_model": rows, "prompt_lookup": lookup_rows, "targets": checks,
               "note": NOTE}
    if save and not quick:
        print(f"saved to {save_results('speculative', payload, device=device)}")
    return payload


# ----- a real model's shape: what verification costs at production size ---------------------------

def shape_pass_costs(model: Transformer, ks, *, context: int = 512, repeats: int = 20) -> dict[int, float]:
    """Milliseconds of one target pass over n = 1 and n = k+1 new tokens after a `context`-token prompt."""
    prompt = [i % model.config.vocab_size for i in range(1, context + 1)]  # any ids will do; only the time counts
    return {n: forward_ms(model, prompt, n, repeats) for n in sorted({1, *(k + 1 for k in ks)})}


def run_shape(shape: str, ks, *, device: str, save: bool, context: int = 512, repeats: int = 20) -> dict:
    """Print and save (section speculative_shape_<shape>) the pass costs of a real model's shape, random weights."""
    model = random_model(shape, device)
    ms = shape_pass_costs(model, ks, context=context, repeats=repeats)
    where = device_name(model.device)
    print(f"\n{shape} shape ({model.num_parameters() / 1e6:.0f}M parameters, {model.dtype}) on {where}, torch threads "
          f"{torch.get_num_threads()}; one target pass after a {context}-token context, median of {repeats}")
    print(f"one token: {ms[1]:.2f} ms; over k+1 tokens, in one-token passes: "
          + ", ".join(f"k={k} {ms[k + 1] / ms[1]:.2f}" for k in ks))
    print(RANDOM_WEIGHTS_NOTE)
    payload = {"shape": shape, "parameters": model.num_parameters(), "dtype": str(model.dtype), "device": where,
               "threads": torch.get_num_threads(), "context": context, "repeats": repeats, "pass_ms": ms,
               "verify_ratio": {k: ms[k + 1] / ms[1] for k in ks}, "note": RANDOM_WEIGHTS_NOTE}
    if save:
        print(f"saved to {save_results(f'speculative_shape_{shape}', payload, device=model.device)}")
    return payload
