"""Lesson 9's measurements that are not a view: verification cost under load, quantised K/V against float,
and seed 003's worked example (70B -> 7B -> INT4 -> batching) recomputed from its own figures."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..engine import Engine
from ..kv_quant import KV_BITS
from ..page_pool import PagePool
from ..prefix_cache import PrefixCache
from ..timing import forward_ms
from ..tokenizer import shared_prefix_length


def verify_cost(model, batch: int, k: int, *, context: int = 128, repeats: int = 7) -> float:
    """One pass over k+1 new tokens for each of `batch` sequences, in one-token passes of the same batch.

    Speculative decoding's check of k guesses is this pass; at batch 1 on a small model it costs about
    one token's pass, because the pass is bound by reading weights and launching kernels. As the batch
    grows the pass does more arithmetic per weight read, and the k+1 tokens start to cost their share.
    """
    prompt = [i % model.config.vocab_size for i in range(1, context + 1)]  # any ids will do; only the time counts
    return forward_ms(model, prompt, k + 1, repeats, batch) / forward_ms(model, prompt, 1, repeats, batch)


@dataclass(frozen=True)
class QuantRow:
    kind: str
    bits: int
    bytes_per_page: int
    max_abs_logit_change: float  # first token's logits, against float32 rows
    kl: float  # KL(float32 || quantised) of the first token's distribution, in nats
    agreement: float  # share of greedy tokens equal to float32's, up to the first difference, over every prompt


def quantisation_rows(model, tokenizer, prompts: list[list[int]], new_tokens: int = 64) -> list[QuantRow]:
    """Each K/V format against float32 rows on the same prompts: bytes, logit drift and greedy agreement."""
    reference = [Engine(model, tokenizer).generate(p, max_new_tokens=new_tokens, stop_at_eos=False) for p in prompts]
    rows = []
    for kind in KV_BITS:
        engine = Engine(model, tokenizer, PrefixCache(PagePool.for_tokens(4096, 16, kind)))
        runs = [engine.generate(p, max_new_tokens=new_tokens, stop_at_eos=False) for p in prompts]
        engine.prefix_cache.clear()
        drift = max((r.first_token_logits - f.first_token_logits).abs().max().item() for r, f in zip(runs, reference))
        kl = max(torch.nn.functional.kl_div(r.first_token_logits.log_softmax(-1), f.first_token_logits.log_softmax(-1),
                                            log_target=True, reduction="sum").item() for r, f in zip(runs, reference))
        same = sum(shared_prefix_length(r.output_ids, f.output_ids) for r, f in zip(runs, reference))
        rows.append(QuantRow(kind, KV_BITS[kind], engine.prefix_cache.pool.bytes_per_page(), drift, kl,
                             same / (new_tokens * len(prompts))))
    return rows


# Seed 003's example, as the article gives it: (step, cost per request in dollars, requests per second).
SEED_003_STEPS = [("70B, served naively", 0.03, 10), ("distilled to 7B", 0.005, 40),
                  ("7B in INT4", 0.002, 80), ("plus batching, paging, CUDA graphs", None, 200)]


@dataclass(frozen=True)
class SeedStep:
    step: str
    cost_per_request: float | None  # as the article states it
    requests_per_s: float
    implied_dollars_per_s: float | None  # cost x throughput: what the hardware must cost per second
    cost_if_same_hardware: float  # the first step's dollars per second spread over this throughput


def seed_003_recomputed() -> list[SeedStep]:
    """On the same hardware, cost per request is the hardware's cost per second over requests per second."""
    per_second = SEED_003_STEPS[0][1] * SEED_003_STEPS[0][2]
    return [SeedStep(step, cost, rps, None if cost is None else cost * rps, per_second / rps)
            for step, cost, rps in SEED_003_STEPS]
