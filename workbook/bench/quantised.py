"""Quantised weights, measured: the GGUF's Q4_1 weights (dequantised to float32) against the same model in
bfloat16 and with an int8 K/V cache, on the same chat prompts.

The reference is the file's weights dequantised to float32 with float32 K/V rows. Each variant is compared
with it on greedy agreement (the share of generated tokens equal to the reference's, up to the first
difference) and on the KL divergence of the first token's distribution; and each says what it saves in
bytes: the weights on disk or in memory, the K/V rows per token.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..engine import Engine
from ..gguf_loader import gguf_file, read_gguf
from ..model import load_model
from ..page_pool import PagePool
from ..prefix_cache import PrefixCache
from ..timing import device_name, save_results
from ..tokenizer import load_tokenizer, shared_prefix_length

QUESTIONS = ["What is the capital of France?", "Give me three tips for writing clear emails.",
             "Explain what a cache is to a ten-year-old.", "Write a Python function that reverses a string.",
             "Why is the sky blue? Answer in two sentences.", "List the planets of the solar system in order.",
             "How do I reset my password if I forgot it?", "Translate 'good morning' into Spanish and French."]
PAGE_SIZE = 16


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="smollm2-135m-instruct", help="a GGUF model: short name or .gguf path")
    parser.add_argument("--prompts", type=int, default=len(QUESTIONS), help=f"how many chat prompts (at most {len(QUESTIONS)})")
    parser.add_argument("--new-tokens", type=int, default=48, help="greedy tokens generated per prompt")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--quick", action="store_true", help="two prompts, eight tokens: a smoke test, not a measurement")
    parser.add_argument("--no-save", dest="save", action="store_false", help="print only; do not write data/benchmarks/")


def run(*, model: str = "smollm2-135m-instruct", prompts: int = len(QUESTIONS), new_tokens: int = 48,
        threads: int | None = None, quick: bool = False, save: bool = True) -> dict:
    """Measure, print and (unless `quick` or not `save`) save the comparison; the options are the command's."""
    if threads:
        torch.set_num_threads(threads)
    if quick:
        prompts, new_tokens = 2, 8
    tokenizer, reference = load_tokenizer(model), load_model(model, device="cpu")
    chats = [tokenizer.encode_chat([{"role": "user", "content": q}]) for q in QUESTIONS[:prompts]]
    variants = {"float32 weights, float32 K/V (reference)": (reference, None),
                "bfloat16 weights and K/V": (load_model(model, device="cpu", dtype=torch.bfloat16), None),
                "float32 weights, int8 K/V": (reference, "int8")}
    runs = {label: [generate(lm, tokenizer, kv, chat, new_tokens) for chat in chats]
            for label, (lm, kv) in tqdm(variants.items(), desc="variants")}
    base = runs["float32 weights, float32 K/V (reference)"]
    rows = [compare(label, runs[label], base, new_tokens, lm, kv) for label, (lm, kv) in variants.items()]
    payload = {"model": model, "device": device_name("cpu"), "threads": torch.get_num_threads(), "prompts": len(chats),
               "new_tokens": new_tokens, "weights": weight_bytes(model, reference), "variants": rows,
               "example": {"question": QUESTIONS[0], **{label: answer(tokenizer, r[0].output_ids) for label, r in runs.items()}}}
    print_report(payload)
    if save and not quick:
        print("saved to", save_results("quantised_weights", payload, device="cpu"))
    return payload


def generate(model, tokenizer, kv_dtype: str | None, prompt: list[int], new_tokens: int):
    """Greedy generation on the engine, its K/V pool in the model's dtype or quantised to `kv_dtype`."""
    engine = Engine(model, tokenizer, PrefixCache(PagePool.for_tokens(len(prompt) + new_tokens + PAGE_SIZE, PAGE_SIZE, kv_dtype)))
    return engine.generate(prompt, max_new_tokens=new_tokens, stop_at_eos=False)


def answer(tokenizer, ids: list[int]) -> str:
    """The reply up to its end-of-turn token (generation ran on past it, so every variant made as many tokens)."""
    end = tokenizer.eos_token_id
    return tokenizer.decode(ids[:ids.index(end)] if end in ids else ids)


def compare(label: str, runs, base, new_tokens: int, model, kv_dtype: str | None) -> dict:
    """Agreement and first-token KL against the reference, and the K/V bytes one token takes in this variant."""
    kl = [torch.nn.functional.kl_div(r.first_token_logits.float().log_softmax(-1),
                                     b.first_token_logits.float().log_softmax(-1), log_target=True, reduction="sum").item()
          for r, b in zip(runs, base)]
    same = sum(shared_prefix_length(r.output_ids, b.output_ids) for r, b in zip(runs, base))
    pool = PagePool(PAGE_SIZE, 1, kv_dtype)
    pool.bind(model)  # a page's size follows the model's shape and dtype
    return {"variant": label, "greedy_agreement": same / (new_tokens * len(runs)), "first_token_kl_mean": sum(kl) / len(kl),
            "first_token_kl_max": max(kl), "kv_bytes_per_token": pool.bytes_per_page() / PAGE_SIZE}


def weight_bytes(model: str, loaded) -> dict:
    """The weights' bytes as the file stores them (quantised), and dequantised in float32 and in bfloat16."""
    tensors = read_gguf(gguf_file(model)).tensors
    kinds = sorted({t.tensor_type.name for t in tensors})
    parameters = loaded.num_parameters()
    return {"parameters": parameters, "file_types": kinds, "in_file": int(sum(int(t.n_bytes) for t in tensors)),
            "float32": parameters * 4, "bfloat16": parameters * 2}


def print_report(payload: dict) -> None:
    w = payload["weights"]
    print(f"{payload['model']} on {payload['device']} ({payload['threads']} threads), {payload['prompts']} chat prompts, "
          f"{payload['new_tokens']} greedy tokens each")
    print(f"weights: {w['parameters']:,} parameters; in the file ({'/'.join(w['file_types'])}) {w['in_file'] / 2**20:.1f} MiB, "
          f"float32 {w['float32'] / 2**20:.1f} MiB, bfloat16 {w['bfloat16'] / 2**20:.1f} MiB")
    print(f"{'variant':<42} {'greedy agreement':>16} {'KL mean (nats)':>15} {'KL max':>9} {'K/V bytes/token':>16}")
    for row in payload["variants"]:
        print(f"{row['variant']:<42} {row['greedy_agreement']:>16.1%} {row['first_token_kl_mean']:>15.2e} "
              f"{row['first_token_kl_max']:>9.2e} {row['kv_bytes_per_token']:>16,.0f}")
    for label, text in payload["example"].items():
        if label != "question":
            print(f"  {label}: {text[:100]!r}")
