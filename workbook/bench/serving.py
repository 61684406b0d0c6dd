"""Serving many requests at once, measured on the batched server (`workbook.Server`).

Three measurements, each from one run on one machine:
- decode throughput: aggregate tokens/s and each request's inter-token latency at 1..32 concurrent requests;
- chunked prefill: time to first token and inter-token latency under a mixed arrival of long and
  short prompts, with and without chunking (Sarathi-Serve's trade);
- shared prefix memory: pool pages used by 16 requests on one cached 1,024-token prefix, against
  the same requests without a prefix cache.
"""

from __future__ import annotations

import random
import statistics

import torch
from tqdm.auto import tqdm

from ..checkpoints import default_model
from ..model import load_model
from ..page_pool import PagePool, full_pages, pages_for_rows
from ..prefix_cache import PrefixCache
from ..request import request_rows
from ..server import Server
from ..shapes import random_ids
from ..timing import device_name, percentile, save_results
from ..tokenizer import load_tokenizer

PAGE_SIZE = 16


def add_arguments(parser) -> None:
    parser.add_argument("--model", default=None, help="model name or folder (default: $WORKBOOK_MODEL or tiny)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--prompt", type=int, default=64, help="prompt tokens per request in the throughput runs")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens each request generates in the throughput runs")
    parser.add_argument("--prefix", type=int, default=1024, help="the shared prefix in the memory measurement")
    parser.add_argument("--chunk", type=int, default=256, help="prefill chunk in the chunked run of the mixed load")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not a measurement")
    parser.add_argument("--no-save", dest="save", action="store_false", help="print only; do not write data/benchmarks/")


def run(*, model: str | None = None, concurrency=(1, 2, 4, 8, 16, 32), prompt: int = 64, new_tokens: int = 64,
        prefix: int = 1024, chunk: int = 256, threads: int | None = None, quick: bool = False, save: bool = True) -> dict:
    """Measure, print and (unless `quick` or not `save`) save the serving benchmark; the options are the command's."""
    if threads:
        torch.set_num_threads(threads)
    if quick:
        concurrency, prompt, new_tokens, prefix, chunk = [1, 4], 16, 8, 64, 32
    name = model or default_model()
    lm, tokenizer = load_model(name), load_tokenizer(name)
    vocab = lm.config.vocab_size
    decode = [measure_decode(lm, tokenizer, c, prompt, new_tokens, vocab) for c in tqdm(concurrency, desc="concurrency")]
    mixed = {label: measure_mixed_load(lm, tokenizer, size, vocab, long=prefix)
             for label, size in tqdm([("unchunked", None), (f"chunk {chunk}", chunk)], desc="mixed load")}
    memory = measure_shared_prefix(lm, tokenizer, prefix, vocab, requests=16 if not quick else 4)
    payload = {"model": name, "device": device_name(lm.device), "threads": torch.get_num_threads(),
               "decode": decode, "mixed_load": mixed, "shared_prefix_memory": memory}
    print_report(payload)
    if save and not quick:
        print(f"saved to {save_results('serving', payload, device=lm.device)}")
    return payload


def decode_only(snapshots) -> tuple[int, float]:
    """Tokens and seconds of the steps that only decoded (no prompt tokens in them)."""
    steps = [s for s in snapshots if s.decode and not s.prefill]
    return sum(s.tokens for s in steps), sum(s.seconds for s in steps)


def measure_decode(model, tokenizer, concurrency: int, prompt: int, new_tokens: int, vocab: int) -> dict:
    """`concurrency` requests with distinct prompts, all admitted at once, decoding side by side."""
    rng = random.Random(concurrency)
    server = Server(model, tokenizer, None, max_running=concurrency, pool_tokens=concurrency * (prompt + new_tokens) + 64)
    for _ in range(concurrency):
        server.submit(random_ids(rng, prompt, vocab), max_new_tokens=new_tokens, stop_at_eos=False)
    snapshots = run_all(server)
    results = server.run_until_done()
    tokens, seconds = decode_only(snapshots)
    gaps = [gap for r in results.values() for gap in r.timings.token_times_s]
    return {"concurrency": concurrency, "decode_tokens_per_s": tokens / seconds,
            "inter_token_ms_p50": 1e3 * statistics.median(gaps), "inter_token_ms_p95": 1e3 * percentile(gaps, 95)}


def run_all(server: Server) -> list:
    snapshots = []
    while (snapshot := server.step()) is not None:
        snapshots.append(snapshot)
    return snapshots


def measure_mixed_load(model, tokenizer, prefill_chunk: int | None, vocab: int, *, long: int) -> dict:
    """Short chats decoding while long prompts keep arriving: TTFT of every request, and the chats' token gaps.

    Arrivals are fixed in steps, not seconds, so both runs see the same trace.
    """
    rng = random.Random(5)
    server = Server(model, tokenizer, None, max_running=16, max_batch_tokens=2 * long, prefill_chunk=prefill_chunk,
                    pool_tokens=16 * (long + 64))
    trace = {step: (long if step % 8 == 4 else 32) for step in range(0, 48, 2)}  # a long prompt every 8 steps
    kinds, snapshots = {}, []
    for step in range(200):
        if step in trace:
            rid = server.submit(random_ids(rng, trace[step], vocab), max_new_tokens=24, stop_at_eos=False)
            kinds[rid] = "long" if trace[step] == long else "short"
        snapshot = server.step()
        if snapshot is None:
            break
        snapshots.append(snapshot)
    snapshots += run_all(server)
    results = server.run_until_done()
    ttft = {kind: [1e3 * r.timings.ttft_s for rid, r in results.items() if kinds[rid] == kind] for kind in ("short", "long")}
    gaps = [1e3 * g for rid, r in results.items() if kinds[rid] == "short" for g in r.timings.token_times_s]
    return {"prefill_chunk": prefill_chunk, "long_prompt_tokens": long, "requests": len(results),
            "ttft_short_ms_p50": statistics.median(ttft["short"]), "ttft_short_ms_p90": percentile(ttft["short"], 90),
            "ttft_long_ms_p50": statistics.median(ttft["long"]),
            "inter_token_ms_p50": statistics.median(gaps), "inter_token_ms_p99": percentile(gaps, 99),
            "inter_token_ms_max": max(gaps), "steps": len(snapshots)}


def measure_shared_prefix(model, tokenizer, prefix: int, vocab: int, *, requests: int) -> dict:
    """Peak pool pages for `requests` requests on one cached prefix, with the prefix cache and without."""
    rng = random.Random(9)
    system = random_ids(rng, prefix, vocab)
    prompts = [system + random_ids(rng, 32, vocab) for _ in range(requests)]
    new = 32
    peaks = {}
    for mode in ("shared", "unshared"):
        cache = PrefixCache(PagePool.for_tokens((requests + 2) * (prefix + 64 + new), PAGE_SIZE)) if mode == "shared" else None
        server = Server(model, tokenizer, cache, max_running=requests, max_batch_tokens=requests * (prefix + 32),
                        pool_tokens=None if cache else (requests + 1) * (prefix + 64 + new))
        if cache:
            server.submit(system + [0], max_new_tokens=1)
            server.run_until_done()  # the system prompt is cached before the requests arrive, as in steady serving
        for p in prompts:
            server.submit(p, max_new_tokens=new, stop_at_eos=False)
        peaks[mode] = max(s.pages_in_use for s in run_all(server))
        server.run_until_done()
    one_prefix = full_pages(prefix, PAGE_SIZE)
    own = requests * (pages_for_rows(request_rows(prefix + 32, new), PAGE_SIZE) - one_prefix)
    return {"requests": requests, "prefix_tokens": prefix, "suffix_tokens": 32, "new_tokens": new,
            "pages_shared_run": peaks["shared"], "pages_unshared_run": peaks["unshared"],
            "pages_one_prefix_plus_own": one_prefix + own,
            "shared_over_ideal": peaks["shared"] / (one_prefix + own),
            "unshared_over_shared": peaks["unshared"] / peaks["shared"]}


def print_report(payload: dict) -> None:
    print(f"\nServing on {payload['device']}, {payload['threads']} torch threads, model {payload['model']}")
    single = payload["decode"][0]["decode_tokens_per_s"]
    print(f"{'concurrent':>10} {'decode tok/s':>13} {'x one':>6} {'gap p50 ms':>11} {'gap p95 ms':>11}")
    for row in payload["decode"]:
        print(f"{row['concurrency']:>10} {row['decode_tokens_per_s']:>13.1f} {row['decode_tokens_per_s'] / single:>6.2f} "
              f"{row['inter_token_ms_p50']:>11.2f} {row['inter_token_ms_p95']:>11.2f}")
    print("\nMixed load (short chats decoding while long prompts arrive):")
    for label, row in payload["mixed_load"].items():
        print(f"  {label:>10}: TTFT short p50 {row['ttft_short_ms_p50']:.1f} ms, p90 {row['ttft_short_ms_p90']:.1f} ms; "
              f"long p50 {row['ttft_long_ms_p50']:.1f} ms; chat token gap p50 {row['inter_token_ms_p50']:.1f} ms, "
              f"p99 {row['inter_token_ms_p99']:.1f} ms, max {row['inter_token_ms_max']:.1f} ms")
    m = payload["shared_prefix_memory"]
    print(f"\n{m['requests']} requests on one {m['prefix_tokens']}-token prefix: peak {m['pages_shared_run']} pages shared, "
          f"{m['pages_unshared_run']} without a prefix cache ({m['unshared_over_shared']:.1f}x); one prefix plus "
          f"their own tokens is {m['pages_one_prefix_plus_own']} pages ({m['shared_over_ideal']:.2f}x of that).")
