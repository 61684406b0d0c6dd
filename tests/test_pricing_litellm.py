"""Our price sheets, checked against litellm's price map for the models both carry.

litellm's `model_prices_and_context_window.json` is the most used open-source table of these
prices: proxies and cost dashboards bill from it, and many hands keep it current. It is not the
authority (the providers' pricing pages are, and each sheet names its page), but it is a second,
independent reading of those pages, so a disagreement means one of the two copies is wrong.

Compared per model, in USD per million tokens (litellm stores USD per token): input, output,
cache read, cache write (and Anthropic's 1-hour write), the smallest cacheable prompt where
litellm records one, the context window and the long-context tier. A difference we keep on purpose goes in KNOWN_DIFFERENCES with its reason,
and the test then checks that the difference is still there, so the note cannot go stale.

Nothing here imports litellm (importing it may fetch a fresh price map from GitHub): the test
reads the copy of the map that ships inside the installed package, and skips when litellm is not
installed. It is not a dependency of the workbook; `pip install litellm` to run these tests.
"""

from __future__ import annotations

import importlib.util
import json
import re
from functools import cache
from pathlib import Path

import pytest

from workbook.pricing import PriceSheet, load_price_sheets

_SPEC = importlib.util.find_spec("litellm")  # finds the package without importing (running) it
if _SPEC is None or not _SPEC.submodule_search_locations:
    pytest.skip("litellm is not installed, so there is no price map to compare with (pip install litellm)",
                allow_module_level=True)
LITELLM_MAP = Path(_SPEC.submodule_search_locations[0]) / "model_prices_and_context_window_backup.json"
M = 1_000_000

# Our "provider/model" -> litellm's key. The undated aliases carry the same numbers as the dated
# snapshots (claude-sonnet-4-5-20250929, gpt-5.4-2026-03-05, ...). Google's models use the
# "gemini/" keys, the Gemini API our sheet prices; litellm's bare "gemini-2.5-pro" is Vertex AI.
# Every one of our models is in litellm's map (checked with litellm 1.110.2).
LITELLM_KEYS = {
    "anthropic/claude-opus-4-6": "claude-opus-4-6",
    "anthropic/claude-sonnet-4-5": "claude-sonnet-4-5",
    "anthropic/claude-haiku-4-5": "claude-haiku-4-5",
    "openai/gpt-5.5": "gpt-5.5",
    "openai/gpt-5.4": "gpt-5.4",
    "openai/gpt-5.4-mini": "gpt-5.4-mini",
    "openai/gpt-4.1": "gpt-4.1",
    "google/gemini-2.5-pro": "gemini/gemini-2.5-pro",
    "google/gemini-2.5-flash": "gemini/gemini-2.5-flash",
    "google/gemini-3.1-pro-preview": "gemini/gemini-3.1-pro-preview",
}
LITELLM_PROVIDER = {"anthropic": "anthropic", "openai": "openai", "google": "gemini"}

# Differences that are there on purpose: {(our key, field): why, with source}. Empty today: with
# litellm 1.110.2 every compared number agrees. Two gaps are not differences and need no entry:
# - cache write for OpenAI and Gemini: litellm has no `cache_creation_input_token_cost` for them,
#   and its cost calculator then bills written tokens at the input price (litellm_core_utils/
#   llm_cost_calc/utils.py, `input_rate_for_missing_cache_rates`), which is exactly our sheet's
#   cache_write = input. `litellm_prices` below applies the same rule, so the values are compared.
# - Gemini's explicit-cache storage (storage_per_mtok_hour): litellm has no field for it; not compared.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {}


@cache
def litellm_map() -> dict:
    """The price map that ships inside the installed litellm package (read, never downloaded)."""
    return json.loads(LITELLM_MAP.read_text(encoding="utf-8"))


def litellm_prices(entry: dict, tier: str = "") -> dict[str, float | None]:
    """One litellm entry's prices in USD per million tokens; `tier` is a suffix like "_above_272k_tokens"."""
    def per_million(name: str) -> float | None:
        value = entry.get(name + tier)
        return None if value is None else value * M

    prices = {"input": per_million("input_cost_per_token"), "output": per_million("output_cost_per_token"),
              "cache_read": per_million("cache_read_input_token_cost"),
              "cache_write": per_million("cache_creation_input_token_cost"),
              "cache_write_1h": per_million("cache_creation_input_token_cost_above_1hr")}  # Anthropic only
    if prices["cache_write"] is None:  # no write premium: litellm bills a cache write as input
        prices["cache_write"] = prices["input"]
    return prices


def long_context_tier(entry: dict) -> str | None:
    """litellm's long-context suffix for this entry ("_above_200k_tokens"), or None when it has no tier."""
    tiers = [m.group(1) for name in entry if (m := re.fullmatch(r"input_cost_per_token(_above_\d+k_tokens)", name))]
    assert len(tiers) <= 1, f"several long-context tiers {tiers}: this test compares one"
    return tiers[0] if tiers else None


def check(our_key: str, field: str, ours, theirs) -> None:
    """Ours must equal litellm's (prices to 1e-9 relative), unless KNOWN_DIFFERENCES says why they differ."""
    same = ours is theirs if ours is None or theirs is None else ours == pytest.approx(theirs, rel=1e-9)
    why = KNOWN_DIFFERENCES.get((our_key, field))
    if why is None:
        assert same, f"{our_key} {field}: ours {ours}, litellm {theirs}. Check the provider's page, then fix or explain"
    else:
        assert not same, f"{our_key} {field} now agrees with litellm ({ours}): drop its KNOWN_DIFFERENCES entry"


@pytest.fixture(scope="module")
def sheets() -> dict[str, PriceSheet]:
    return load_price_sheets()


def test_every_model_is_mapped(sheets):
    """Each of our models is compared (or listed here as absent from litellm), and each note names a real pair."""
    assert set(LITELLM_KEYS) == set(sheets)
    assert all(key in LITELLM_KEYS for key, _ in KNOWN_DIFFERENCES)


@pytest.mark.parametrize("our_key", sorted(LITELLM_KEYS))
def test_prices_match_litellm(sheets, our_key):
    """Input, output, cache read and write (5-minute and 1-hour), and the smallest cacheable prompt."""
    sheet, entry = sheets[our_key], litellm_map()[LITELLM_KEYS[our_key]]
    assert entry["litellm_provider"] == LITELLM_PROVIDER[sheet.provider], "mapped to another provider's entry"
    for field, theirs in litellm_prices(entry).items():
        check(our_key, field, getattr(sheet, field), theirs)
    if "prompt_cache_min_tokens" in entry:  # litellm records it for Anthropic and most Gemini models
        check(our_key, "min_cacheable_tokens", sheet.min_cacheable_tokens, int(entry["prompt_cache_min_tokens"]))


@pytest.mark.parametrize("our_key", sorted(LITELLM_KEYS))
def test_context_window_matches_litellm(sheets, our_key):
    """The most input tokens one request may send: litellm's `max_input_tokens`."""
    sheet = sheets[our_key]
    check(our_key, "context_window", sheet.context_window, litellm_map()[LITELLM_KEYS[our_key]].get("max_input_tokens"))


@pytest.mark.parametrize("our_key", sorted(LITELLM_KEYS))
def test_long_context_tier_matches_litellm(sheets, our_key):
    """The prices of a whole request whose input passes the threshold (litellm's `..._above_200k_tokens` keys)."""
    sheet, entry = sheets[our_key], litellm_map()[LITELLM_KEYS[our_key]]
    ours, tier = sheet.long_context, long_context_tier(entry)
    theirs_above = None if tier is None else int(re.search(r"\d+", tier).group()) * 1000
    check(our_key, "long_context.above_tokens", None if ours is None else ours.above_tokens, theirs_above)
    if ours is not None and tier is not None:
        for field, theirs in litellm_prices(entry, tier).items():
            check(our_key, f"long_context.{field}", getattr(ours, field, None), theirs)
