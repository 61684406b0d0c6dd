"""Lesson 9's "check yourself" exercises (serving): each compares an answer with a reference computed by the
package and returns a `CheckResult`: right, wrong (with a hint), or not answered yet while the answer is still None.
"""

from __future__ import annotations

from ..kv_memory import head_dim, kv_heads, kv_memory
from ..page_pool import full_pages, pages_for_rows
from ..request import request_rows
from .verdict import CheckResult, check_amount, check_number

# Exercise 1's model: a made-up shape, so that no table or calculator in the lesson prints its answer.
SHAPE = dict(num_hidden_layers=48, num_attention_heads=40, num_key_value_heads=8, hidden_size=5_120)
# Exercise 2's workload: requests on one cached system prompt, pages of 16 tokens.
SHARED = dict(requests=14, system_tokens=512, own_tokens=40, new_tokens=24, page_size=16)
# Exercise 3's vendor claims, (dollars per request, requests per second): seed 003's step 2 on other numbers.
CLAIMED_BEFORE, CLAIMED_AFTER = (0.004, 25), (0.0012, 70)


def check_bytes_per_token(answer, *, reveal: bool = False) -> CheckResult:
    """Exercise 1: KiB of K/V per token, in 16 bits, for a model of the made-up shape `SHAPE`."""
    kib = kv_memory(SHAPE, 1).bytes_per_token // 1024
    layers, heads, dim = SHAPE["num_hidden_layers"], kv_heads(SHAPE), head_dim(SHAPE)
    return check_number(
        answer, kib, exercise="check_bytes_per_token", how="Replace None with a whole number of KiB.", unit="KiB",
        reveal=reveal,
        why=f"2 (K and V) x {layers} layers x {heads} K/V heads x {dim} numbers (head_dim = "
            f"{SHAPE['hidden_size']:,} / {SHAPE['num_attention_heads']}) x 2 bytes = {kib * 1024:,} bytes = {kib} KiB "
            "per token. Query heads do not count: only K/V heads are cached.",
        hint="Count what one token leaves behind in one layer first: what is stored, for which heads (section 6's "
             "first paragraph says which), and how many numbers each? Then multiply by the layers.")


def shared_pages() -> tuple[int, int, int, int]:
    """Exercise 2's arithmetic: each request's final rows, the prefix's pages, each request's own pages, and the total."""
    w = SHARED
    rows = request_rows(w["system_tokens"] + w["own_tokens"], w["new_tokens"])  # the last new token is never fed back
    prefix = full_pages(w["system_tokens"], w["page_size"])
    own = pages_for_rows(rows, w["page_size"]) - prefix
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
    """Exercise 3: what must the hardware cost per second for the vendor's second claim to be true?"""
    (cost, rate), (cost_after, rate_after) = CLAIMED_BEFORE, CLAIMED_AFTER
    before, after = cost * rate, cost_after * rate_after
    return check_amount(
        answer, after, exercise="check_hardware_cost", what="US dollars per second",
        how="Replace None with dollars per second, e.g. 0.5.", said="${:g}", rel_tol=0.01, reveal=reveal,
        why=f"Cost per request x requests per second = ${cost_after:g} x {rate_after} = ${after:.3f} a second, against "
            f"${cost:g} x {rate} = ${before:.2f} for the first claim: the two cannot both hold on the same hardware. On "
            f"the first claim's hardware, {rate_after} requests a second would cost ${before / rate_after:.5f} each.",
        hint="Think of the hardware as a meter that runs by the second: in one second, how many requests share that "
             "second's bill, and how much does each one pay toward it?")
