"""Lesson 4's views driven from Python (clicks, values), and its check-yourself functions."""

import html
from dataclasses import replace

import ipywidgets as W
import pytest
import torch

from workbook import Engine, PagePool, PrefixCache, Usage
from workbook.exercises.lesson4 import (BREAK_SHEET, OUTPUT_TOKENS, QUESTION_TOKENS, SYSTEM_TOKENS, break_penalty_usd,
                                        check_break_penalty, check_loadable_tokens, check_prompt_order)
from workbook.lessons.invalidation import mark_invalidated, reusable_length
from workbook.lessons.scenarios import User, break_system_prompt, chat
from workbook.prefix_cache import loadable_tokens
from workbook.pricing import get_sheet
from workbook.tokenizer import first_divergence
from workbook.widgets.kv_rows import KVRowsTable
from workbook.widgets.prefix_demo import PrefixCacheDemo
from workbook.widgets.radix_tree import RadixTreeView
from workbook.widgets.style import usd
from workbook.widgets.tokens import TokenStrip

# Short enough for the small model's 96-token context; the date sits a couple of pages in.
SYSTEM = "You are a careful support assistant.\nToday Date: 14 Mar 2026\nAnswer briefly and politely."
QUESTIONS = ("Where are my orders?", "Can I get a refund?")


@pytest.fixture
def demo(small_model, small_tokenizer):
    return PrefixCacheDemo(small_model, small_tokenizer, system_prompt=SYSTEM, questions=QUESTIONS, page_size=4,
                           capacity_tokens=512, max_new_tokens=4)


# ----- prefix demo: the helpers ---------------------------------------------------------------


def test_break_system_prompt_moves_the_date_on_by_a_day():
    assert break_system_prompt("Hi\nToday Date: 14 Mar 2026\nBye") == "Hi\nToday Date: 15 Mar 2026\nBye"
    assert break_system_prompt("Today Date: 31 Dec 2026") == "Today Date: 01 Jan 2027"
    assert break_system_prompt("Persona line\nRules") == "Persona line\nToday Date: 14 Mar 2026\nRules"


def test_reusable_length_counts_whole_pages_and_never_the_last_token():
    assert reusable_length([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 9], page_size=2) == 4
    assert reusable_length([1, 2, 3, 4], [1, 2, 3, 4], page_size=2) == 2  # identical: the last token is computed
    assert reusable_length([7], [1, 2, 3], page_size=1) == 0
    marked = mark_invalidated(["loaded", "computed", "computed", "computed"], 3)
    assert marked == ["loaded", "invalidated", "invalidated", "computed"]


# ----- prefix demo: the three buttons -----------------------------------------------------------


def test_request_1_is_cold_request_2_loads_the_system_prompt(demo):
    shown = []
    demo.status.observe(lambda change: shown.append(change["new"]), names="value")
    demo.button_1.click()
    assert "Sending request 1" in shown[0] and "request 1: the cache was empty" in shown[-1]
    assert not any(b.disabled for b in (demo.button_1, demo.button_2, demo.break_button))
    first = demo.state.last
    assert first.label == "request 1" and first.loaded == 0 and first.computed == len(first.prompt_ids)
    assert set(first.provenance) == {"computed"} and first.written == len(first.prompt_ids) // 4 * 4

    demo.button_2.click()
    second = demo.state.last
    shared = first_divergence(first.prompt_ids, second.prompt_ids)
    assert second.loaded == shared // 4 * 4 > 0
    assert second.provenance == ["loaded"] * second.loaded + ["computed"] * (len(second.prompt_ids) - second.loaded)
    assert second.usage.cache_read_tokens == second.loaded and second.invalidated == 0
    assert [r.label for r in demo.state.history] == ["request 1", "request 2"]
    # What the page shows follows the state.
    assert demo.strip.state.provenance == second.provenance and demo.strip.state.ids == second.prompt_ids
    assert demo.kv_rows.state.provenance == second.provenance
    assert f">{second.loaded}</span><br>tokens loaded" in demo.counters.value


def test_break_prefix_turns_loaded_rows_after_the_edit_into_invalidated(demo):
    demo.button_1.click()
    demo.button_2.click()
    hit = demo.state.last
    demo.break_button.click()
    broken = demo.state.last
    assert "15 Mar 2026" in demo.system_box.value and demo.state.system_prompt == demo.system_box.value
    assert broken.label == "broken prefix" and broken.edit_at is not None
    assert broken.loaded == broken.edit_at // 4 * 4 < hit.loaded
    # Request 2 left its whole prompt cached (whole pages, bar the last token): all of it past the edit is invalidated.
    held = (len(hit.prompt_ids) - 1) // 4 * 4
    assert broken.provenance[:broken.loaded] == ["loaded"] * broken.loaded
    assert broken.provenance[broken.loaded:held] == ["invalidated"] * (held - broken.loaded)
    assert set(broken.provenance[held:]) == {"computed"}
    assert "invalidated" in demo.strip.state.provenance
    # Request 1 starts over from an empty cache.
    demo.button_1.click()
    assert demo.state.last.loaded == 0 and len(demo.state.history) == 1


def test_a_hit_reproduces_a_cold_run(demo, small_model, small_tokenizer):
    demo.send_request_1()
    hit = demo.send_request_2()
    assert hit.loaded > 0
    cold = Engine(small_model, small_tokenizer).generate(chat(SYSTEM, QUESTIONS[1]), max_new_tokens=4)
    torch.testing.assert_close(hit.result.first_token_logits, cold.first_token_logits, atol=1e-4, rtol=0)
    assert hit.result.output_ids == cold.output_ids


def test_bad_input_shows_in_the_view_and_changes_nothing(demo):
    demo.break_button.click()
    assert "Send request 1 first" in demo.errors.message and not demo.state.history
    demo.send_request_1()
    before = demo.engine.prefix_cache.stats()
    demo.question_2_box.value = "   "
    demo.button_2.click()
    assert "question is empty" in demo.state.error and demo.errors.message == demo.state.error
    demo.question_2_box.value = QUESTIONS[1]
    demo.system_box.value = ""
    demo.button_2.click()
    assert "system prompt is empty" in demo.errors.message
    demo.system_box.value = SYSTEM + " Please" * 200  # past the 96-token context
    demo.button_2.click()
    assert "context" in demo.errors.message
    assert len(demo.state.history) == 1 and demo.engine.prefix_cache.stats() == before
    demo.system_box.value = SYSTEM
    demo.button_2.click()
    assert demo.errors.message == "" and demo.state.error == "" and demo.state.last.loaded > 0


def test_a_cache_budget_too_small_is_reported(small_model, small_tokenizer):
    demo = PrefixCacheDemo(small_model, small_tokenizer, system_prompt=SYSTEM, questions=QUESTIONS, page_size=4,
                           capacity_tokens=8)
    demo.button_1.click()
    assert "capacity_tokens" in demo.errors.message and not demo.state.history


def test_a_refused_request_1_keeps_the_cache_and_history(demo):
    demo.send_request_1()
    demo.send_request_2()
    engine, history = demo.engine, list(demo.state.history)
    demo.question_1_box.value = "Where? " * 100  # past the 96-token context
    assert demo.send_request_1() is None and "context" in demo.errors.message
    assert demo.engine is engine and demo.state.history == history


def test_napkin_shows_no_cache_this_engine_and_the_provider_bill(demo):
    demo.send_request_1()
    hit = demo.send_request_2()
    demo.provider_picker.value = "openai/gpt-5.5"
    bills = demo.bills(demo.sheets["openai/gpt-5.5"])
    assert [b.engine for b in bills] == [r.usage for r in demo.state.history]
    # The demo's prompts are far under GPT-5.5's 1,024-token minimum: every prompt token is plain input.
    assert bills[1].provider.usage == Usage(input_tokens=len(hit.prompt_ids), output_tokens=hit.usage.output_tokens)
    assert bills[1].engine_usd < bills[1].provider_usd == bills[1].no_cache_usd
    for amount in (bills[1].no_cache_usd, bills[1].engine_usd, bills[1].provider_usd):
        assert usd(amount * 1_000_000) in demo.napkin.value
    assert html.escape(bills[-1].explain()) in demo.napkin.value and "1,024-token minimum" in bills[-1].explain()
    demo.provider_picker.value = BREAK_SHEET
    assert demo.state.provider == BREAK_SHEET and "Claude Sonnet 4.5" in demo.napkin.value


def test_the_provider_rewrites_the_whole_system_prompt_where_the_engine_keeps_pages(small_model, small_tokenizer):
    sonnet = replace(get_sheet(BREAK_SHEET), min_cacheable_tokens=8)  # low enough for the test model's prompts
    demo = PrefixCacheDemo(small_model, small_tokenizer, system_prompt=SYSTEM, questions=QUESTIONS, page_size=4,
                           capacity_tokens=512, max_new_tokens=4, price_sheets={BREAK_SHEET: sonnet})
    demo.send_request_1()
    demo.send_request_2()
    broken = demo.break_prefix()
    first, second, third = (b.provider.usage for b in demo.bills(sonnet))
    system = len(small_tokenizer.encode_chat(chat(SYSTEM, "")[:1], add_generation_prompt=False))
    rest = [len(r.prompt_ids) - system for r in demo.state.history]
    # Request 1 writes the system turn, request 2 reads it, the broken one writes it again (the date moved).
    assert (first.cache_write_tokens, first.cache_read_tokens, first.input_tokens) == (system, 0, rest[0])
    assert (second.cache_write_tokens, second.cache_read_tokens, second.input_tokens) == (0, system, rest[1])
    assert (third.cache_write_tokens, third.cache_read_tokens, third.input_tokens) == (system, 0, rest[2])
    assert broken.loaded == broken.edit_at // 4 * 4 > 0  # this engine still loads the pages before the date


# ----- radix tree view ----------------------------------------------------------------------------

PROMPTS = {"shop": "You are a careful support assistant for an online shop.",
           "refunds": "The user asks about orders, refunds and delivery dates."}
USERS = [User("a", "acme", "shop"), User("b", "acme", "refunds"), User("c", "globex", "shop")]
ASKS = {"shop": ["Where is it?", "Answer briefly.", "Any order?"], "refunds": ["Never invent.", "Refunds?", "Dates?"]}


@pytest.fixture
def tree(small_model, small_tokenizer):
    return RadixTreeView(small_model, small_tokenizer, capacity_tokens=128, page_size=4, batch_size=3,
                         system_prompts=PROMPTS, users=USERS, questions=ASKS)


def test_batches_fill_the_tree_and_evictions_are_recorded(tree):
    for _ in range(4):
        tree.send_button.click()
    st = tree.state.stats
    assert len(tree.state.requests) == 12 and st.evictions > 0
    assert len(tree.state.evictions) == st.evictions and st.pages_in_use <= st.pages_total
    trace = tree.figure.data[0]
    assert {f"node:{v.id}" for v in tree.cache.nodes()} <= set(trace.ids)
    assert {"tenant:acme", "tenant:globex"} <= set(trace.ids) and not any(i.startswith("ghost:") for i in trace.ids)
    assert f"{st.hit_rate:.0%}" in tree.stats_html.value

    tree.evictions_toggle.value = True
    ghosts = [i for i in tree.figure.data[0].ids if i.startswith("ghost:")]
    assert len(ghosts) == len(tree.state.last_batch_evictions)
    assert set(tree.figure.data[0].parents) - {""} <= set(tree.figure.data[0].ids)  # every box hangs somewhere drawn
    assert ("evicted nothing" in tree.evictions_html.value) == (not ghosts)


def test_tenants_never_share_a_hit(tree):
    tree.send_batch()  # a (acme, shop), b (acme, refunds), c (globex, shop): c asks behind the same system prompt
    a, _, c = tree.state.requests
    assert a.loaded == 0 and c.loaded == 0
    assert {v.tenant for v in tree.cache.nodes()} == {"acme", "globex"}


def test_a_held_request_locks_its_nodes_against_eviction(tree):
    tree.pin_toggle.value = True  # nothing cached yet: refused in the view
    assert not tree.pin_toggle.value and "send a batch first" in tree.errors.message
    tree.send_batch()
    tree.pin_toggle.value = True
    locked = {v.id for v in tree.cache.nodes() if v.locked}
    assert tree.state.pinned and locked and "LOCKED" in "".join(tree.figure.data[0].labels)
    for _ in range(4):
        tree.send_batch()
    assert tree.state.stats.evictions > 0 and locked <= {v.id for v in tree.cache.nodes()}
    tree.pin_toggle.value = False
    assert not any(v.locked for v in tree.cache.nodes()) and not tree.state.pinned


def test_a_budget_too_small_for_one_prompt_shows_an_error(small_model, small_tokenizer):
    view = RadixTreeView(small_model, small_tokenizer, capacity_tokens=8, page_size=4, system_prompts=PROMPTS,
                         users=USERS, questions=ASKS)
    view.send_button.click()
    assert "capacity_tokens" in view.errors.message and not view.state.requests


# ----- check yourself -----------------------------------------------------------------------------


def test_checks_say_not_answered_for_none():
    for check in (check_loadable_tokens, check_break_penalty, check_prompt_order):
        verdict = check(None)
        assert verdict.correct is None and repr(verdict).startswith("✏️ Not answered yet.")


def test_loadable_tokens_matches_the_engine(small_model, small_tokenizer):
    engine = Engine(small_model, small_tokenizer, PrefixCache(PagePool.for_tokens(256, 16)))
    prompt = list(range(10, 74))  # 64 tokens
    engine.generate(prompt, max_new_tokens=1)
    assert engine.generate(prompt, max_new_tokens=1).cached_tokens == loadable_tokens(64, 64, 16) == 48
    other = prompt[:40] + list(range(200, 220))
    assert engine.generate(other, max_new_tokens=1).cached_tokens == loadable_tokens(40, 60, 16) == 32


def test_check_loadable_tokens():
    assert check_loadable_tokens(112).correct is True
    assert check_loadable_tokens(128).correct is False
    assert check_loadable_tokens(127).correct is False


def test_check_break_penalty_against_hand_arithmetic():
    sheet = get_sheet(BREAK_SHEET)
    by_hand = SYSTEM_TOKENS * (sheet.cache_write - sheet.cache_read) / 1_000_000
    assert break_penalty_usd(sheet) == pytest.approx(by_hand, abs=1e-12)
    assert check_break_penalty(by_hand).correct is True
    whole_request = (QUESTION_TOKENS * sheet.input + SYSTEM_TOKENS * sheet.cache_write + OUTPUT_TOKENS * sheet.output) / 1e6
    assert check_break_penalty(whole_request).correct is False
    assert check_break_penalty("0.017").correct is False


def test_check_prompt_order():
    good = ["instructions", "tool definitions", "examples", "today's date", "retrieved documents", "user message"]
    assert check_prompt_order(good).correct is True
    assert check_prompt_order(["tool definitions", "examples", "instructions", *good[3:]]).correct is True
    assert check_prompt_order(["instructions", "today's date", "tool definitions", "examples", *good[4:]]).correct is False
    assert check_prompt_order([*good[:3], "user message", "today's date", "retrieved documents"]).correct is False
    assert check_prompt_order(good[:-1]).correct is False


def test_the_demo_draws_its_colours_legend_once(small_model, small_tokenizer):
    demo = PrefixCacheDemo(small_model, small_tokenizer, system_prompt=SYSTEM, questions=QUESTIONS, page_size=4,
                           capacity_tokens=512, max_new_tokens=4)
    demo.button_1.click()
    demo.button_2.click()
    parts = [w.value for w in demo.widget.children if isinstance(w, W.HTML)]
    drawn = "".join(parts) + demo.strip._chips.value + demo.kv_rows._table.value
    assert drawn.count('class="wb-legend"') == 1
    assert TokenStrip(small_tokenizer).legend and KVRowsTable(small_tokenizer, 2).legend  # alone, each keeps its own
