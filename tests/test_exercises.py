"""The "check yourself" functions really check, and the counting formulas they rest on are right."""

import importlib
import inspect

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from workbook.counting import forward_flops, kv_bytes_per_token, rows_computed
from workbook.exercises import lesson1, lesson2, lesson3


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


@pytest.mark.parametrize("lesson", range(1, 8))
def test_every_lesson_has_its_own_exercise_module_whose_checks_return_a_check_result(lesson):
    module = importlib.import_module(f"workbook.exercises.lesson{lesson}")
    checks = [f for name, f in inspect.getmembers(module, inspect.isfunction)
              if name.startswith("check_") and f.__module__ == module.__name__]
    assert checks, f"lesson {lesson} has no check_* functions"
    for check in checks:
        assert inspect.signature(check).return_annotation == "CheckResult", check.__name__


def test_number_checks_take_whole_floats_and_refuse_other_things():
    check = lambda a: lesson2.check_visible_pairs(4, a)  # noqa: E731
    assert check(10.0).correct is True
    assert check(10.5).correct is False and "whole number" in check(10.5).message
    assert check("10").correct is False and check(True).correct is False


def test_cache_breakers_accept_letters_as_a_string():
    assert lesson1.check_cache_breakers("b, c, f").correct is True
    assert lesson1.check_cache_breakers("bcf").correct is True
    assert "not an option" in lesson1.check_cache_breakers({"z"}).message
    assert "left out f" in lesson1.check_cache_breakers({"b", "c"}).message


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
