"""Issue 26: each provider rule billed as its documentation says; every test quotes the sentence it is written from.

Pages (stored copies read 2026-12-06): Anthropic https://platform.claude.com/docs/en/build-with-claude/prompt-caching
and /context-windows; OpenAI https://developers.openai.com/api/docs/guides/prompt-caching and the GPT-5.4 and GPT-5.5
model pages; Google https://ai.google.dev/gemini-api/docs/caching and /pricing. Where a page is silent the test names
the simulator's assumption (a constant in `workbook.providers`).
"""

import pytest

from workbook import WorkbookError
from workbook.pricing import Usage, load_price_sheets, provider_usage, request_cost
from workbook.providers import (ASSUMED_FIRST_TOKEN_S, GEMINI_IMPLICIT_IDLE_S, LOOKBACK_BLOCKS, Block, ProviderCache,
                                Request, simulate)

SONNET, OPUS, GPT55, GPT54, PRO = ("anthropic/claude-sonnet-4-5", "anthropic/claude-opus-4-6", "openai/gpt-5.5",
                                   "openai/gpt-5.4", "google/gemini-2.5-pro")
# Sonnet 4.5: input $3, 5-minute write $3.75, 1-hour write $6, read $0.30, output $15 per million; minimum 1,024.


def ids(n, start=0):
    return list(range(start, start + n))


SYSTEM, QUESTION = ids(1300), ids(50, 10_000)


def reads(bills):
    return [b.usage.cache_read_tokens for b in bills]


# ----- Anthropic: lifetimes ------------------------------------------------------------------------------------

def test_a_five_minute_entry_read_through_a_one_hour_breakpoint_stays_five_minutes():
    """"You'll be charged for: 1. Cache read tokens for A. 2. 1-hour cache write tokens for (B - A)": a 1-hour
    breakpoint at A writes nothing, so the entry read there keeps its own 5-minute lifetime."""
    def at(t, ttl):
        return Request([Block(SYSTEM, ttl), Block(QUESTION)], at_s=t)

    bills = simulate(SONNET, [at(0, "5m"), at(60, "1h"), at(1860, "1h")])
    assert reads(bills) == [0, 1300, 0]
    assert bills[1].cost_usd == pytest.approx((1300 * 0.30 + 50 * 3) / 1e6)  # no 1-hour write billed
    assert bills[2].usage.cache_write_tokens == 1300  # 30 minutes later the 5-minute entry is gone: a fresh write
    assert bills[2].cost_usd == pytest.approx((1300 * 6.00 + 50 * 3) / 1e6)  # now at the 1-hour price


def test_reads_every_4_minutes_keep_a_five_minute_entry_for_20_minutes():
    """"The cache is refreshed for no additional cost each time the cached content is used.\""""
    bills = simulate(SONNET, [Request([Block(SYSTEM, "5m"), Block(QUESTION)], at_s=240.0 * i) for i in range(6)])
    assert reads(bills) == [0] + [1300] * 5  # 0 s ... 1,200 s
    assert all(b.usage.cache_write_tokens == 0 for b in bills[1:])


def test_mixed_lifetimes_bill_a_read_then_one_hour_then_five_minute_writes():
    """"Position A: The token count at the highest cache hit ... Position B: ... the highest 1-hour cache_control block
    after A ... Position C: ... the last cache_control block. You'll be charged for: 1. Cache read tokens for A.
    2. 1-hour cache write tokens for (B - A). 3. 5-minute cache write tokens for (C - B).\""""
    tools = Block(ids(1100), "1h", part="tools")
    system = Block(ids(400, 5000), part="system")
    first = Request([tools, system, Block(QUESTION)])
    second = Request([tools, replace_ttl(system, "1h"), Block(ids(300, 20_000), "5m")], at_s=10)
    _, bill = simulate(SONNET, [first, second])
    assert bill.usage == Usage(cache_read_tokens=1100, cache_write_tokens=700)  # A = 1,100, B = 1,500, C = 1,800
    assert bill.cost_usd == pytest.approx((1100 * 0.30 + 400 * 6.00 + 300 * 3.75) / 1e6)


def replace_ttl(block, ttl):
    return Block(block.content, ttl, block.part, block.type)


def test_a_one_hour_breakpoint_after_a_five_minute_one_is_refused():
    """"Cache entries with longer TTL must appear before shorter TTLs".\""""
    with pytest.raises(WorkbookError, match="1-hour breakpoint cannot come after a 5-minute one"):
        simulate(SONNET, [Request([Block(SYSTEM, "5m"), Block(QUESTION, "1h")])])


# ----- Anthropic: automatic caching ----------------------------------------------------------------------------

def test_automatic_caching_with_another_ttl_on_the_last_block_is_a_400():
    """"If the last block has an explicit cache_control with a different TTL, the API returns a 400 error.\""""
    cache = ProviderCache(SONNET)
    with pytest.raises(WorkbookError, match="answers 400"):
        cache.send(Request([Block(SYSTEM), Block(QUESTION, "5m")], options={"cache_control": "1h"}))
    assert cache.entries == {}


def test_automatic_caching_with_the_same_ttl_on_the_last_block_is_a_no_op():
    """"If the last block already has an explicit cache_control with the same TTL, automatic caching is a no-op.\""""
    marked = simulate(SONNET, [Request([Block(SYSTEM), Block(QUESTION, "5m")], options={"cache_control": "5m"})])
    plain = simulate(SONNET, [Request([Block(SYSTEM), Block(QUESTION, "5m")])])
    assert marked[0].usage == plain[0].usage == Usage(cache_write_tokens=1350)


def test_automatic_caching_takes_one_of_the_four_slots():
    """"If 4 explicit block-level breakpoints already exist, the API returns a 400 error (no slots left for automatic
    caching).\""""
    four = [Block(ids(300, 1000 * i), "5m") for i in range(4)] + [Block(QUESTION)]
    simulate(SONNET, [Request(four)])  # four explicit: fine
    with pytest.raises(WorkbookError, match="at most 4"):
        simulate(SONNET, [Request(four, options={"cache_control": "5m"})])


# ----- Anthropic: what invalidates which part -------------------------------------------------------------------

def parts_request(at_s=0.0, tools=ids(1100), **options):
    """Tools (marked), a system prompt (marked), then two message turns (the last marked)."""
    return Request([Block(tools, "5m", part="tools"), Block(ids(300, 5000), "5m", part="system"),
                    Block(ids(200, 6000)), Block(ids(100, 7000), "5m")], at_s=at_s, options=options or None)


@pytest.mark.parametrize("change, kept, part", [
    ({"tool_choice": {"type": "any"}}, 1400, "messages"),  # "Changes to tool_choice parameter only affect message blocks"
    ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, 1400, "messages"),  # assumed: messages only
    ({"web_search": True}, 1100, "system and messages"),  # "Enabling/disabling web search modifies the system prompt"
    ({"citations": True}, 1100, "system and messages"),  # "Enabling/disabling citations modifies the system prompt"
    ({"speed": "fast"}, 1100, "system and messages"),  # speed "invalidates system and message caches"
    ({"effort": "low"}, 1400, "messages"),  # "the same model-specific effect ... as thinking parameters": assumed
])
def test_a_changed_setting_invalidates_its_level_and_every_later_one(change, kept, part):
    """"the cache follows the hierarchy: tools → system → messages. Changes at each level invalidate that level and
    all subsequent levels." The prefix up to the last part still valid is read; the rest is written again."""
    _, bill = simulate(SONNET, [parts_request(0), parts_request(10, **change)])
    assert bill.usage == Usage(cache_read_tokens=kept, cache_write_tokens=1700 - kept)
    assert f"{next(iter(change))} changed since the previous request" in bill.why and part in bill.why
    _, same = simulate(SONNET, [parts_request(0, **change), parts_request(10, **change)])
    assert same.usage == Usage(cache_read_tokens=1700)  # the same setting twice: a full hit


def test_a_changed_tool_definition_invalidates_everything():
    """"Modifying tool definitions (names, descriptions, parameters) invalidates the entire cache".\""""
    edited = ids(1100)
    edited[5] = 99_999
    _, bill = simulate(SONNET, [parts_request(0), parts_request(10, tools=edited)])
    assert bill.usage == Usage(cache_write_tokens=1700)


def test_adding_an_image_invalidates_the_messages():
    """"Adding/removing images anywhere in the prompt affects message blocks".\""""
    system = Block(SYSTEM, "5m", part="system")
    before = Request([system, Block(ids(200, 6000), "5m")])
    after = Request([system, Block(ids(200, 6000)), Block(ids(85, 9000), "5m", type="image")], at_s=10)
    _, bill = simulate(SONNET, [before, after])
    assert bill.usage == Usage(cache_read_tokens=1300, cache_write_tokens=285)  # not the 1,500 written before


def test_blocks_out_of_render_order_are_refused():
    with pytest.raises(WorkbookError, match="render order"):
        simulate(SONNET, [Request([Block(SYSTEM, part="system"), Block(ids(100), part="tools")])])


# ----- Anthropic: concurrency and the lookback ----------------------------------------------------------------

def test_requests_sent_together_both_write():
    """"For concurrent requests, note that a cache entry only becomes available after the first response begins."
    The page gives no time: the simulator assumes ASSUMED_FIRST_TOKEN_S, and says so."""
    ask = [Request([Block(SYSTEM, "5m"), Block(QUESTION)], at_s=t) for t in (0.0, 0.5, ASSUMED_FIRST_TOKEN_S + 0.1)]
    bills = simulate(SONNET, ask)
    assert [b.usage.cache_write_tokens for b in bills] == [1300, 1300, 0] and reads(bills) == [0, 0, 1300]
    assert "response has not begun" in bills[1].why and "assumed 1 s" in bills[1].why
    assert reads(simulate(SONNET, ask, first_token_s=0.0)) == [0, 1300, 1300]


def growing(new_blocks, kind="text"):
    """A cached 1,200-token prefix, then `new_blocks` blocks of 10 tokens, the last one marked."""
    later = [Block(ids(1100)), Block(ids(100, 5000))] + [Block(ids(10, 7000 + 10 * i), type=kind)
                                                        for i in range(new_blocks)]
    later[-1] = Block(later[-1].content, "5m", type=kind)
    return [Request([Block(ids(1100)), Block(ids(100, 5000), "5m")]), Request(later, at_s=10)]


def test_a_change_25_blocks_before_the_breakpoint_is_out_of_the_lookback():
    """"The lookback window is 20 blocks. The system checks at most 20 positions per breakpoint, counting the
    breakpoint itself as the first." A prefix cached 25 blocks back is not found, and the bill says why."""
    assert LOOKBACK_BLOCKS == 20
    _, bill = simulate(SONNET, growing(25))
    assert bill.usage == Usage(cache_write_tokens=1450)
    assert "beyond the lookback of 20 positions" in bill.why


def test_a_run_of_tool_results_counts_as_one_position():
    """"On the Claude API, a run of consecutive tool_use blocks counts as one position, and so does a run of
    consecutive tool_result blocks".\""""
    _, bill = simulate(SONNET, growing(25, "tool_result"))
    assert bill.usage == Usage(cache_read_tokens=1200, cache_write_tokens=250)


# ----- Anthropic: context windows ---------------------------------------------------------------------------------

def test_sonnet_45_refuses_250k_tokens_and_opus_46_bills_them_at_standard_prices():
    """"Other Claude models, including Claude Sonnet 4.5, have a 200k-token context window"; Opus 4.6 has 1M and
    "long-context requests are billed at standard pricing".\""""
    prompt = Request([Block(ids(250_000))])
    cache = ProviderCache(SONNET)
    with pytest.raises(WorkbookError, match="context window holds 200,000 input tokens"):
        cache.send(prompt)
    assert cache.entries == {} and cache.last_s == 0
    (bill,) = simulate(OPUS, [prompt])
    assert bill.cost_usd == pytest.approx(250_000 * 5.0 / 1e6)


# ----- OpenAI -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shared, cached", [(1023, 0), (1024, 1024), (1151, 1024), (1152, 1152), (1153, 1152)])
def test_openai_hits_start_at_1024_and_grow_in_steps_of_128(shared, cached):
    """"caching is enabled automatically for prompts that are 1,024 tokens or longer"; "Cache hits occur in increments
    of 128 tokens.\""""
    first = Request([Block(ids(shared)), Block(QUESTION)])
    second = Request([Block(ids(shared)), Block(ids(50, 20_000))], at_s=10)
    assert simulate(GPT54, [first, second])[1].usage.cache_read_tokens == cached


def test_gpt_55_bills_a_prompt_over_272k_at_the_long_context_tier():
    """"For GPT-5.5, prompts with >272K input tokens are priced at 2x input and 1.5x output for the full session";
    read here as the whole request, cached input at 2x as the pricing page prints for GPT-5.4."""
    (bill,) = simulate(GPT55, [Request([Block(ids(300_000))], output_tokens=1000)])
    assert bill.cost_usd == pytest.approx((300_000 * 10.0 + 1000 * 45.0) / 1e6)  # $3.045, not $1.53
    at_limit, past = (simulate(GPT55, [Request([Block(ids(n))], output_tokens=1000)])[0] for n in (272_000, 272_001))
    assert at_limit.cost_usd == pytest.approx((272_000 * 5.0 + 1000 * 30.0) / 1e6)
    assert past.cost_usd == pytest.approx((272_001 * 10.0 + 1000 * 45.0) / 1e6)
    long = [Request([Block(ids(300_000)), Block(QUESTION)]), Request([Block(ids(300_000)), Block(QUESTION)], at_s=5)]
    hit = simulate(GPT55, long)[1]
    assert hit.usage.cache_read_tokens == 300_032  # 2,344 x 128 of the 300,050 tokens
    assert hit.cost_usd == pytest.approx((300_032 * 1.0 + 18 * 10.0) / 1e6)  # reads at 2 x $0.50


def test_the_long_context_tier_applies_to_one_request_not_to_a_sum():
    sheet = load_price_sheets()[GPT54]
    short = Usage(input_tokens=200_000)
    assert request_cost(short, sheet) == pytest.approx(0.5)
    assert request_cost(short + short, sheet) == pytest.approx(400_000 * 5.0 / 1e6)  # as one request of 400K
    with pytest.raises(WorkbookError, match="context window"):
        provider_usage(load_price_sheets()["openai/gpt-5.4-mini"], 272_001, 0, 0)


# ----- Google -------------------------------------------------------------------------------------------------

CONTEXT = ids(3000)


def explicit(at_s, **options):
    return Request([Block(CONTEXT, "1h"), Block(QUESTION)], at_s=at_s, options=options or None)


def test_gemini_ttl_update_can_shorten_the_cache():
    """"You can set a new ttl or expire_time for a cache"; "There are no minimum or maximum bounds on the TTL". A cache
    set to 60 s is gone 10 minutes later, and storage is billed for the shorter time."""
    made, shortened, later = simulate(PRO, [explicit(0), explicit(100, ttl_s=60), explicit(700)])
    storage_s = 3000 / 1e6 * 4.50 / 3600
    assert shortened.usage.cache_read_tokens == 3000
    assert shortened.storage_usd == pytest.approx(-(3600 - 160) * storage_s)  # expiry moved from 3,600 s to 160 s
    assert made.storage_usd + shortened.storage_usd == pytest.approx(160 * storage_s)
    assert later.usage.cache_write_tokens == 3000 and "created" in later.why


def test_gemini_storage_for_a_partial_hour_is_pro_rata():
    """Storage is "billed based on the TTL duration of cached token count" (assumed pro rata to the second)."""
    (bill,) = simulate(PRO, [Request([Block(CONTEXT, "1h"), Block(QUESTION)], options={"ttl_s": 5400})])
    assert bill.storage_usd == pytest.approx(1.5 * 3000 / 1e6 * 4.50)


def test_gemini_implicit_entries_expire_after_an_assumed_idle_time():
    """"Try to send requests with similar prefix in a short amount of time": the page gives no lifetime, so the
    simulator assumes GEMINI_IMPLICIT_IDLE_S idle, a setting."""
    def ask(t):
        return Request([Block(CONTEXT), Block(ids(40, 20_000 + int(t)))], at_s=t)

    gap = GEMINI_IMPLICIT_IDLE_S
    bills = simulate(PRO, [ask(0), ask(gap - 1), ask(2 * gap + 1)])
    assert reads(bills) == [0, 3000, 0] and "assumed lifetime" in bills[2].why
    assert reads(simulate(PRO, [ask(0), ask(3600)], implicit_ttl_s=7200)) == [0, 3000]


def test_gemini_pro_bills_a_prompt_over_200k_at_the_long_context_tier():
    """"$1.25, prompts <= 200k tokens $2.50, prompts > 200k tokens" (input); output $10 / $15; caching $0.125 / $0.25."""
    (bill,) = simulate(PRO, [Request([Block(ids(250_000))], output_tokens=1000)])
    assert bill.cost_usd == pytest.approx((250_000 * 2.50 + 1000 * 15.0) / 1e6)


def test_a_created_cache_counts_once_towards_the_long_context_threshold():
    """The creating request bills its cached tokens twice (created, then read) but sends them once: a 150,000-token
    cache with a 10,000-token question is a 160,000-token prompt, under the 200k tier."""
    (bill,) = simulate(PRO, [Request([Block(ids(150_000), "1h"), Block(ids(10_000, 500_000))])])
    assert bill.usage.total_input_tokens == 310_000
    storage = 150_000 / 1e6 * 4.50
    assert bill.cost_usd == pytest.approx((10_000 * 1.25 + 150_000 * 1.25 + 150_000 * 0.125) / 1e6 + storage)
