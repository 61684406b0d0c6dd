"""Self-speculation, measured: a model's first layers (then its own final norm and output layer) as its own draft.

The real model's vocabulary is not the shipped draft's, so no small model can draft for it. A draft that needs
no second model is the target cut short: it shares every weight, so it always shares the vocabulary. Whether
its guesses pass depends on how close the early layers' prediction is to the last layer's; models trained for
early exit (LayerSkip) make it close, and this measures what an untrained model gives.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch
from torch import nn

from ..model import Transformer, load_model
from ..speculative import speculative_generate, target_generate
from ..timing import device_name, save_results
from ..tokenizer import load_tokenizer

QUESTIONS = ["Name three primary colours.", "What do bees make?", "Explain what a cache is in one sentence."]


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model name, folder or .gguf path")
    parser.add_argument("--layers", type=int, nargs="+", default=[6, 12, 18], help="how many first layers draft")
    parser.add_argument("--k", type=int, default=3, help="guesses per step")
    parser.add_argument("--new-tokens", type=int, default=32, help="greedy tokens generated per prompt")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--quick", action="store_true", help="one prompt, eight tokens: a smoke test, not a measurement")
    parser.add_argument("--no-save", dest="save", action="store_false", help="print only; do not write data/benchmarks/")


def early_exit_draft(target: Transformer, layers: int) -> Transformer:
    """A draft made of `target`'s embedding, first `layers` layers, final norm and output layer (weights shared)."""
    draft = Transformer(replace(target.config, num_layers=0), target.hf_config)
    draft.config = replace(target.config, num_layers=layers)
    draft.model.embed_tokens, draft.model.norm, draft.lm_head = target.model.embed_tokens, target.model.norm, target.lm_head
    draft.model.layers = nn.ModuleList(target.model.layers[:layers])
    draft.name, draft.folder = f"{target.name}, first {layers} layers", target.folder
    draft.vocabulary_fingerprint = target.vocabulary_fingerprint
    return draft.to(target.device).eval()


def run(*, model: str = "smollm2-135m-instruct", layers=(6, 12, 18), k: int = 3, new_tokens: int = 32,
        threads: int | None = None, quick: bool = False, save: bool = True) -> dict:
    """Measure, print and (unless `quick` or not `save`) save acceptance and speed; the options are the command's."""
    if threads:
        torch.set_num_threads(threads)
    questions = QUESTIONS[:1] if quick else QUESTIONS
    new_tokens = 8 if quick else new_tokens
    target, tokenizer = load_model(model, device="cpu"), load_tokenizer(model)
    prompts = [tokenizer.encode_chat([{"role": "user", "content": q}]) for q in questions]
    target_generate(target, prompts[0], 2)  # warm-up, untimed
    alone_s, alone = timed(lambda p: target_generate(target, p, new_tokens), prompts)
    rows = []
    for n in layers:
        draft = early_exit_draft(target, n)
        seconds, runs = timed(lambda p: speculative_generate(target, draft, p, k=k, max_new_tokens=new_tokens), prompts)
        assert all(r.output_ids == a.output_ids for r, a in zip(runs, alone)), \
            "speculative greedy output must equal the target's"
        rows.append({"draft_layers": n, "of_layers": target.config.num_layers,
                     "acceptance": sum(r.speculation.acceptance_rate for r in runs) / len(runs),
                     "tokens_per_target_pass": sum(r.speculation.tokens_per_target_pass for r in runs) / len(runs),
                     "speedup": alone_s / seconds})
    payload = {"model": model, "device": device_name("cpu"), "threads": torch.get_num_threads(), "k": k,
               "prompts": len(prompts), "new_tokens": new_tokens, "target_only_s": alone_s, "drafts": rows}
    print(f"{model} on {payload['device']}: the first layers as the draft, k = {k}, {len(prompts)} prompts x "
          f"{new_tokens} greedy tokens (target only {alone_s:.2f} s; same tokens every time)")
    for row in rows:
        print(f"  first {row['draft_layers']:2} of {row['of_layers']} layers: {row['acceptance']:5.1%} of guesses accepted, "
              f"{row['tokens_per_target_pass']:.2f} tokens per target pass, {row['speedup']:.2f}x the speed of target only")
    if save and not quick:
        print("saved to", save_results("self_draft", payload, device="cpu"))
    return payload


def timed(generate, prompts: list[list[int]]) -> tuple[float, list]:
    """Seconds for `generate` over every prompt, one run each, and the results."""
    start = time.perf_counter()
    results = [generate(p) for p in prompts]
    return time.perf_counter() - start, results
