"""The "check yourself" functions really check, and the counting formulas they rest on are right."""

import importlib
import inspect
import re

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from workbook.counting import forward_flops, kv_bytes_per_token, rows_computed
from workbook.doctor import diagnose
from workbook.doctor.causes import CAUSES
from workbook.exercises import (lesson1, lesson2, lesson3, lesson4, lesson5, lesson6, lesson7, lesson8, lesson9,
                                lesson10, lesson11, lesson12)
from workbook.exercises.verdict import reset_tries
from workbook.pricing import get_sheet
from workbook.tokenizer import first_divergence

LESSONS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)


@pytest.fixture(autouse=True)
def fresh_tries():
    """Every test starts with no wrong tries counted, whatever ran before it."""
    reset_tries()
    yield
    reset_tries()


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_forward_flops_matches_a_hand_count(small_model):
    cfg = small_model.config  # 2 layers, hidden 64, 4 heads and 2 KV heads of 16, MLP 96, vocabulary 320
    assert (cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim,
            cfg.intermediate_size, cfg.vocab_size) == (2, 64, 4, 2, 16, 96, 320)
    # Per layer: q 64·64 + k, v 2·64·32 + o 64·64 + gate, up, down 3·64·96 = 4096 + 4096 + 4096 + 18432 = 30720.
    per_token_weights = 2 * (2 * 30720)  # 122,880
    head = 2 * 64 * 320  # 40,960: the output head, for the last position only
    # One new token after 9 cached ones sees 10 keys: 4 · 16 · 4 heads · 2 layers · 10 = 5,120.
    step = forward_flops(cfg, n_new=1, n_past=9)
    assert (step.weights, step.attention, step.total) == (per_token_weights + head, 5120, 168_960)
    # Five tokens from scratch see 1 + 2 + 3 + 4 + 5 = 15 keys in all.
    prefill = forward_flops(cfg, n_new=5)
    assert prefill.weights == 5 * per_token_weights + head and prefill.attention == 512 * 15
    assert forward_flops(cfg, n_new=5, all_logits=True).weights == 5 * (per_token_weights + head)


def test_forward_flops_matches_what_pytorch_counts(small_model):
    """PyTorch's own counter sees the matrix products of the written-out attention (record_attention)."""
    cfg, ids = small_model.config, torch.arange(10)[None]
    cache = small_model.new_cache(16)
    prefill = counted_flops(lambda: small_model(ids, cache=cache, record_attention=[]))
    # The written-out path also multiplies the masked (query, key) pairs before zeroing them: 45 of the 100.
    masked = 4 * cfg.num_layers * cfg.num_heads * cfg.head_dim * 45
    assert prefill - masked == forward_flops(cfg, n_new=10, all_logits=True).total
    step = counted_flops(lambda: small_model(ids[:, :1], cache=cache, record_attention=[], last_only=True))
    assert step == forward_flops(cfg, n_new=1, n_past=10).total


def test_decode_step_costs_grow_linearly_with_the_cache_and_quadratically_without(small_model):
    cfg = small_model.config
    per_pair = 4 * cfg.num_layers * cfg.num_heads * cfg.head_dim  # one (query, visible key) pair
    for n in (10, 20, 40):
        assert forward_flops(cfg, n_new=1, n_past=n - 1).attention == per_pair * n  # the new query sees n keys
        assert forward_flops(cfg, n_new=n).attention == per_pair * n * (n + 1) // 2  # every query again


@pytest.mark.parametrize("counts, message", [(dict(n_new=1, n_past=-1), "n_past must be a whole number >= 0, not -1"),
                                             (dict(n_new=1.5), "n_new must be a whole number >= 0, not 1.5")])
def test_forward_flops_refuses_counts_that_are_not_whole(small_model, counts, message):
    with pytest.raises(ValueError, match=message):
        forward_flops(small_model.config, **counts)


def test_kv_bytes_per_token_matches_the_cache_tensors(small_model):
    cfg = small_model.config
    cache = small_model.new_cache(7)
    expected = kv_bytes_per_token(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, bytes_per_value=4)
    stored = sum(t.numel() * t.element_size() for t in cache.keys + cache.values)
    assert expected == cache.bytes_per_token() == stored // 7 == 2 * 2 * 2 * 16 * 4


def test_rows_computed_matches_a_step_by_step_count():
    for prompt, new in [(1, 1), (5, 1), (5, 4), (2000, 100)]:
        sequence = [prompt + k for k in range(new)]  # tokens each forward pass sees
        assert rows_computed(prompt, new, cached=False) == sum(sequence)
        assert rows_computed(prompt, new, cached=True) == prompt + (new - 1)
    assert rows_computed(2000, 100, cached=False) == 204_950 and rows_computed(2000, 100, cached=True) == 2099


@pytest.mark.parametrize("check, right, wrong", [
    (lambda a: lesson2.check_visible_pairs(6, a), 21, 36),
    (lambda a: lesson3.check_kv_bytes_per_token(a, num_layers=32, num_kv_heads=8, head_dim=128, bytes_per_value=2),
     131_072, 262_144),
    (lambda a: lesson3.check_rows_computed(a, prompt_tokens=10, new_tokens=3, cached=False), 33, 12),
    (lambda a: lesson3.check_rows_computed(a, prompt_tokens=10, new_tokens=3, cached=True), 12, 33),
    (lambda a: lesson2.check_rows_to_recompute(5, a), {5}, {0, 1, 2, 3, 4, 5}),
    (lambda a: lesson1.check_cache_breakers(a), {"b", "c", "f"}, {"a", "b", "c", "f"}),
    (lambda a: lesson2.check_attention_weights([1.0, 1.0, 5.0], 1, a), [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]),
])
def test_every_check_says_not_answered_right_or_wrong(check, right, wrong):
    pending = check(None)
    assert pending.correct is None and "not answered" in repr(pending).lower()
    assert check(right).correct is True and "right" in repr(check(right)).lower()
    verdict = check(wrong)
    assert verdict.correct is False and not verdict and len(verdict.message) > 20  # an explanation, not just "no"


def lesson_checks(lesson: int) -> list:
    module = importlib.import_module(f"workbook.exercises.lesson{lesson}")
    return [f for name, f in inspect.getmembers(module, inspect.isfunction)
            if name.startswith("check_") and f.__module__ == module.__name__]


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_lesson_has_its_own_exercise_module_whose_checks_return_a_check_result(lesson):
    checks = lesson_checks(lesson)
    assert checks, f"lesson {lesson} has no check_* functions"
    for check in checks:
        signature = inspect.signature(check)
        assert signature.return_annotation == "CheckResult", check.__name__
        reveal = signature.parameters.get("reveal")
        assert reveal is not None and reveal.kind is reveal.KEYWORD_ONLY and reveal.default is False, check.__name__


def test_number_checks_take_whole_floats_and_refuse_other_things():
    check = lambda a: lesson2.check_visible_pairs(4, a)  # noqa: E731
    assert check(10.0).correct is True
    assert check(10.5).correct is False and "whole number" in check(10.5).message
    assert check("10").correct is False and check(True).correct is False


def test_cache_breakers_accept_letters_as_a_string():
    assert lesson1.check_cache_breakers("b, c, f").correct is True
    assert lesson1.check_cache_breakers("bcf").correct is True
    assert "not an option" in lesson1.check_cache_breakers({"z"}).message
    hint = lesson1.check_cache_breakers({"b", "c"}).message
    assert "left out 1 change" in hint and "f)" not in hint  # how many were missed, not which


def test_attention_weights_check_explains_masked_keys():
    verdict = lesson2.check_attention_weights([0.0, 0.0, 0.0], 0, [0.4, 0.3, 0.3])
    assert verdict.correct is False and "later keys" in verdict.message
    assert lesson2.check_attention_weights([0.0, 0.0], 1, [0.5]).correct is False  # one weight per key


def test_reusable_tokens_follow_the_first_divergence(small_tokenizer):
    tok = small_tokenizer
    system = "You are a careful support assistant."
    same = lesson1.check_reusable_tokens(tok, system, system, len(tok.encode(system)))
    assert same.correct is True and "same" in same.message
    longer = system + " Answer briefly."
    assert lesson1.check_reusable_tokens(tok, system, longer, len(tok.encode(system))).correct is True
    changed = "You are a  careful support assistant."  # a second space after "a"
    split = next(i for i, (x, y) in enumerate(zip(tok.encode(system), tok.encode(changed))) if x != y)
    verdict = lesson1.check_reusable_tokens(tok, system, changed, split)
    assert verdict.correct is True and f"first {split} tokens" in verdict.message
    assert lesson1.check_reusable_tokens(tok, system, changed, split + 1).correct is False


# ----- hint first, worked answer second ----------------------------------------------------------------------------
# Each case: (check(answer, **kw), a right answer, a wrong one, a malformed one, a piece of the worked answer: its key
# number or, for letters, a line of the per-option explanation). The id starts with the check function's name.

CURVE = [(7, 0.0), (8, 0.4), (10, 0.6), (12, 0.9), (16, 0.97), (24, 1.0)]  # half the time at 10, 90% at 12
GOOD_ORDER = ["instructions", "tool definitions", "examples", "today's date", "retrieved documents", "user message"]


def _reusable_tokens(request):
    tok = request.getfixturevalue("small_tokenizer")
    cached, new = "You are a helpful assistant. Today is Monday.", "You are a helpful assistant. Today is Tuesday."
    split = first_divergence(tok.encode(cached), tok.encode(new))
    return (lambda a, **kw: lesson1.check_reusable_tokens(tok, cached, new, a, **kw)), split, split + 1, "2", \
        f"first {split} tokens"


def _break_penalty(request):
    truth = lesson4.break_penalty_usd(get_sheet(lesson4.BREAK_SHEET))
    return lesson4.check_break_penalty, truth, 2 * truth, "0.01", f"${truth:.6f}"


def _semantic_cache(request):
    from workbook.semantic import SemanticCache, load_intents, load_query_log, replay
    cache = SemanticCache(request.getfixturevalue("embedder"))
    replay(load_query_log()[:120], cache, load_intents())
    truth = sum(e.meta.get("policy") == lesson8.CHANGED_POLICY for e in cache.entries())
    return (lambda a, **kw: lesson8.check_invalidated(a, cache, **kw)), truth, truth + 1, "four", f"{truth} entries"


def _achievable(request):
    from workbook.semantic import achievable_hit_rate, load_query_log
    embedder = request.getfixturevalue("embedder")
    truth = achievable_hit_rate([q.query for q in load_query_log()], embedder, lesson8.ACHIEVABLE_AT)
    return (lambda a, **kw: lesson8.check_achievable(a, embedder, **kw)), truth, truth + 0.02, "most", f"{truth:.3f}:"


def _refusals(request):
    refused = {k for k, (_, is_answer, _) in lesson8.verify_options().items() if is_answer}
    return lesson8.check_refusals, refused, set(lesson8.VERIFY_PAIRS), {"z"}, ") refused:"


def _leaks(request):
    right = {k for k, (_, is_answer, _) in lesson10.leak_options().items() if is_answer}
    return lesson10.check_leaks, right, set("abc"), {"d"}, ") can time it:"


def _costliest_cause(request):
    report = diagnose(lesson11.OPENAI_LOG, provider=lesson11.GPT)
    lost = report.diagnosis.lost_by_cause()
    truth = max(lost, key=lost.get)
    wrong = next(cause for cause in CAUSES if cause != truth)
    return (lambda a, **kw: lesson11.check_costliest_cause(a, report, **kw)), truth, wrong, "no such cause", \
        f"{truth!r} loses {lost[truth]:,}"


def _stable_templates(request):
    return lesson11.check_stable_templates, {"c"}, {"a", "c"}, {"e"}, ") passes:"


def _lost_tokens(request):
    report = diagnose(lesson11.LOST_LOG, provider=lesson11.GPT)
    truth = next(f for f in report.diagnosis.findings if f.line == lesson11.LOST_LINE).lost_tokens
    return (lambda a, **kw: lesson11.check_lost_tokens(a, report, **kw)), truth, truth + 1, "many", f"{truth:,}"


def _routing_loss(request):
    report = diagnose(lesson12.ROUND_ROBIN_LOG, provider=lesson12.GPT)
    rows = report.reported_vs_simulated()
    truth = sum(s for _, _, s in rows) - sum(r for _, r, _ in rows)
    return (lambda a, **kw: lesson12.check_routing_loss(a, report, **kw)), truth, truth + 128, "some", f"{truth:,}"


def _simple(check, right, wrong, malformed, key):
    return lambda request: (check, right, wrong, malformed, key)


CASES = {
    "check_reusable_tokens": _reusable_tokens,
    "check_cache_breakers": _simple(lesson1.check_cache_breakers, {"b", "c", "f"}, {"a", "b"}, {"z"},
                                    ") breaks the prefix:"),
    "check_visible_pairs": _simple(lambda a, **kw: lesson2.check_visible_pairs(6, a, **kw), 21, 36, "21", "= 21"),
    "check_attention_weights": _simple(lambda a, **kw: lesson2.check_attention_weights([1.0, 1.0, 5.0], 1, a, **kw),
                                       [0.5, 0.5, 0.0], [0.3, 0.7, 0.0], [0.5], "[0.500, 0.500, 0.000]"),
    "check_rows_to_recompute": _simple(lambda a, **kw: lesson2.check_rows_to_recompute(5, a, **kw), {5}, {4, 5}, "ab",
                                       "row, {5}"),
    "check_kv_bytes_per_token": _simple(
        lambda a, **kw: lesson3.check_kv_bytes_per_token(a, num_layers=28, num_kv_heads=4, head_dim=128,
                                                         bytes_per_value=2, **kw), 57_344, 114_688, 57.3, "57,344"),
    "check_rows_computed-uncached": _simple(
        lambda a, **kw: lesson3.check_rows_computed(a, prompt_tokens=2000, new_tokens=100, cached=False, **kw),
        204_950, 2_099, "lots", "204,950"),
    "check_rows_computed-cached": _simple(
        lambda a, **kw: lesson3.check_rows_computed(a, prompt_tokens=2000, new_tokens=100, cached=True, **kw),
        2_099, 204_950, "lots", "2,099"),
    "check_loadable_tokens": _simple(lesson4.check_loadable_tokens, 112, 128, "112", "112 tokens"),
    "check_break_penalty": _break_penalty,
    "check_prompt_order": _simple(lesson4.check_prompt_order, GOOD_ORDER,
                                  [*GOOD_ORDER[:3], "user message", "today's date", "retrieved documents"],
                                  GOOD_ORDER[:-1], "Everything that never changes comes first"),
    "check_loaded_after_change": _simple(lesson5.check_loaded_after_change, 256, 300, "all", "256"),
    "check_openai_cached_tokens": _simple(lesson5.check_openai_cached_tokens, 1_408, 1_500, True, "1,408"),
    "check_seam_cached_tokens": _simple(lesson5.check_seam_cached_tokens, 0, 1_024, "none", "0"),
    "check_step_outcome": _simple(lesson6.check_step_outcome, (3, 4), (4, 3), "3, 4", "4 rows"),
    "check_best_k": _simple(lesson6.check_best_k, 2, 3, 0, "k = 2 is best"),
    "check_output_changers": _simple(lesson6.check_output_changers, {"d"}, {"a", "d"}, 4, ") changes the output:"),
    "check_storage_break_even": _simple(lesson7.check_storage_break_even, 3.7, 4, "3.7", "3.70 per hour"),
    "check_ttl_choice": _simple(lesson7.check_ttl_choice, "5m", "1h", "5 minutes", "A day costs"),
    "check_seed_yearly_cost": _simple(lesson7.check_seed_yearly_cost, 73_000, 219_000, "x", "$73,000"),
    "check_refusals": _refusals,
    "check_bytes_per_token": _simple(lesson9.check_bytes_per_token, 192, 960, "192", "192 KiB"),  # 960: query heads
    "check_shared_pages": _simple(lesson9.check_shared_pages, 88, 89, "88", "= 88"),
    "check_hardware_cost": _simple(lesson9.check_hardware_cost, 0.084, 0.1, "0.084", "$0.084 a second"),
    "check_invalidated": _semantic_cache,
    "check_achievable": _achievable,
    "check_leaks": _leaks,
    "check_probes": _simple(lambda a, **kw: lesson10.check_probes(a, CURVE, **kw), 10, 12, "10", "10 probes"),
    "check_chance": _simple(lesson10.check_chance, 25, 5, "many", "= 25 on average"),
    "check_costliest_cause": _costliest_cause,
    "check_lost_tokens": _lost_tokens,
    "check_stable_templates": _stable_templates,
    # Lesson 12: 12 tenants x 8 replicas each miss once under round robin (12 would be cache-aware's count); the
    # router follows the prefix from 150 - 64 = 86 in flight on the least loaded replica (100 is where 1.5x stops).
    "check_round_robin_misses": _simple(lesson12.check_round_robin_misses, 96, 12, "lots", "96"),
    "check_balance_threshold": _simple(lesson12.check_balance_threshold, 86, 100, "some", "86"),
    "check_routing_loss": _routing_loss,
}


@pytest.fixture(scope="module")
def embedder():
    from workbook.semantic import load_embedder
    return load_embedder(device="cpu")


@pytest.fixture(params=list(CASES))
def case(request):
    return CASES[request.param](request)


def mentions(message: str, key: str) -> bool:
    """Whether `key` is in `message`; a bare number must stand alone (0 is not in "1,024" nor in "10")."""
    if not re.fullmatch(r"[\d,.]+", key):
        return key in message
    return re.search(rf"(?<![\d.,]){re.escape(key)}(?![\d]|[.,]\d)", message) is not None


def test_every_check_function_has_a_case():
    names = {f.__name__ for lesson in LESSONS for f in lesson_checks(lesson)}
    assert names == {case_id.split("-")[0] for case_id in CASES}


def test_a_first_wrong_answer_gets_a_hint_and_the_second_the_worked_answer(case):
    check, right, wrong, _, key = case
    first = check(wrong)
    assert first.correct is False and not mentions(first.message, key), first.message
    assert "reveal=True" in first.message and len(first.message) > 40  # a hint, then how to see the answer
    second = check(wrong)
    assert second.correct is False and mentions(second.message, key) and "reveal=True" not in second.message
    assert check(wrong).message == second.message  # from then on, the worked answer every time


def test_a_right_answer_shows_the_worked_answer_before_and_after_wrong_tries(case):
    check, right, wrong, _, key = case
    before = check(right)
    check(wrong)
    after = check(right)
    assert before.correct is True and mentions(before.message, key) and before.message == after.message


def test_reveal_shows_the_worked_answer_at_once(case):
    check, right, wrong, _, key = case
    assert check(None).correct is None and not mentions(check(None).message, key)
    for answer, correct in ((None, None), (wrong, False), (right, True)):
        shown = check(answer, reveal=True)
        assert shown.correct is correct and mentions(shown.message, key), (answer, shown)


def test_a_malformed_answer_is_sent_back_and_does_not_count_as_a_try(case):
    check, _, wrong, malformed, key = case
    refused = check(malformed)
    assert refused.correct is False and not mentions(refused.message, key) and "reveal=True" not in refused.message
    assert check(malformed).message == refused.message
    assert not mentions(check(wrong).message, key)  # still the first wrong try: a hint


def test_tries_are_counted_per_exercise_and_reset_tries_forgets_them():
    uncached = lambda a: lesson3.check_rows_computed(a, prompt_tokens=2000, new_tokens=100, cached=False)  # noqa: E731
    cached = lambda a: lesson3.check_rows_computed(a, prompt_tokens=2000, new_tokens=100, cached=True)  # noqa: E731
    assert "204,950" not in uncached(1).message
    assert "2,099" not in cached(1).message  # the same function, another exercise: its own first try
    assert "= 21" not in lesson2.check_visible_pairs(6, 1).message  # another function: its own first try too
    assert "204,950" in uncached(1).message
    reset_tries()
    assert "204,950" not in uncached(1).message
