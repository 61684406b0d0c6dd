"""Prefix caching, measured: time to first token cold vs on a cached prefix, and a replayed multi-user workload.

Beside our engine, the same model runs through `transformers`' own prompt reuse (a prefilled
`DynamicCache`, copied per request and passed to `generate`), so the two hit/cold ratios come
from one run on one machine. With `--shape` the model is a real one's shape with random weights
(`workbook.shapes`): the time to first token at production size, without the comparison or the
workload replay, which need a trained model and its tokenizer.
"""

from __future__ import annotations

import copy
import inspect
import random
import re
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from ..checkpoints import default_model, resolve_checkpoint
from ..engine import Engine
from ..model import load_model
from ..paths import DATA_DIR
from ..page_pool import PagePool
from ..prefix_cache import PrefixCache
from ..shapes import RANDOM_WEIGHTS_NOTE, IdsTokenizer, random_ids, random_model, shape_names
from ..timing import device_name, measure, percentile, save_results
from ..tokenizer import load_tokenizer

CORPUS = DATA_DIR / "corpus" / "heldout.txt"
PAGE_SIZE = 16  # the prefix cache's page in every measurement here


def add_arguments(parser) -> None:
    parser.add_argument("--model", default=None, help="model name or folder (default: $WORKBOOK_MODEL or tiny)")
    parser.add_argument("--shape", choices=shape_names(), default=None,
                        help="time a real model's shape with random weights instead (TTFT only)")
    parser.add_argument("--prefix-lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--suffix", type=int, default=32, help="new tokens after the shared prefix")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--users", type=int, default=24, help="workload replay: conversations")
    parser.add_argument("--turns", type=int, default=3, help="workload replay: user turns per conversation")
    parser.add_argument("--budget", type=int, default=4096, help="workload replay: prefix cache capacity in tokens")
    parser.add_argument("--no-transformers", action="store_true", help="skip the transformers comparison")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not a measurement")
    parser.add_argument("--no-save", dest="save", action="store_false", help="print only; do not write data/benchmarks/")


@dataclass
class PrefixRow:
    prefix_tokens: int
    suffix_tokens: int
    cold_s: float
    hit_s: float
    hf_cold_s: float | None
    hf_hit_s: float | None

    @property
    def speedup(self) -> float:
        return self.cold_s / self.hit_s

    @property
    def hf_speedup(self) -> float | None:
        return self.hf_cold_s / self.hf_hit_s if self.hf_hit_s else None


def run(*, model: str | None = None, shape: str | None = None, prefix_lengths=(256, 512, 1024, 2048, 4096),
        suffix: int = 32, repeats: int = 5, warmup: int = 1, users: int = 24, turns: int = 3, budget: int = 4096,
        no_transformers: bool = False, quick: bool = False, save: bool = True) -> dict:
    """Measure, print and (unless `quick` or not `save`) save the prefix benchmark; the options are the command's."""
    if quick:
        prefix_lengths, repeats, warmup, users, turns = [64, 128], 2, 1, 4, 2
    if shape:
        return run_shape(shape, prefix_lengths, suffix=suffix, repeats=repeats, warmup=warmup, save=save and not quick)
    name = model or default_model()
    lm, tokenizer = load_model(name), load_tokenizer(name)
    hf = None if no_transformers else load_transformers_model(name, lm.device)
    text = CORPUS.read_text(encoding="utf-8")
    ids = corpus_ids(tokenizer, text, max(prefix_lengths) + suffix * (repeats + warmup + 2))
    rows = [measure_prefix(lm, tokenizer, hf, ids, n, suffix=suffix, repeats=repeats, warmup=warmup)
            for n in tqdm(prefix_lengths, desc="prefix lengths")]
    workload = {mode: replay_workload(lm, tokenizer, text, users=users, turns=turns, budget=budget,
                                      cached=mode == "cached") for mode in ("cached", "uncached")}
    print_report(rows, workload, device_name(lm.device))
    payload = {"model": name, "device": device_name(lm.device), "repeats": repeats, "warmup": warmup,
               "ttft": [{**asdict(r), "speedup": r.speedup, "hf_speedup": r.hf_speedup} for r in rows],
               "workload": workload}
    if save and not quick:
        print(f"saved to {save_results('prefix', payload, device=lm.device)}")
    return payload


def run_shape(shape: str, prefix_lengths, *, suffix: int, repeats: int, warmup: int, save: bool) -> dict:
    """TTFT cold and on a hit for a real model's shape with random weights; saved as section prefix_shape_<shape>."""
    lm = random_model(shape)
    rows = shape_prefix_rows(lm, prefix_lengths, suffix=suffix, repeats=repeats, warmup=warmup,
                             desc=f"{shape}: prefix lengths")
    print_report(rows, {}, f"{device_name(lm.device)}, {shape} shape, {lm.dtype}")
    print(RANDOM_WEIGHTS_NOTE)
    payload = {"shape": shape, "parameters": lm.num_parameters(), "dtype": str(lm.dtype), "note": RANDOM_WEIGHTS_NOTE,
               "device": device_name(lm.device), "repeats": repeats, "warmup": warmup,
               "ttft": [{**asdict(r), "speedup": r.speedup} for r in rows]}
    if save:
        print(f"saved to {save_results(f'prefix_shape_{shape}', payload, device=lm.device)}")
    return payload


def shape_prefix_rows(model, prefix_lengths, *, suffix: int, repeats: int, warmup: int,
                      desc: str | None = None) -> list[PrefixRow]:
    """`measure_prefix` at each length on a model with random weights, fed random ids (a bar when `desc` is given)."""
    ids = random_ids(random.Random(0), max(prefix_lengths) + suffix * (repeats + warmup + 2), model.config.vocab_size)
    return [measure_prefix(model, IdsTokenizer(), None, ids, n, suffix=suffix, repeats=repeats, warmup=warmup)
            for n in tqdm(prefix_lengths, desc=desc, disable=desc is None)]


def load_transformers_model(name: str, device: torch.device):
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.set_verbosity_error()  # generate() warns about unset pad tokens on every call
    hf = AutoModelForCausalLM.from_pretrained(resolve_checkpoint(name), dtype=torch.float32).to(device).eval()
    hf.generation_config.pad_token_id = hf.generation_config.eos_token_id
    return hf


def corpus_ids(tokenizer, text: str, n: int) -> list[int]:
    """At least `n` token ids of real lesson-style text, repeated if the file is shorter."""
    ids = tokenizer.encode(text)
    return (ids * (n // len(ids) + 1))[:n]


def measure_prefix(model, tokenizer, hf, ids: list[int], n: int, *, suffix: int = 32, repeats: int = 5,
                   warmup: int = 1) -> PrefixRow:
    """Median time of a one-token request on an n-token prefix plus a fresh `suffix`-token suffix: cold, then cached."""
    prefix = ids[:n]
    suffixes = iter([ids[n + i * suffix: n + (i + 1) * suffix] for i in range(repeats + warmup + 2)])
    cold_engine = Engine(model, tokenizer)
    capacity = n + suffix * (repeats + warmup + 2) + 16
    hit_engine = Engine(model, tokenizer, PrefixCache(PagePool.for_tokens(capacity, PAGE_SIZE)))
    hit_engine.generate(prefix + next(suffixes), max_new_tokens=1)  # the request that writes the prefix
    hit = measure(lambda: hit_engine.generate(prefix + next(suffixes), max_new_tokens=1),
                  warmup=warmup, repeats=repeats, device=model.device)
    cold = measure(lambda: cold_engine.generate(prefix + ids[n:n + suffix], max_new_tokens=1),
                   warmup=warmup, repeats=repeats, device=model.device)
    hf_cold = hf_hit = None
    if hf is not None:
        hf_cold, hf_hit = measure_transformers(hf, prefix, ids[n:n + suffix], repeats=repeats, warmup=warmup)
    return PrefixRow(n, suffix, cold.median_s, hit.median_s, hf_cold, hf_hit)


@torch.no_grad()
def measure_transformers(hf, prefix: list[int], suffix: list[int], *, repeats: int, warmup: int) -> tuple[float, float]:
    """transformers' documented prompt reuse: prefill a DynamicCache once, copy it into each generate()."""
    from transformers import DynamicCache

    device, name = hf.device, cache_argument(hf)
    full = torch.tensor([prefix + suffix], device=device)
    prefilled = DynamicCache(config=hf.config)
    hf(torch.tensor([prefix], device=device), **{name: prefilled})
    settings = dict(max_new_tokens=1, do_sample=False)
    cold = measure(lambda: hf.generate(full, **settings), warmup=warmup, repeats=repeats, device=device)
    hit = measure(lambda: hf.generate(full, **{name: copy.deepcopy(prefilled)}, **settings),
                  warmup=warmup, repeats=repeats, device=device)
    return cold.median_s, hit.median_s


def cache_argument(hf) -> str:
    """The keyword this transformers takes a KV cache by: `cache` since it renamed `past_key_values` (which newer
    releases deprecate), `past_key_values` on the releases Python 3.10 still gets."""
    return "cache" if "cache" in inspect.signature(hf.forward).parameters else "past_key_values"


def conversations(text: str) -> tuple[list[str], list[str]]:
    """System prompts and user questions taken from the held-out corpus's conversations."""
    systems = re.findall(r"<\|system\|>\n(.*?)<\|end\|>", text, flags=re.S)
    questions = re.findall(r"<\|user\|>\n(.*?)<\|end\|>", text, flags=re.S)
    return list(dict.fromkeys(systems)), list(dict.fromkeys(questions))


def replay_workload(model, tokenizer, text: str, *, users: int = 24, turns: int = 3, budget: int = 4096,
                    cached: bool) -> dict:
    """Many users, a few shared system prompts, multi-turn chats, interleaved; with or without a prefix cache."""
    systems, questions = conversations(text)
    rng = random.Random(0)
    chats = [{"system": systems[u % 3], "history": []} for u in range(users)]
    order = [u for u in range(users) for _ in range(turns)]
    rng.shuffle(order)
    cache = PrefixCache(PagePool.for_tokens(budget, PAGE_SIZE)) if cached else None
    engine = Engine(model, tokenizer, cache)
    ttfts, computed, loaded = [], 0, 0
    for u in tqdm(order, desc=f"workload ({'cached' if cached else 'uncached'})", leave=False):
        user = chats[u]
        question = questions[rng.randrange(len(questions))]
        messages = [{"role": "system", "content": user["system"]}, *user["history"], {"role": "user", "content": question}]
        result = engine.generate(tokenizer.apply_chat_template(messages), max_new_tokens=8)
        user["history"] += [{"role": "user", "content": question}, {"role": "assistant", "content": result.text}]
        ttfts.append(result.timings.ttft_s)
        computed += result.usage.input_tokens + result.usage.cache_write_tokens
        loaded += result.usage.cache_read_tokens
    stats = cache.stats() if cache else None
    return {"requests": len(order), "budget_tokens": budget if cached else None,
            "hit_rate": stats.hit_rate if stats else 0.0, "evictions": stats.evictions if stats else 0,
            "tokens_computed": computed, "tokens_loaded": loaded,
            "ttft_p50_s": percentile(ttfts, 50), "ttft_p95_s": percentile(ttfts, 95)}


def print_report(rows: list[PrefixRow], workload: dict, device: str) -> None:
    print(f"\nTime to first token, one-token requests ({device}); medians")
    print(f"{'prefix':>7} {'cold':>10} {'hit':>10} {'cold/hit':>9} {'hf cold':>10} {'hf hit':>10} {'hf c/h':>7}")
    for r in rows:
        hf = (f"{r.hf_cold_s * 1e3:8.1f}ms {r.hf_hit_s * 1e3:8.1f}ms {r.hf_speedup:6.1f}x" if r.hf_hit_s else "  (skipped)")
        print(f"{r.prefix_tokens:>7} {r.cold_s * 1e3:8.1f}ms {r.hit_s * 1e3:8.1f}ms {r.speedup:8.1f}x {hf}")
    if not workload:
        return
    print("\nWorkload replay")
    print(f"{'':>9} {'hit rate':>9} {'computed':>9} {'loaded':>9} {'evictions':>9} {'p50 TTFT':>9} {'p95 TTFT':>9}")
    for mode, w in workload.items():
        print(f"{mode:>9} {w['hit_rate']:9.1%} {w['tokens_computed']:9d} {w['tokens_loaded']:9d} {w['evictions']:9d} "
              f"{w['ttft_p50_s'] * 1e3:7.1f}ms {w['ttft_p95_s'] * 1e3:7.1f}ms")
