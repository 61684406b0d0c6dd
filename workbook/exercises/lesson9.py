"""Lesson 9's "check yourself" exercises (serving): each compares an answer with a reference computed by the
package and returns a `CheckResult`: right, wrong (with a hint), or not answered yet while the answer is still None.
"""

from __future__ import annotations

from ..kv_memory import head_dim, kv_heads, kv_memory, load_configs
from ..model import request_rows
from ..lessons.serving import seed_003_recomputed
from ..page_pool import PagePool
from .verdict import CheckResult, check_amount, check_number

# Exercise 2's workload: requests on one cached system prompt, pages of 16 tokens.
SHARED = dict(requests=16, system_tokens=512, own_tokens=40, new_tokens=24, page_size=16)


def check_bytes_per_token(answer, *, reveal: bool = False) -> CheckResult:
    """Exercise 1: KiB of K/V per token for Llama 3 70B in 16 bits."""
    config = load_configs()["llama-3-70b"]
    kib = kv_memory(config, 1).bytes_per_token // 1024
    layers, heads, dim = config["num_hidden_layers"], kv_heads(config), head_dim(config)
    return check_number(
        answer, kib, exercise="check_bytes_per_token", how="Replace None with a whole number of KiB.", unit="KiB",
        reveal=reveal,
        why=f"2 (K and V) x {layers} layers x {heads} K/V heads x {dim} numbers x 2 bytes = "
            f"{kib * 1024:,} bytes = {kib} KiB per token. Query heads do not count: only K/V heads are cached.",
        hint="Count what is stored for one token: a key and a value in every layer, for every K/V head (not every "
             "query head), each head_dim numbers of 2 bytes. The config has the layers and heads; head_dim is "
             "hidden_size / num_attention_heads.")


def shared_pages() -> tuple[int, int, int, int]:
    """Exercise 2's arithmetic: each request's final rows, the prefix's pages, each request's own pages, and the total."""
    w = SHARED
    rows = request_rows(w["system_tokens"] + w["own_tokens"], w["new_tokens"])  # the last new token is never fed back
    prefix = w["system_tokens"] // w["page_size"]
    own = PagePool(w["page_size"], 1).pages_for_rows(rows) - prefix
    return rows, prefix, own, prefix + w["requests"] * own


def check_shared_pages(answer, *, reveal: bool = False) -> CheckResult:
    """Exercise 2: at most how many pool pages do the requests of `SHARED` hold together?"""
    w = SHARED
    rows, prefix, own, total = shared_pages()
    return check_number(
        answer, total, exercise="check_shared_pages", how="Replace None with a whole number of pages.", unit="pages",
        reveal=reveal,
        why=f"The system prompt fills {prefix} pages, held once by the cache and listed by every request. Each "
            f"request ends with {rows} rows ({w['system_tokens']} + {w['own_tokens']} + {w['new_tokens']} - 1: the "
            f"last new token is never fed back), {prefix + own} pages, of which {own} are its own: "
            f"{prefix} + {w['requests']} x {own} = {total}.",
        hint="Shared pages count once. Then each request needs pages for its own rows: its prompt's own tokens and "
             "the new tokens but the last (never fed back), rounded up to whole pages after the shared prefix.")


def check_hardware_cost(answer, *, reveal: bool = False) -> CheckResult:
    """Exercise 3: what must the hardware cost per second for seed 003's step 2 (INT4) to be true?"""
    step = seed_003_recomputed()[2]
    return check_amount(
        answer, step.implied_dollars_per_s, exercise="check_hardware_cost", what="US dollars per second",
        how="Replace None with dollars per second, e.g. 0.5.", said="${:g}", rel_tol=0.01, reveal=reveal,
        why=f"Cost per request x requests per second = ${step.cost_per_request} x {step.requests_per_s} = "
            f"${step.implied_dollars_per_s:g} a second, against $0.30 for the first step on 'the same hardware'.",
        hint="A server's bill per second is what each request costs times how many requests it serves a second.")
