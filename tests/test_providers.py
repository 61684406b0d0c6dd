"""The provider simulator bills like the providers' documented rules; each test writes the arithmetic out."""

import pytest

import workbook
from workbook import WorkbookError
from workbook.pricing import Usage
from workbook.providers import Block, ProviderCache, Request, simulate

SONNET, GPT, GEMINI = "anthropic/claude-sonnet-4-5", "openai/gpt-5.5", "google/gemini-2.5-pro"
GPT54 = "openai/gpt-5.4"  # offers both retentions
# Sonnet 4.5: input $3, 5-minute write $3.75, 1-hour write $6, read $0.30, output $15 per million; minimum 1,024.
# GPT-5.5: input $5, cached $0.50; minimum 1,024, then 128-token steps.
# Gemini 2.5 Pro: input $1.25, cached $0.125, storage $4.50 per million per hour; minimum 2,048.


def ids(n, start=0):
    return list(range(start, start + n))


GPT_OUTPUT = workbook.pricing.get_sheet(GPT).output
SYSTEM = ids(1300)  # a 1,300-token system prompt
QUESTION = ids(50, 10_000)


def ask(at_s=0.0, system=SYSTEM, ttl="5m", output=200):
    return Request([Block(system, ttl), Block(QUESTION)], at_s=at_s, output_tokens=output)


# ----- Anthropic -------------------------------------------------------------------------------------

def test_anthropic_writes_then_reads_the_marked_prefix():
    first, second = simulate(SONNET, [ask(0), ask(60)])
    assert first.usage == Usage(input_tokens=50, cache_write_tokens=1300, output_tokens=200)
    assert first.cost_usd == pytest.approx((50 * 3 + 1300 * 3.75 + 200 * 15) / 1e6)
    assert second.usage == Usage(input_tokens=50, cache_read_tokens=1300, output_tokens=200)
    assert second.cost_usd == pytest.approx((50 * 3 + 1300 * 0.30 + 200 * 15) / 1e6)
    assert "read 1,300" in second.why


def test_an_edit_before_the_breakpoint_rewrites_the_whole_prefix_not_just_the_tail():
    edited = list(SYSTEM)
    edited[1100] = 99_999  # token 1,100 of 1,300 changes
    _, broken = simulate(SONNET, [ask(0), ask(60, system=edited)])
    assert broken.usage == Usage(input_tokens=50, cache_write_tokens=1300, output_tokens=200)  # not 1,100 read
    assert broken.cost_usd * 1e6 == pytest.approx(50 * 3 + 1300 * 3.75 + 200 * 15)  # $8,025 per million requests
    assert "miss" in broken.why


def test_each_read_renews_the_five_minute_lifetime_and_an_idle_gap_past_it_expires():
    bills = simulate(SONNET, [ask(0), ask(299), ask(598), ask(899)])  # gaps 299 s, 299 s, then 301 s
    assert [b.usage.cache_read_tokens for b in bills] == [0, 1300, 1300, 0]
    assert bills[3].usage.cache_write_tokens == 1300


def test_a_one_hour_entry_read_through_a_five_minute_breakpoint_keeps_its_hour():
    bills = simulate(SONNET, [ask(0, ttl="1h"), ask(60, ttl="5m"), ask(660, ttl="5m")])  # 600 s after the last read
    assert [b.usage.cache_read_tokens for b in bills] == [0, 1300, 1300]


def test_a_prefix_under_the_minimum_is_silently_not_cached():
    short = ids(1000)  # 1,000 + 0 tokens at the breakpoint: under Sonnet's 1,024
    bills = simulate(SONNET, [ask(0, system=short), ask(10, system=short)])
    assert all(b.usage == Usage(input_tokens=1050, output_tokens=200) for b in bills)
    assert "minimum" in bills[1].why


def turn(n, start):
    return Block(ids(n, start))


def test_a_breakpoint_moved_forward_one_turn_reads_the_previous_turn_through_the_lookback():
    one = Request([Block(ids(1100)), Block(ids(100, 5000), "5m")], at_s=0)
    two = Request([Block(ids(1100)), Block(ids(100, 5000)), Block(ids(100, 6000), "5m")], at_s=30)
    first, second = simulate(SONNET, [one, two])
    assert first.usage == Usage(cache_write_tokens=1200)
    assert second.usage == Usage(cache_read_tokens=1200, cache_write_tokens=100)  # 1,100 + 100 read; the new 100 written
    assert "1 block back" in second.why


@pytest.mark.parametrize("new_blocks, hit", [(19, True), (21, False)])
def test_the_lookback_reaches_20_block_boundaries_and_no_further(new_blocks, hit):
    cached = [Block(ids(1100)), Block(ids(100, 5000), "5m")]
    later = [Block(ids(1100)), Block(ids(100, 5000))] + [turn(10, 7000 + 10 * i) for i in range(new_blocks)]
    later[-1] = Block(later[-1].content, "5m")
    # The last breakpoint is block 1 + new_blocks; it checks its own boundary and the 19 before it.
    _, bill = simulate(SONNET, [Request(cached), Request(later, at_s=10)])
    assert bill.usage.cache_read_tokens == (1200 if hit else 0)
    assert bill.usage.cache_write_tokens == (10 * new_blocks if hit else 1200 + 10 * new_blocks)


def test_one_hour_breakpoints_come_first_and_bill_at_twice_input():
    request = Request([Block(ids(1100), "1h"), Block(ids(500, 5000), "5m"), Block(QUESTION)])
    (bill,) = simulate(SONNET, [request])
    assert bill.usage == Usage(input_tokens=50, cache_write_tokens=1600)
    assert bill.cost_usd == pytest.approx((1100 * 6.00 + 500 * 3.75 + 50 * 3) / 1e6)
    with pytest.raises(WorkbookError, match="1-hour breakpoint cannot come after"):
        simulate(SONNET, [Request([Block(ids(1100), "5m"), Block(ids(500, 5000), "1h")])])


def test_automatic_mode_puts_the_breakpoint_on_the_last_block():
    request = Request([Block(SYSTEM), Block(QUESTION)], options={"cache_control": "5m"})
    first, second = simulate(SONNET, [request, Request(request.blocks, at_s=5, options={"cache_control": "5m"})])
    assert first.usage == Usage(cache_write_tokens=1350) and second.usage == Usage(cache_read_tokens=1350)


def test_without_a_breakpoint_nothing_is_cached():
    bills = simulate(SONNET, [Request([Block(SYSTEM)]), Request([Block(SYSTEM)], at_s=1)])
    assert [b.usage for b in bills] == [Usage(input_tokens=1300)] * 2


def test_a_refused_request_changes_nothing():
    cache = ProviderCache(SONNET)
    cache.send(ask(0))
    before = {key: (e.tokens, e.used_s, e.expires_s) for key, e in cache.entries.items()}
    five = Request([Block(ids(300 * (i + 1)), "5m") for i in range(5)], at_s=100)
    with pytest.raises(WorkbookError, match="at most 4"):
        cache.send(five)
    assert {key: (e.tokens, e.used_s, e.expires_s) for key, e in cache.entries.items()} == before
    assert cache.last_s == 0 and cache.send(ask(200)).usage.cache_read_tokens == 1300


# ----- OpenAI ----------------------------------------------------------------------------------------

def test_openai_counts_1024_then_steps_of_128():
    first, second = simulate(GPT, [ask(0), ask(30)])
    assert first.usage == Usage(input_tokens=1350, output_tokens=200)  # no write premium: plain input
    assert second.usage == Usage(input_tokens=1350 - 1280, cache_read_tokens=1280, output_tokens=200)  # 1,024 + 2 x 128
    assert second.cost_usd == pytest.approx((70 * 5 + 1280 * 0.5 + 200 * GPT_OUTPUT) / 1e6)


def test_openai_caches_nothing_under_1024_shared_tokens():
    other = ids(1000) + ids(300, 50_000)
    _, bill = simulate(GPT, [ask(0), ask(30, system=other)])
    assert bill.usage.cache_read_tokens == 0 and "under the 1,024-token minimum" in bill.why


def test_openai_in_memory_retention_expires_when_idle_and_24h_retention_keeps_it():
    """"When using the in-memory policy, cached prefixes generally remain active for 5 to 10 minutes of inactivity"
    (assumed: 5); "Extended prompt cache retention keeps cached prefixes active for longer, up to a maximum of 24 hours"."""
    memory = {"prompt_cache_retention": "in_memory"}
    idle = simulate(GPT54, [Request(ask(0).blocks, 0, options=memory), Request(ask(0).blocks, 301, options=memory)])
    assert idle[1].usage.cache_read_tokens == 0 and "5m00s idle with in_memory retention" in idle[1].why
    day = {"prompt_cache_retention": "24h"}
    kept = simulate(GPT54, [Request(ask(0).blocks, 0, options=day), Request(ask(0).blocks, 3 * 3600, options=day)])
    assert kept[1].usage.cache_read_tokens == 1280


def test_openai_in_memory_entries_read_every_4_minutes_outlive_the_hour():
    """"up to a maximum of one hour" is read as one hour after the last use (the guide does not say from when; Azure's
    copy: "always removed within one hour of the cache's last use"): a prefix read every 4 minutes never expires."""
    memory = {"prompt_cache_retention": "in_memory"}
    bills = simulate(GPT54, [Request(ask().blocks, 240.0 * i, options=memory) for i in range(17)])  # 0 s ... 3,840 s
    assert [b.usage.cache_read_tokens for b in bills] == [0] + [1280] * 16


def test_openai_a_prefix_whose_head_is_gone_is_not_read_through_its_tail():
    """A cached prefix is a prefix: once its first 1,024 tokens are gone, a longer extension cached later cannot be
    read through them ("Cache hits are only possible for exact prefix matches within a prompt")."""
    cache = ProviderCache(GPT54)
    long = Request([Block(ids(2048))], 0, options={"prompt_cache_retention": "in_memory"})
    cache.send(long)
    head = next(key for key, entry in cache.entries.items() if entry.tokens == 1024)
    del cache.entries[head]  # the chunk ending at 1,024 evicted; those ending at 1,152 ... 2,048 are still there
    bill = cache.send(Request(long.blocks, 60, options=long.options))
    assert bill.usage.cache_read_tokens == 0 and bill.why.startswith("896 tokens match, under the 1,024-token minimum")


@pytest.mark.parametrize("model, asked, offered", [
    ("openai/gpt-5.5", "in_memory", "'24h'"),  # "For gpt-5.5 and gpt-5.5-pro, only 24h is supported"
    ("openai/gpt-5.4-mini", "24h", "'in_memory'"),  # not on the guide's list of models with extended retention
])
def test_openai_retention_is_what_the_model_offers(model, asked, offered):
    with pytest.raises(WorkbookError, match=f"takes prompt_cache_retention {offered}, not '{asked}'"):
        simulate(model, [Request(ask().blocks, options={"prompt_cache_retention": asked})])


def test_openai_models_with_both_retentions_default_to_24h():
    """"Organizations without Zero Data Retention enabled default to 24h" (assumed: such an organisation)."""
    bills = simulate(GPT54, [ask(0), ask(3 * 3600)])
    assert bills[1].usage.cache_read_tokens == 1280


def test_openai_requests_with_other_prompt_cache_keys_reach_other_caches():
    def keyed(at, key):
        return Request(ask().blocks, at_s=at, options={"prompt_cache_key": key})

    bills = simulate(GPT, [keyed(0, "user-a"), keyed(10, "user-b"), keyed(20, "user-a")])
    assert [b.usage.cache_read_tokens for b in bills] == [0, 0, 1280]


# ----- Google ----------------------------------------------------------------------------------------

CONTEXT = ids(3000)


def test_google_implicit_hits_cost_the_cached_price_and_are_not_guaranteed():
    requests = [Request([Block(CONTEXT), Block(QUESTION)]), Request([Block(CONTEXT), Block(ids(40, 20_000))], at_s=5)]
    sure = simulate(GEMINI, requests)
    assert sure[1].usage == Usage(input_tokens=40, cache_read_tokens=3000)
    assert sure[1].cost_usd == pytest.approx((40 * 1.25 + 3000 * 0.125) / 1e6)
    never = simulate(GEMINI, requests, implicit_hit_rate=0.0)
    assert never[1].usage == Usage(input_tokens=3040) and "not guaranteed" in never[1].why


def test_google_explicit_cache_bills_creation_storage_reads_and_a_ttl_update():
    create = Request([Block(CONTEXT, "1h"), Block(QUESTION)], at_s=0)
    read = Request([Block(CONTEXT, "1h"), Block(QUESTION)], at_s=600)
    extend = Request([Block(CONTEXT, "1h"), Block(QUESTION)], at_s=1200, options={"ttl_s": 7200})
    made, hit, extended = simulate(GEMINI, [create, read, extend])
    storage_hour = 3000 / 1e6 * 4.50  # $ per hour for 3,000 tokens
    # Created at the input price, then read by the request that uses it: "billed at a reduced rate when included in
    # subsequent prompts" (creation at the input price: Vertex AI's page; the Gemini API page is silent).
    assert made.usage == Usage(input_tokens=50, cache_write_tokens=3000, cache_read_tokens=3000)
    assert made.storage_usd == pytest.approx(storage_hour)  # the whole 1-hour TTL
    assert made.cost_usd == pytest.approx((50 * 1.25 + 3000 * 1.25 + 3000 * 0.125) / 1e6 + storage_hour)
    assert hit.usage == Usage(input_tokens=50, cache_read_tokens=3000) and hit.storage_usd == 0
    # Expiry moves from 3,600 s to 1,200 + 7,200 = 8,400 s: 4,800 s more storage.
    assert extended.storage_usd == pytest.approx(storage_hour * 4800 / 3600)


def test_google_explicit_cache_refuses_a_prefix_under_the_minimum():
    with pytest.raises(WorkbookError, match="at least 2,048"):
        simulate(GEMINI, [Request([Block(ids(1000), "1h"), Block(QUESTION)])])


# ----- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("model, requests, message", [
    (SONNET, [ask(-1)], "0 or more"),
    (SONNET, [ask(10), ask(5)], "time order"),
    ("anthropic/claude-nonexistent", [ask(0)], "claude"),
    (SONNET, [Request([Block(ids(200_001))])], "context window holds 200,000"),
    (GPT, [Request([Block(SYSTEM)], options={"cache_control": "5m"})], "options"),
    (SONNET, [Request([Block("some text")])], "tokenizer"),
    (SONNET, [Request([])], "at least one Block"),
    (SONNET, [Request([Block(SYSTEM, "10m")])], "'5m' or '1h'"),
])
def test_bad_input_gets_a_clear_error(model, requests, message):
    with pytest.raises(WorkbookError, match=message):
        simulate(model, requests)


def test_text_blocks_are_tokenized_one_block_at_a_time():
    tok = workbook.load_tokenizer("tiny")
    system, question = "You are a helpful assistant. " * 200, "Where is my order?"
    (bill,) = simulate(SONNET, [Request([Block(system, "5m"), Block(question)])], tokenizer=tok)
    assert bill.usage.cache_write_tokens == len(tok.encode(system))
    assert bill.usage.input_tokens == len(tok.encode(question))
