"""This engine's bill beside the provider's: request building, the provider replay, and both bills from one run."""

import copy
from dataclasses import replace

import pytest

from workbook import WorkbookError
from workbook.lessons.provider_bills import (WARM_GAP_S, SideBySide, as_sent_to, bill_both, careful_request,
                                             chat_request, distinct_pages, provider_bills)
from workbook.pricing import Usage, get_sheet
from workbook.providers import Block, Request, simulate

SONNET, GPT = get_sheet("anthropic/claude-sonnet-4-5"), get_sheet("openai/gpt-5.5")
GEMINI = get_sheet("google/gemini-2.5-pro")
# Sonnet 4.5: input $3, write $3.75, read $0.30, output $15 per million; minimum 1,024.
# GPT-5.5: input $5, cached $0.50; minimum 1,024, then steps of 128. Gemini 2.5 Pro: cached $0.125; minimum 2,048.


def ids(n, start=0):
    return list(range(start, start + n))


def pair(static_tokens, question_tokens=50, output_tokens=0):
    """Yesterday's and today's request: the same static part, two questions, a minute apart."""
    static = ids(static_tokens)
    return [careful_request(static, ids(question_tokens, 10_000)),
            careful_request(static, ids(question_tokens, 20_000), at_s=WARM_GAP_S, output_tokens=output_tokens)]


# ----- building requests -------------------------------------------------------------------------------


def test_careful_request_marks_the_end_of_the_static_part():
    r = careful_request("static", [1, 2], at_s=3.0, output_tokens=7)
    assert r == Request([Block("static", "5m"), Block([1, 2])], 3.0, 7)


def test_only_anthropic_requests_keep_their_breakpoints():
    r = careful_request([1, 2], [3])
    assert as_sent_to("anthropic", r) is r
    for provider in ("openai", "google"):
        sent = as_sent_to(provider, r)
        assert [b.cache_control for b in sent.blocks] == [None, None]
        assert [b.content for b in sent.blocks] == [[1, 2], [3]] and (sent.at_s, sent.output_tokens) == (0.0, 0)


def test_chat_request_cuts_where_the_system_turn_ends(small_tokenizer):
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Where are my orders?"}]
    r = chat_request(small_tokenizer, messages, at_s=5.0, output_tokens=9)
    system = small_tokenizer.encode_chat(messages[:1], add_generation_prompt=False)
    assert r.blocks[0] == Block(system, "5m")
    assert r.blocks[0].content + r.blocks[1].content == small_tokenizer.encode_chat(messages)
    assert (r.at_s, r.output_tokens) == (5.0, 9)


def test_chat_request_refuses_a_template_that_renders_the_system_turn_twice_differently(small_tokenizer):
    odd = copy.copy(small_tokenizer)
    odd.chat_templates = {"default": "{% if messages|length > 1 %}<|user|>{% endif %}"
                                     "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"}
    with pytest.raises(WorkbookError, match="no static part"):
        chat_request(odd, [{"role": "system", "content": "Hi"}, {"role": "user", "content": "Yo"}])


# ----- the provider's side ----------------------------------------------------------------------------


def test_provider_bills_follow_each_providers_rule():
    anthropic = provider_bills(SONNET, pair(1_300))
    assert anthropic[0].usage == Usage(input_tokens=50, cache_write_tokens=1_300)
    assert anthropic[1].usage == Usage(input_tokens=50, cache_read_tokens=1_300)
    # OpenAI: no breakpoint, the shared 1,300 tokens counted as 1,024 + 2 x 128 = 1,280.
    openai = provider_bills(GPT, pair(1_300))
    assert openai[1].usage == Usage(input_tokens=1_350 - 1_280, cache_read_tokens=1_280)
    # Google: the breakpoint is dropped, so this is implicit caching (no write, no storage), not an explicit cache.
    google = provider_bills(GEMINI, pair(2_100))
    assert google[0].usage == Usage(input_tokens=2_150) and google[1].usage == Usage(input_tokens=50,
                                                                                      cache_read_tokens=2_100)
    assert google[0].storage_usd == google[1].storage_usd == 0.0


def test_side_by_side_prices_both_usages_at_one_sheet():
    engine = Usage(input_tokens=60, cache_write_tokens=0, cache_read_tokens=1_296, output_tokens=200)
    [_, bill] = provider_bills(SONNET, pair(1_300, question_tokens=56, output_tokens=200))
    both = SideBySide(SONNET, engine, bill)
    assert both.engine_usd == pytest.approx((60 * 3 + 1_296 * 0.30 + 200 * 15) / 1e6)
    assert both.provider_usd == pytest.approx((56 * 3 + 1_300 * 0.30 + 200 * 15) / 1e6)
    assert both.no_cache_usd == pytest.approx((1_356 * 3 + 200 * 15) / 1e6)
    assert both.explain().startswith("This engine loaded 1,296 of the 1,356 prompt tokens from its cache; Claude "
                                     "Sonnet 4.5 would read 1,300, write 0 and bill 56 as plain input: read 1,300")
    assert "minimum" not in both.explain()


def test_explain_says_when_the_whole_prompt_is_under_the_minimum():
    short = Request([Block(list(range(300)))], at_s=0)
    bill = simulate(GPT.key, [short, Request(short.blocks, at_s=10)])[1]
    text = SideBySide(GPT, Usage(input_tokens=44, cache_read_tokens=256), bill).explain()
    assert bill.usage == Usage(input_tokens=300)
    assert text.endswith("the whole prompt (300 tokens) is under the 1,024-token minimum.")


# ----- both bills from one run --------------------------------------------------------------------------

LOW = {SONNET.key: replace(SONNET, min_cacheable_tokens=16), GPT.key: replace(GPT, min_cacheable_tokens=16)}


def test_bill_both_shows_where_the_engine_and_anthropic_part_ways(small_model, small_tokenizer):
    static, edited = ids(48, 100), ids(40, 100) + [7] + ids(7, 141)  # one token changed at position 40
    requests = [careful_request(static, ids(8, 200)), careful_request(static, ids(8, 210), at_s=30.0),
                careful_request(edited, ids(8, 220), at_s=60.0, output_tokens=5)]
    both = bill_both(small_model, small_tokenizer, requests, [SONNET.key], page_size=16, sheets=LOW)
    engine = [b.engine for b in both.bills[SONNET.key]]
    provider = [b.provider.usage for b in both.bills[SONNET.key]]
    # Request 1: 56 tokens, nothing cached; the engine stores 56 // 16 = 3 full pages, Anthropic the 48 marked tokens.
    assert engine[0] == Usage(input_tokens=8, cache_write_tokens=48)
    assert provider[0] == Usage(input_tokens=8, cache_write_tokens=48)
    # Request 2: both read the 48 static tokens (3 pages; the last prompt token is never loaded anyway).
    assert engine[1] == Usage(input_tokens=8, cache_read_tokens=48) and provider[1] == engine[1]
    # Request 3: the engine keeps the 2 pages before token 40 and stores the 1 new full page; Anthropic's
    # marked block changed, so it reads nothing and writes all 48 again. Both bill the request's 5 output tokens.
    assert engine[2] == Usage(input_tokens=56 - 32 - 16, cache_write_tokens=16, cache_read_tokens=32, output_tokens=5)
    assert provider[2] == Usage(input_tokens=8, cache_write_tokens=48, output_tokens=5)
    assert [r.prompt_ids for r in both.results] == [r.blocks[0].content + r.blocks[1].content for r in requests]
    assert both.engine_usd(SONNET.key) == pytest.approx(sum(b.engine_usd for b in both.bills[SONNET.key]))
    assert both.provider_usd(SONNET.key) == pytest.approx((8 * 3 + 48 * 3.75 + 8 * 3 + 48 * 0.30 + 8 * 3 + 48 * 3.75
                                                           + 5 * 15) / 1e6)


def test_bill_both_tokenizes_text_blocks_one_by_one_like_the_provider(small_model, small_tokenizer):
    requests = [careful_request("You are a careful support assistant. ", "Where are my orders?"),
                careful_request("You are a careful support assistant. ", "Can I get a refund?", at_s=60.0)]
    both = bill_both(small_model, small_tokenizer, requests, [SONNET.key, GPT.key])
    for result, request in zip(both.results, requests):
        assert result.prompt_ids == [i for block in request.blocks for i in small_tokenizer.encode(block.content)]
    for key in (SONNET.key, GPT.key):
        billed = [b.provider.usage.total_input_tokens for b in both.bills[key]]
        assert billed == [len(r.prompt_ids) for r in both.results]


def test_distinct_pages_counts_shared_pages_once():
    a, b = ids(32), ids(32) + ids(20, 500)
    assert distinct_pages([a, b], page_size=16) == 3  # a: pages 1 and 2; b: the same two, then one more (52 // 16 = 3)
    assert distinct_pages([a, ids(32, 900)], page_size=16) == 4
    assert distinct_pages([ids(15)], page_size=16) == 0
