"""Lesson 5's prompt lab: the breakers, one lab run, the layout replay, the view driven from Python, and its checks."""

import datetime as dt
import html
import json
from dataclasses import replace

import pytest
import torch

from workbook import BPETokenizer, Engine
from workbook.exercises.lesson5 import (check_loaded_after_change, check_openai_cached_tokens, check_seam_cached_tokens)
from workbook.lessons.prompt_lab import (BREAKERS, CURRENT, PREVIOUS, SPLIT, Draft, PromptLab, PromptTemplate, Visit,
                                        compare_layouts, drafts, insert_middle, render, workload, workload_requests)
from workbook.lessons.provider_bills import WARM_GAP_S
from workbook.pricing import Usage, cost, get_sheet
from workbook.tokenizer import first_divergence
from workbook.widgets.prompt_lab import PromptLabView
from workbook.widgets.style import usd

# Short enough for a 512-token test model; the same shape as the lesson's template.
SHORT = PromptTemplate(system="Answer briefly and politely.", tools_json='[{"name": "order", "id": 1}]',
                       policy="No refunds.\nBe polite.\nNever invent.", date_line="Date: {date}")
DATED = "<|system|>Date {{ date_string if date_string is defined else strftime_now('%d %b %Y') }}<|end|>{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
TEXT_BREAKERS = [n for n in BREAKERS if n != "token_seam"]


@pytest.fixture(scope="module")
def tok():
    """A BPE that has seen dates, so a space merges with the digits after it (as the shipped tokenizer's does)."""
    text = ["You are a careful support assistant for an online shop. Answer briefly and politely.",
            "Date: 14 Mar 2026. Date: 15 Mar 2026. Customer: Ana. Customer: Ben. No refunds. Never invent.",
            "On 14 or 15 Mar: 14, 15, (14) (15) (14) (15)."] * 5
    tokenizer = BPETokenizer.train(text, vocab_size=320, special_tokens=["<|endoftext|>", "<|system|>", "<|user|>", "<|end|>"])
    tokenizer.eos_token = "<|endoftext|>"
    tokenizer.chat_templates = {"default": "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}",
                                "dated": DATED}
    return tokenizer


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A random two-layer Llama with room for the lab's two requests (the shared fixture's context is 96)."""
    import workbook
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.3, tie_word_embeddings=False)
    folder = tmp_path_factory.mktemp("lab_llama")
    LlamaForCausalLM(config).eval().save_pretrained(folder)
    return workbook.load_model(folder, device="cpu")


@pytest.fixture
def lab(model, tok):
    return PromptLab(model, tok, capacity_tokens=1024)


def ids_of(tok, breakers=(), template=SHORT):
    before, now = drafts(template, breakers)
    engine_ids = lambda r: [i for part in ([r.text] if r.one_string else [r.static, r.dynamic]) for i in tok.encode(part)]
    return engine_ids(render(before, tok)), engine_ids(render(now, tok))


# ----- rendering ----------------------------------------------------------------------------------


def test_render_cuts_at_the_first_value_that_changes(tok):
    r = render(Draft.of(SHORT, CURRENT), tok)
    assert SPLIT not in r.text
    assert r.static.endswith("Date: ") and r.dynamic.startswith("15 Mar 2026")
    assert "# Tools" in r.static and "# Policy" in r.static and "Ben" in r.dynamic
    assert r.prompt == [r.static, r.dynamic]
    assert replace(r, one_string=True).prompt == r.text


def test_dynamic_first_puts_date_and_customer_before_the_system_prompt(tok):
    r = render(Draft.of(replace(SHORT, layout="dynamic-first"), CURRENT), tok)
    assert "# Tools" not in r.static
    assert r.dynamic.index("Customer: Ben") < r.dynamic.index(SHORT.system)


def test_a_date_string_pins_the_date_a_chat_template_stamps(tok):
    messages = [{"role": "user", "content": "hi"}]
    before = dt.date.today().strftime("%d %b %Y")
    stamped = tok.apply_chat_template(messages, template="dated")  # the machine's clock
    assert f"Date {before}" in stamped or f"Date {dt.date.today():%d %b %Y}" in stamped  # midnight may pass
    assert "Date 02 Jan 2030" in tok.apply_chat_template(messages, template="dated", date_string="02 Jan 2030")
    before, now = drafts(SHORT, ["dated_template"])
    assert "Date 14 Mar 2026" in render(before, tok).static and "Date 15 Mar 2026" in render(now, tok).static


def test_insert_middle():
    assert insert_middle("a\nb\nc\nd", "x") == "a\nb\nx\nc\nd"


# ----- breakers -----------------------------------------------------------------------------------


def test_without_breakers_the_requests_part_only_at_the_date(tok):
    cached, now = ids_of(tok)
    static = len(tok.encode(render(Draft.of(SHORT, CURRENT), tok).static))
    assert first_divergence(cached, now) == static


@pytest.mark.parametrize("name", TEXT_BREAKERS)
def test_each_breaker_moves_the_first_difference_into_the_static_part(tok, name):
    clean = first_divergence(*ids_of(tok))
    broken = first_divergence(*ids_of(tok, [name]))
    assert broken < clean


def test_the_seam_costs_exactly_the_static_part_last_token(tok):
    static = render(Draft.of(SHORT, CURRENT), tok).static
    assert tok.token_texts(tok.encode(static))[-1] == " "  # on its own, the trailing space is a token
    assert tok.token_texts(tok.encode("Date: 15"))[-1] == " 15"  # with the date after it, it is part of the date's
    assert first_divergence(*ids_of(tok, ["token_seam"])) == first_divergence(*ids_of(tok)) - 1


def test_tool_key_order_keeps_the_meaning_but_not_the_text(tok):
    before, now = drafts(SHORT, ["tool_key_order"])
    texts = render(before, tok).static, render(now, tok).static
    tools = [json.loads(t.split("# Tools\n")[1].split("\n\n")[0]) for t in texts]
    assert tools[0] == tools[1] and texts[0] != texts[1]


def test_breakers_apply_in_a_fixed_order_and_unknown_ones_are_refused():
    assert drafts(SHORT, ["user_name", "timestamp"]) == drafts(SHORT, ["timestamp", "user_name"])
    with pytest.raises(ValueError, match="Unknown breaker"):
        drafts(SHORT, ["colour"])


@pytest.mark.parametrize("changes, words", [
    (dict(tools_json="[{"), "not valid JSON"),
    (dict(tools_json='{"name": "x"}'), "JSON list"),
    (dict(date_line="Today"), "{date}"),
    (dict(system="  "), "empty"),
    (dict(layout="random"), "layout"),
])
def test_bad_templates_say_what_is_wrong(changes, words):
    with pytest.raises(ValueError, match=words):
        replace(SHORT, **changes)


# ----- one lab run --------------------------------------------------------------------------------


def test_clean_run_reuses_every_cacheable_page(lab, tok):
    r = lab.run(SHORT)
    assert r.divergence == r.static_tokens and r.loaded == r.cacheable == r.static_tokens // 16 * 16 > 0
    assert r.reused_share == 1.0 and r.recomputed == 0
    assert r.lost_to_pages == r.divergence - r.loaded < 16
    assert r.provenance[:r.loaded] == ["loaded"] * r.loaded and "invalidated" not in r.provenance


def test_a_hit_gives_the_same_logits_as_no_cache(lab, model, tok):
    r = lab.run(SHORT, ["changed_document"])
    assert r.loaded > 0
    reference = Engine(model, tok).generate(r.ids, max_new_tokens=1)
    assert torch.allclose(r.result.first_token_logits, reference.first_token_logits, atol=1e-4)


@pytest.mark.parametrize("name", TEXT_BREAKERS)
def test_each_breaker_costs_rows_and_money(lab, name):
    sonnet = get_sheet("anthropic/claude-sonnet-4-5")
    clean, broken = lab.run(SHORT), lab.run(SHORT, [name])
    assert broken.breakers == (name,)
    assert broken.loaded < clean.loaded
    assert broken.provenance.count("invalidated") == broken.recomputed > 0
    assert broken.bills(sonnet).engine_usd > clean.bills(sonnet).engine_usd


def test_seam_loses_one_token_with_pages_of_one(lab):
    lab.set_page_size(1)
    clean, seam = lab.run(SHORT), lab.run(SHORT, ["token_seam"])
    assert seam.loaded == clean.loaded - 1 == seam.divergence == seam.static_tokens - 1
    assert lab.page_size == 1


def test_sampling_settings_and_the_question_do_not_matter(lab):
    clean = lab.run(SHORT)
    for settings in (dict(temperature=1.3), dict(top_p=0.5, temperature=0.8), dict(max_new_tokens=4)):
        other = lab.run(SHORT, **settings)
        assert (other.loaded, other.divergence) == (clean.loaded, clean.divergence), settings
    lab.current = replace(CURRENT, user_message="Where are my orders?")
    assert lab.run(SHORT).loaded == clean.loaded


def test_every_run_starts_from_the_same_cache(lab):
    first = lab.run(SHORT).loaded
    lab.run(SHORT, ["timestamp", "changed_document"])
    assert lab.run(SHORT).loaded == first


def test_a_small_prompt_is_under_every_provider_minimum(lab):
    r = lab.run(SHORT, max_new_tokens=3)
    for key in ("openai/gpt-5.5", "anthropic/claude-sonnet-4-5"):
        bills = r.bills(get_sheet(key))
        assert bills.provider.usage == Usage(input_tokens=len(r.ids))  # output is left out of both bills
        assert bills.engine == replace(r.result.usage, output_tokens=0)
        assert bills.engine.cache_read_tokens == r.loaded > 0


# Sonnet 4.5's prices and rules, with a minimum low enough for the test model's short prompts.
SONNET_LOW = replace(get_sheet("anthropic/claude-sonnet-4-5"), min_cacheable_tokens=16)


def test_the_provider_reads_the_static_part_at_its_breakpoint(lab):
    r = lab.run(SHORT)
    s = r.static_tokens
    # Yesterday's request wrote the static block a minute earlier; today's reads all of it, to the token.
    assert r.bills(SONNET_LOW).provider.usage == Usage(input_tokens=len(r.ids) - s, cache_read_tokens=s)
    assert r.parts[0] + r.parts[1] == r.ids  # the two blocks are what the engine was sent


def test_a_late_edit_keeps_pages_in_the_engine_but_nothing_at_anthropic(lab):
    r = lab.run(SHORT, ["changed_document"])
    bills = r.bills(SONNET_LOW)
    assert r.loaded == r.divergence // 16 * 16 > 0  # this engine: every whole page before the edit
    # Anthropic: the marked block changed, so nothing is read and the whole static part is written again.
    assert bills.provider.usage == Usage(input_tokens=len(r.ids) - r.static_tokens, cache_write_tokens=r.static_tokens)
    assert bills.provider_usd == pytest.approx(((len(r.ids) - r.static_tokens) * 3.0 + r.static_tokens * 3.75) / 1e6)
    assert bills.engine_usd == pytest.approx(cost(replace(r.result.usage, output_tokens=0), SONNET_LOW))
    assert f"read 0, write {r.static_tokens:,}" in bills.explain()


def test_the_seam_never_reaches_the_provider(lab):
    clean, seam = lab.run(SHORT), lab.run(SHORT, ["token_seam"])
    assert seam.divergence == seam.static_tokens - 1  # the engine got one string
    assert seam.bills(SONNET_LOW).provider.usage == clean.bills(SONNET_LOW).provider.usage  # the provider two blocks


def test_same_customer_same_day_shares_more_than_the_static_part(model, tok):
    lab = PromptLab(model, tok, capacity_tokens=1024, current=Visit("Ana", "Thanks!", PREVIOUS.when))
    r = lab.run(SHORT)
    assert r.divergence > r.static_tokens and r.reused_share == 1.0 and r.recomputed == 0


# ----- the replayed workload ------------------------------------------------------------------------


def test_static_first_beats_dynamic_first_on_a_workload(model, tok):
    visits = [Visit(name, "Hi", CURRENT.when + dt.timedelta(minutes=i)) for i, name in enumerate(["Ana", "Ben", "Ana", "Chloe"])]
    runs = compare_layouts(model, tok, SHORT, visits, [SONNET_LOW.key], sheets={SONNET_LOW.key: SONNET_LOW})
    static, dynamic = runs["static-first"], runs["dynamic-first"]
    assert static.requests == dynamic.requests == 4
    assert static.hit_rate > dynamic.hit_rate
    assert static.usage.cache_read_tokens > dynamic.usage.cache_read_tokens
    prompts = [len(Engine(model, tok).prompt_ids(render(Draft.of(SHORT, v), tok).prompt)) for v in visits]
    assert static.usage.total_input_tokens == sum(prompts) == static.billed(SONNET_LOW.key).total_input_tokens
    assert static.ttft_p50_s > 0
    # Static-first: the first request writes the static part, the other three read it.
    s = len(tok.encode(render(Draft.of(SHORT, visits[0]), tok).static))
    assert static.billed(SONNET_LOW.key) == Usage(input_tokens=sum(prompts) - 4 * s, cache_write_tokens=s,
                                                  cache_read_tokens=3 * s)
    assert static.both.provider_usd(SONNET_LOW.key) < dynamic.both.provider_usd(SONNET_LOW.key)


def test_the_workload_arrives_within_a_providers_lifetime(tok):
    visits = workload()
    assert len(visits) == 12 and len({v.user_name for v in visits}) == 9
    requests = workload_requests(tok, SHORT, visits)
    assert [r.at_s for r in requests] == [i * 3 * 60.0 for i in range(12)]  # three minutes apart, under 5
    first = render(Draft.of(SHORT, visits[0]), tok)
    assert [b.cache_control for b in requests[0].blocks] == ["5m", None]
    assert list(requests[0].blocks[0].content) == tok.encode(first.static)
    assert list(requests[0].blocks[1].content) == tok.encode(first.dynamic)
    assert WARM_GAP_S < 5 * 60


# ----- the view -----------------------------------------------------------------------------------


@pytest.fixture
def view(model, tok):
    return PromptLabView(model, tok, template=SHORT)


def test_view_starts_clean_and_a_checkbox_breaks_the_hit(view):
    clean = view.state.result
    assert view.state.error == "" and clean.reused_share == 1.0 and view.state.latency_s > 0
    view.checkboxes["timestamp"].value = True
    broken = view.state.result
    assert view.state.breakers == {"timestamp"} and broken.breakers == ("timestamp",)
    assert broken.loaded < clean.loaded
    assert view.strip.state.provenance == broken.provenance and view.strip.state.ids == broken.ids
    assert f"First difference at token {broken.divergence}" in view.summary.value
    view.set_breaker("timestamp", False)
    assert view.state.breakers == set() and view.state.result.loaded == clean.loaded


def test_view_sliders_do_not_change_the_hit(view):
    loaded = view.state.result.loaded
    view.temperature_slider.value = 1.0
    view.top_p_slider.value = 0.5
    view.max_tokens_slider.value = 3
    assert view.state.temperature == 1.0 and view.state.result.result.usage.output_tokens <= 3
    assert view.state.result.loaded == loaded


def test_view_page_size_and_provider(view):
    view.page_picker.value = 4
    assert view.lab.page_size == 4 and view.state.result.page_size == 4
    result = view.state.result
    view.provider_picker.value = "openai/gpt-5.5"
    assert view.state.result is result  # prices change no tokens: nothing is re-run
    assert "GPT-5.5" in view.summary.value


def test_view_shows_this_engine_beside_what_the_provider_would_bill(model, tok):
    view = PromptLabView(model, tok, template=SHORT, price_sheets={SONNET_LOW.key: SONNET_LOW})
    view.set_breaker("changed_document")
    r = view.state.result
    bills, clean = r.bills(SONNET_LOW), view.state.baseline.bills(SONNET_LOW)
    table = view.summary.value
    assert "this engine" in table and "the provider would bill" in table
    assert f">{r.loaded:,}</td>" in table and f">{bills.provider.usage.cache_write_tokens:,}</td>" in table
    extra = usd((bills.provider_usd - clean.provider_usd) * 1_000_000)
    assert bills.provider_usd > clean.provider_usd and f">{extra}</td>" in table
    assert html.escape(bills.explain()) in table


def test_view_shows_bad_input_and_recovers(view):
    good = view.tools_box.value
    view.tools_box.value = "[{"
    assert "not valid JSON" in view.state.error and "not valid JSON" in view.errors.message
    view.tools_box.value = good
    assert view.state.error == "" and view.errors.message == ""
    view.name_box.value = " "
    assert "must not be empty" in view.errors.message


def test_view_edits_change_the_prompt(view):
    view.message_box.value = "Where are my orders?"
    assert "orders" in view.lab.tokenizer.decode(view.state.result.ids)
    view.name_box.value = "Ana"  # yesterday's customer: now the name early costs nothing
    view.set_breaker("user_name")
    assert view.state.result.recomputed == 0


# ----- check yourself -------------------------------------------------------------------------------


def test_lesson_5_checks():
    for check, right, wrong in ((check_loaded_after_change, 256, 300), (check_openai_cached_tokens, 1_408, 1_500),
                                (check_seam_cached_tokens, 0, 1_024)):
        assert check(None).correct is None
        assert check(right).correct is True and check(float(right)).correct is True
        assert check(wrong).correct is False
        assert check("many").correct is False and check(True).correct is False
