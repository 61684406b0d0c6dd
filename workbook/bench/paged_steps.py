"""How each way of running a paged step costs on this machine: decode at one request after a long prompt,
and decode at 16 concurrent requests, for every `attention` kind and with `compiled` steps.

    python -m workbook.bench paged-steps            # gather, pages, flex, gather+compiled; 3 rounds
    python -m workbook.bench paged-steps --profile pages   # and where one kind's decode step spends its time

Each figure is taken in rounds, the settings taking turns within a round, so a machine that drifts
moves them all; the median over rounds is reported. Time is counted twice: wall time, and the CPU
time of this thread (`time.thread_time`), which other processes on a shared machine disturb less.
Compiling happens in a warm-up before any timing (its cost is printed: a lesson would pay it).
"""

from __future__ import annotations

import statistics
import time

import torch

from ..model import load_model
from ..page_pool import PagePool
from ..prefix_cache import PrefixCache
from ..server import Server
from ..timing import device_name, save_results
from ..tokenizer import load_tokenizer
from .prefix import CORPUS, corpus_ids

SETTINGS = [("gather", False), ("pages", False), ("flex", False), ("gather", True)]
PAGE_SIZE = 128  # vLLM's CPU block, as in `bench real-engine`


def add_arguments(parser) -> None:
    parser.add_argument("--context", type=int, default=2080, help="prompt tokens before the timed decode steps")
    parser.add_argument("--steps", type=int, default=64, help="decode steps timed at one request")
    parser.add_argument("--concurrent", type=int, default=16, help="requests decoding together in the batched figure")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", choices=[a for a, _ in SETTINGS], help="also profile this kind's decode step")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, nothing compiled: a smoke test")
    parser.add_argument("--no-save", dest="save", action="store_false", help="print only; do not write data/benchmarks/")


def label(attention: str, compiled: bool) -> str:
    return attention + (" + compiled" if compiled else "")


def decoding_server(model, tokenizer, prompts: list[list[int]], new_tokens: int) -> Server:
    """A server whose requests have finished their prompts and decode from the next step on."""
    server = Server(model, tokenizer, PrefixCache(PagePool.for_tokens(8192 * 2, PAGE_SIZE)), max_running=len(prompts),
                    max_batch_tokens=8192)
    for prompt in prompts:
        server.submit(prompt, max_new_tokens=new_tokens, stop_at_eos=False)
    while len(server.step().decode) < len(prompts):  # until a step decodes every request
        pass
    return server


def time_decode(model, tokenizer, prompts: list[list[int]], steps: int) -> dict:
    """Tokens per second (wall and this thread's CPU) over `steps` decode steps of every request in `prompts`."""
    server = decoding_server(model, tokenizer, prompts, steps + 2)
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(steps):
        server.step()
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    tokens = steps * len(prompts)
    return {"tokens_per_s": tokens / wall, "tokens_per_cpu_s": tokens / cpu}


def profile_decode(model, tokenizer, prompt: list[int], steps: int) -> str:
    """torch.profiler's table of one request's decode steps, by self CPU time."""
    from torch.profiler import profile

    server = decoding_server(model, tokenizer, [prompt], steps + 2)
    with profile() as prof:
        for _ in range(steps):
            server.step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)


def run(*, context: int = 2080, steps: int = 64, concurrent: int = 16, rounds: int = 3, threads: int = 1,
        profile: str | None = None, quick: bool = False, save: bool = True) -> dict:
    """Measure, print and (unless `quick` or not `save`) save as section `paged_steps`."""
    settings = SETTINGS[:2] if quick else SETTINGS
    if quick:
        context, steps, concurrent, rounds = 300, 4, 2, 1
    torch.set_num_threads(threads)
    model, tokenizer = load_model("tiny", device="cpu"), load_tokenizer("tiny")
    ids = corpus_ids(tokenizer, CORPUS.read_text(encoding="utf-8"), max(context, 256 * concurrent))
    one, many = [ids[:context]], [ids[i * 256:(i + 1) * 256] for i in range(concurrent)]
    warmup = {}
    for attention, compiled in settings:  # compile every shape the timed runs will meet
        start = time.perf_counter()
        model.configure_steps(attention=attention, compiled=compiled)
        time_decode(model, tokenizer, one, 2), time_decode(model, tokenizer, many, 2)
        warmup[label(attention, compiled)] = time.perf_counter() - start
    by_round = []
    for _ in range(rounds):
        row = {}
        for attention, compiled in settings:
            model.configure_steps(attention=attention, compiled=compiled)
            row[label(attention, compiled)] = {"one": time_decode(model, tokenizer, one, steps),
                                               "concurrent": time_decode(model, tokenizer, many, steps // 4 or 1)}
        by_round.append(row)
    medians = {name: {which: {k: statistics.median(r[name][which][k] for r in by_round) for k in by_round[0][name][which]}
                      for which in ("one", "concurrent")} for name in by_round[0]}
    payload = {"model": "tiny", "device": device_name("cpu"), "threads": threads, "context": context, "steps": steps,
               "concurrent": concurrent, "page_size": PAGE_SIZE, "rounds": by_round, "median": medians,
               "warmup_s": warmup}
    print(f"\nDecode on the shipped model ({payload['device']}), median of {rounds} rounds; tokens/s by wall clock and "
          f"per CPU second of this thread")
    print(f"{'setting':<18} {'1 request after ' + str(context):>26} {str(concurrent) + ' concurrent':>24} {'warm-up':>9}")
    for name, m in medians.items():
        print(f"{name:<18} {m['one']['tokens_per_s']:9.0f} wall {m['one']['tokens_per_cpu_s']:7.0f} cpu "
              f"{m['concurrent']['tokens_per_s']:9.0f} wall {m['concurrent']['tokens_per_cpu_s']:6.0f} cpu "
              f"{warmup[name]:8.1f}s")
    if profile:
        model.configure_steps(attention=profile)
        payload["profile"] = {"attention": profile, "table": profile_decode(model, tokenizer, one[0], steps)}
        print(f"\nWhere a decode step's time goes (attention={profile!r}, {steps} steps after {context} tokens):")
        print(payload["profile"]["table"])
    model.configure_steps()
    if save and not quick:
        print(f"saved to {save_results('paged_steps', payload, device='cpu')}")
    return payload
