"""Price sheets and napkin math, checked against hand calculations and the seed articles' figures.

Every expected number below is worked out by hand in the comment next to it (prices in USD per
million tokens), never copied from the code's output.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import sys
from pathlib import Path

import pytest

from workbook.pricing import (DEFAULT_PRICING_PATH, PriceSheet, Usage, break_even_reuses, cacheable_tokens, cost,
                              get_sheet, load_price_sheets, provider_usage, repeat_costs, storage_break_even_rate,
                              storage_cost, traffic_cost)

M = 1_000_000


@pytest.fixture(scope="module")
def sheets() -> dict[str, PriceSheet]:
    return load_price_sheets()


@pytest.fixture(scope="module")
def gpt55(sheets) -> PriceSheet:
    # The seed articles price their examples with GPT-5.5: $5/M input, $0.50/M cached input, $30/M output.
    return sheets["openai/gpt-5.5"]


# ---------------------------------------------------------------------------------------------
# The seed's 12-token demo (seed 002: "Per 1M repeats: $60 cold $24 cached, saving $36")


def test_seed_napkin_math_12_token_prompt_8_cached(gpt55):
    assert (gpt55.input, gpt55.cache_read) == (5.0, 0.5)
    cold = Usage(input_tokens=12)
    hit = Usage(input_tokens=4, cache_read_tokens=8)
    # Cold: 12 tokens x $5/M = $0.00006 a request -> $60 per million requests.
    assert cost(cold, gpt55) * M == pytest.approx(60.0)
    # Hit: 4 x $5/M + 8 x $0.50/M = $0.000020 + $0.000004 = $0.000024 -> $24 per million.
    assert cost(hit, gpt55) * M == pytest.approx(24.0)
    assert (cost(cold, gpt55) - cost(hit, gpt55)) * M == pytest.approx(36.0)


def test_repeat_costs_counts_the_first_write(gpt55):
    r = repeat_costs(gpt55, prompt_tokens=12, cached_tokens=8, repeats=M)
    assert r.cold_usd == pytest.approx(60.0)
    # First request writes 8 tokens (OpenAI charges writes at the input price): 12 x $5/M = $0.00006;
    # the other 999,999 read: 999,999 x $0.000024 = $23.999976. Total $24.000036, the seed's "$24".
    assert r.cached_usd == pytest.approx(24.000036)
    assert round(r.cached_usd, 2) == 24.00
    assert r.saved_fraction == pytest.approx(1 - 24.000036 / 60)


def test_a_real_provider_would_not_cache_the_12_token_demo(gpt55):
    # OpenAI caches nothing under 1,024 tokens, so the toy prompt pays full price every time:
    # the seed's $24 holds only for a long prompt with the same proportions.
    usage = provider_usage(gpt55, prompt_tokens=12, reusable_prefix_tokens=8, output_tokens=0)
    assert usage == Usage(input_tokens=12)
    assert cost(usage, gpt55) * M == pytest.approx(60.0)


# ---------------------------------------------------------------------------------------------
# The seed's Codex token-usage table (seed 002)
#   Token usage: total=647,414 input=615,643 (+ 7,505,280 cached) output=31,771 (reasoning 4,583)

CODEX = Usage(input_tokens=615_643, cache_read_tokens=7_505_280, output_tokens=31_771)


def test_codex_line_is_self_consistent():
    # Codex's "total" leaves cached tokens out: 615,643 + 31,771 = 647,414.
    assert CODEX.input_tokens + CODEX.output_tokens == 647_414
    # The seed's "all input at full price" row: 615,643 + 7,505,280 = 8,120,923.
    assert CODEX.total_input_tokens == 8_120_923


def test_codex_table_with_cache_is_right(gpt55):
    # 615,643 x 5 / 1e6 = 3.078215 -> $3.08; 7,505,280 x 0.5 / 1e6 = 3.75264 -> $3.75;
    # 31,771 x 30 / 1e6 = 0.95313 -> $0.95; total 7.783985 -> $7.78, as the seed says.
    assert cost(Usage(input_tokens=615_643), gpt55) == pytest.approx(3.078215)
    assert cost(Usage(cache_read_tokens=7_505_280), gpt55) == pytest.approx(3.75264)
    assert cost(Usage(output_tokens=31_771), gpt55) == pytest.approx(0.95313)
    assert cost(CODEX, gpt55) == pytest.approx(7.783985)
    assert round(cost(CODEX, gpt55), 2) == 7.78


def test_codex_table_without_cache_is_a_cent_off_in_the_seed(gpt55):
    # 8,120,923 x 5 / 1e6 = 40.604615 and 31,771 x 30 / 1e6 = 0.95313: exact total 41.557745,
    # which rounds to $41.56. The seed prints $41.55 because it added the already-rounded rows
    # (40.60 + 0.95). The saving ($33.77, 81%) survives either way.
    no_cache = Usage(input_tokens=CODEX.total_input_tokens, output_tokens=CODEX.output_tokens)
    total = cost(no_cache, gpt55)
    assert total == pytest.approx(41.557745)
    assert round(total, 2) == 41.56
    assert round(total, 2) != 41.55  # the seed's figure
    saved = total - cost(CODEX, gpt55)
    assert round(saved, 2) == 33.77  # 41.557745 - 7.783985 = 33.77376
    assert round(100 * saved / total) == 81


# ---------------------------------------------------------------------------------------------
# Seed 001's figures: "2,000 token system prompt, 100,000 requests/day: $6/day ($2,160/year)"


def test_seed_001_daily_cost_is_wrong_by_a_factor_of_100(sheets):
    sonnet = sheets["anthropic/claude-sonnet-4-5"]  # $3/M input, the Sonnet price the article's code uses
    t = traffic_cost(Usage(input_tokens=2_000), sonnet, requests_per_day=100_000)
    # 2,000 x 100,000 = 200M tokens a day; 200 x $3 = $600 a day, 365 x $600 = $219,000 a year.
    assert t.per_day_usd == pytest.approx(600.0)
    assert t.per_year_usd == pytest.approx(219_000.0)
    assert t.per_day_usd != pytest.approx(6.0)
    # Even taken on its own terms the seed's year is off: 6 x 365 = 2,190, not 2,160 (= 6 x 360).
    assert 6 * 365 == 2_190


def test_seed_001_first_call_is_not_full_price(sheets):
    # Seed 001's code comment says the first call "pays for 50,000 cache_creation_input_tokens (full price)".
    # A 5-minute write costs 1.25 x input: 50,000 x $3.75/M = $0.1875, not 50,000 x $3/M = $0.15.
    sonnet = sheets["anthropic/claude-sonnet-4-5"]
    first = provider_usage(sonnet, prompt_tokens=50_020, reusable_prefix_tokens=50_000, output_tokens=0, cache_hit=False)
    assert first == Usage(input_tokens=20, cache_write_tokens=50_000)
    assert cost(Usage(cache_write_tokens=50_000), sonnet) == pytest.approx(0.1875)
    # Its "90% discount" on reads is right: 50,000 x $0.30/M = $0.015, a tenth of $0.15.
    assert cost(Usage(cache_read_tokens=50_000), sonnet) == pytest.approx(0.015)


# ---------------------------------------------------------------------------------------------
# Provider rules applied to real token counts


@pytest.mark.parametrize(
    "prefix, expected",
    [(0, 0), (1_023, 0), (1_024, 1_024), (1_151, 1_024), (1_152, 1_152), (1_999, 1_920), (10_000, 9_984)],
)
def test_openai_hits_come_in_128_token_steps(gpt55, prefix, expected):
    # Nothing below 1,024; above it, floor to a multiple of 128 (1,999 // 128 = 15 -> 1,920;
    # 10,000 // 128 = 78 -> 9,984). The 1,920 cached tokens in the seed's McGinnis anecdote is 15 x 128.
    assert cacheable_tokens(gpt55, prefix) == expected


def test_openai_provider_usage_hit_and_miss(gpt55):
    hit = provider_usage(gpt55, prompt_tokens=3_000, reusable_prefix_tokens=2_000, output_tokens=100)
    # 2,000 // 128 = 15 -> 1,920 read; 3,000 - 1,920 = 1,080 uncached.
    assert hit == Usage(input_tokens=1_080, cache_read_tokens=1_920, output_tokens=100)
    # 1,080 x 5 + 1,920 x 0.5 + 100 x 30 = 5,400 + 960 + 3,000 = 9,360 -> $0.00936.
    assert cost(hit, gpt55) == pytest.approx(0.00936)
    miss = provider_usage(gpt55, prompt_tokens=3_000, reusable_prefix_tokens=2_000, output_tokens=100, cache_hit=False)
    # No write premium at OpenAI: a miss costs exactly what no caching costs, 3,000 x 5 + 100 x 30 = 18,000 -> $0.018.
    assert cost(miss, gpt55) == pytest.approx(0.018)
    assert cost(miss, gpt55) == pytest.approx(cost(Usage(input_tokens=3_000, output_tokens=100), gpt55))


def test_anthropic_minimum_is_per_model(sheets):
    sonnet, opus = sheets["anthropic/claude-sonnet-4-5"], sheets["anthropic/claude-opus-4-6"]
    # A 3,000-token prefix clears Sonnet 4.5's 1,024 floor but not Opus 4.6's 4,096.
    assert provider_usage(sonnet, 3_500, 3_000, 0) == Usage(input_tokens=500, cache_read_tokens=3_000)
    assert provider_usage(opus, 3_500, 3_000, 0) == Usage(input_tokens=3_500)
    # Below the floor a miss writes nothing, so there is no write premium either.
    assert provider_usage(sonnet, 1_100, 1_023, 0, cache_hit=False) == Usage(input_tokens=1_100)
    # Anthropic caches to the breakpoint, to the token: no 128-step rounding.
    assert cacheable_tokens(sonnet, 1_025) == 1_025


def test_anthropic_write_premium_and_ttl(sheets):
    opus = sheets["anthropic/claude-opus-4-6"]
    write = provider_usage(opus, prompt_tokens=5_000, reusable_prefix_tokens=4_096, output_tokens=0, cache_hit=False)
    assert write == Usage(input_tokens=904, cache_write_tokens=4_096)
    # 5-minute write: 904 x 5 + 4,096 x 6.25 = 4,520 + 25,600 = 30,120 -> $0.03012.
    assert cost(write, opus) == pytest.approx(0.03012)
    # 1-hour write: 904 x 5 + 4,096 x 10 = 4,520 + 40,960 = 45,480 -> $0.04548.
    assert cost(write, opus, ttl="1h") == pytest.approx(0.04548)


# ---------------------------------------------------------------------------------------------
# Break-even, storage, traffic


def test_break_even_anthropic_5m_and_1h(sheets):
    sonnet = sheets["anthropic/claude-sonnet-4-5"]
    # Per cached token, in units of the base price: write 1.25, read 0.1.
    # 0 reads: 1.25 > 1 (caching loses); 1 read: 1.25 + 0.1 = 1.35 <= 2 (it wins) -> 1.
    assert break_even_reuses(sonnet) == 1
    # 1-hour write 2.0: 1 read: 2.1 > 2; 2 reads: 2.2 <= 3 -> 2.
    assert break_even_reuses(sonnet, ttl="1h") == 2


def test_break_even_matches_repeat_costs(sheets):
    sonnet = sheets["anthropic/claude-sonnet-4-5"]
    k = break_even_reuses(sonnet)
    # One write plus k reads (k + 1 requests) must be no dearer than k + 1 cold requests; one fewer read must be dearer.
    assert repeat_costs(sonnet, 2_000, 2_000, k + 1).saved_usd >= 0
    assert repeat_costs(sonnet, 2_000, 2_000, k).saved_usd < 0


def test_break_even_without_write_premium_is_immediate(gpt55):
    assert break_even_reuses(gpt55) == 0


def test_break_even_with_gemini_storage_counts_the_creating_requests_read(sheets):
    pro = sheets["google/gemini-2.5-pro"]
    # Per token, one hour: create 1.25 + its own read 0.125 + storage 4.50 + k x 0.125 versus (1 + k) x 1.25.
    # k = 4: 5.875 + 0.5 = 6.375 > 6.25; k = 5: 5.875 + 0.625 = 6.5 <= 7.5.
    assert break_even_reuses(pro, storage_hours=1) == 5
    assert storage_break_even_rate(pro) == 4  # an hour kept alive after the first: storage 4.50 <= 4 x 1.125
    assert break_even_reuses(pro) == 0  # without storage a Gemini write costs the plain input price


def test_break_even_never_when_reads_are_not_cheaper():
    odd = PriceSheet(provider="x", model="y", input=1.0, cache_read=1.0, cache_write=1.25, output=1.0,
                     min_cacheable_tokens=0, source="https://example.invalid", checked="2026-01-01")
    assert break_even_reuses(odd) is None


def test_storage_cost(sheets):
    # 100,000 tokens kept 2 hours at $4.50 per million per hour: 0.1 x 4.5 x 2 = $0.90.
    assert storage_cost(sheets["google/gemini-2.5-pro"], 100_000, 2) == pytest.approx(0.90)
    # Anthropic and OpenAI bill no storage.
    assert storage_cost(sheets["anthropic/claude-haiku-4-5"], 100_000, 2) == 0.0


def test_traffic_cost_scales_per_request_by_days(gpt55):
    usage = Usage(input_tokens=1_000, output_tokens=200)
    # 1,000 x 5 + 200 x 30 = 11,000 -> $0.011 a request; x 10,000 = $110 a day; x 365 = $40,150.
    t = traffic_cost(usage, gpt55, requests_per_day=10_000)
    assert t.per_request_usd == pytest.approx(0.011)
    assert t.per_day_usd == pytest.approx(110.0)
    assert t.per_year_usd == pytest.approx(40_150.0)


# ---------------------------------------------------------------------------------------------
# Usage


def test_usage_adds_and_sums():
    a = Usage(1, 2, 3, 4)
    b = Usage(10, 20, 30, 40)
    assert a + b == Usage(11, 22, 33, 44)
    assert sum([a, b, a]) == Usage(12, 24, 36, 48)
    assert (a + b).total_input_tokens == 11 + 22 + 33


def test_usage_accepts_numpy_integers_as_plain_ints():
    np = pytest.importorskip("numpy")
    u = Usage(input_tokens=np.int64(7), cache_read_tokens=np.int32(3))
    assert u == Usage(7, 0, 3, 0) and type(u.input_tokens) is int and type(u.cache_read_tokens) is int


def test_cost_is_additive_over_usages(gpt55):
    a, b = Usage(100, 0, 2_000, 50), Usage(300, 1_024, 0, 10)
    assert cost(a + b, gpt55) == pytest.approx(cost(a, gpt55) + cost(b, gpt55))


# ---------------------------------------------------------------------------------------------
# Bad input: a ValueError that says what was wrong


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda s: provider_usage(s, -1, 0, 0), "prompt_tokens must be a whole number >= 0, not -1"),
        (lambda s: provider_usage(s, 10, 0, -5), "output_tokens must be a whole number >= 0, not -5"),
        (lambda s: provider_usage(s, 100, 200, 0), "longer than the prompt"),
        (lambda s: provider_usage(s, 10.5, 0, 0), "whole number"),
        (lambda s: Usage(input_tokens=-3), "Usage.input_tokens must be a whole number >= 0, not -3"),
        (lambda s: cost(Usage(cache_write_tokens=1), s, ttl="1h"), "1-hour"),
        (lambda s: repeat_costs(s, 10, 5, 0), "repeats"),
        (lambda s: repeat_costs(s, 10, 11, 3), "cannot exceed"),
        (lambda s: storage_cost(s, 10, -1), "hours"),
        (lambda s: traffic_cost(Usage(1), s, -5), "requests_per_day"),
    ],
)
def test_bad_input_raises_value_error_with_a_reason(gpt55, call, words):
    with pytest.raises(ValueError, match=words):
        call(gpt55)


def test_unknown_model_id_names_the_known_ones(sheets):
    with pytest.raises(ValueError, match="No price sheet for 'gpt-9'") as info:
        get_sheet("gpt-9", sheets)
    assert "openai/gpt-5.5" in str(info.value)
    assert get_sheet("gpt-5.5", sheets).key == "openai/gpt-5.5"  # a bare unambiguous name works


def test_long_prompt_bills_at_its_tier_and_past_the_window_is_refused(sheets):
    pro = sheets["google/gemini-2.5-pro"]
    assert pro.for_prompt(200_000) is pro  # "prompts <= 200k tokens": the base prices
    tier = pro.for_prompt(200_001)
    assert (tier.input, tier.cache_read, tier.output, tier.storage_per_mtok_hour) == (2.50, 0.25, 15.0, 4.50)
    with pytest.raises(ValueError, match="context window holds 1,048,576"):
        provider_usage(pro, 1_048_577, 10_000, 0)


@pytest.mark.parametrize("change, words", [
    ({"context_window": 100_000}, "starts past the context window"),
    ({"context_window": 0}, "context_window must be a whole number >= 1, not 0"),
    ({"prompt_cache_retention": ["forever"]}, "prompt_cache_retention lists"),
    ({"long_context": {"above_tokens": 10, "input": -1, "cache_read": 0, "cache_write": 0, "output": 0}}, "negative"),
])
def test_a_bad_long_context_window_or_retention_is_reported(tmp_path, change, words):
    entry = {"input": 1, "cache_read": 0.1, "cache_write": 1, "output": 2, "min_cacheable_tokens": 1024,
             "source": "s", "checked": "2026-12-06", "long_context": {"above_tokens": 200_000, "input": 2,
                                                                       "cache_read": 0.2, "cache_write": 2, "output": 3},
             **change}
    path = tmp_path / "pricing.json"
    path.write_text(json.dumps({"providers": {"p": {"rules": {}, "models": {"m": entry}}}}), encoding="utf-8")
    with pytest.raises(ValueError, match=words):
        load_price_sheets(path)


def test_broken_price_file_is_reported(tmp_path):
    bad = tmp_path / "pricing.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_price_sheets(bad)
    missing = {"providers": {"p": {"rules": {}, "models": {"m": {"input": 1, "cache_read": 0.1, "cache_write": 1,
                                                                   "source": "https://x", "checked": "2026-01-01"}}}}}
    bad.write_text(json.dumps(missing), encoding="utf-8")
    with pytest.raises(ValueError, match="missing 'output'"):
        load_price_sheets(bad)
    with pytest.raises(ValueError, match="No price sheet file"):
        load_price_sheets(tmp_path / "nope.json")


# ---------------------------------------------------------------------------------------------
# The shipped price file keeps the providers' documented rules and names its sources


@pytest.fixture(scope="module")
def raw() -> dict:
    return json.loads(DEFAULT_PRICING_PATH.read_text(encoding="utf-8"))


def test_price_file_is_dated_and_sourced(raw, sheets):
    as_of = dt.date.fromisoformat(raw["as_of"])
    assert "change" in raw["note"] and "update" in raw["note"].lower()
    assert set(raw["providers"]) == {"anthropic", "openai", "google"}
    for provider, block in raw["providers"].items():
        assert 3 <= len(block["models"]) <= 4, provider
        for model, entry in block["models"].items():
            assert entry["source"].startswith("https://"), (provider, model)
            assert dt.date.fromisoformat(entry["checked"]) <= as_of
            if entry.get("page_date") is not None:
                assert dt.date.fromisoformat(entry["page_date"]) <= as_of
    assert len(sheets) == sum(len(b["models"]) for b in raw["providers"].values())


def test_anthropic_prices_follow_the_documented_multipliers(sheets):
    # 5-minute write 1.25x, 1-hour write 2x, read 0.1x the base input price.
    for s in (v for v in sheets.values() if v.provider == "anthropic"):
        assert s.cache_write == pytest.approx(1.25 * s.input), s.key
        assert s.cache_write_1h == pytest.approx(2.0 * s.input), s.key
        assert s.cache_read == pytest.approx(0.1 * s.input), s.key
        assert s.cache_step == 1 and s.storage_per_mtok_hour == 0


def test_openai_rules(sheets):
    for s in (v for v in sheets.values() if v.provider == "openai"):
        assert s.cache_write == s.input, s.key  # no write premium on these models
        assert s.cache_read < s.input
        assert (s.min_cacheable_tokens, s.cache_step) == (1_024, 128)
    # The discount depends on the model: 90% on GPT-5.5, 75% on GPT-4.1.
    assert sheets["openai/gpt-5.5"].cache_read / sheets["openai/gpt-5.5"].input == pytest.approx(0.10)
    assert sheets["openai/gpt-4.1"].cache_read / sheets["openai/gpt-4.1"].input == pytest.approx(0.25)


def test_google_rules(sheets):
    for s in (v for v in sheets.values() if v.provider == "google"):
        assert s.cache_write == s.input, s.key  # creating a cache bills the standard input price
        assert s.storage_per_mtok_hour > 0
        assert s.cache_read == pytest.approx(0.1 * s.input)


# ---------------------------------------------------------------------------------------------
# The module stays light: standard library only


def test_pricing_module_imports_only_the_standard_library():
    root = Path(__file__).resolve().parent.parent / "workbook"
    for module in ("pricing.py", "errors.py"):
        tree = ast.parse((root / module).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top == "__future__", f"{module} imports {name}"
