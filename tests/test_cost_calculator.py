"""Lesson 7's cost calculator: arrivals, the replayed day against direct `simulate` runs, the cliffs, and the view."""

import statistics

import pytest

from workbook.lessons.calculator import (BURST_SPACING_S, MAX_REQUESTS, MIN_REQUESTS, TOKEN_BUDGET, CalculatorError,
                                         Traffic, arrival_times, estimate_day, replay, replay_count)
from workbook.pricing import Usage, cost, hits_with_ttl, load_price_sheets
from workbook.providers import ASSUMED_FIRST_TOKEN_S, Block, Request, simulate
from workbook.widgets import CostCalculatorView
from workbook.widgets.style import usd

SONNET, GPT, PRO = "anthropic/claude-sonnet-4-5", "openai/gpt-5.4", "google/gemini-2.5-pro"  # GPT-5.4: both retentions


@pytest.fixture(scope="module")
def sheets():
    return load_price_sheets()


def direct_bills(model, static, dynamic, output, times, mark=None, options=None):
    """Bills of requests built here by hand: a shared static block, then fresh ids unlike any static id."""
    shared = list(range(static))
    requests = [Request([Block(shared, mark), Block([-(i * dynamic + j + 1) for j in range(dynamic)])], at_s=at,
                        output_tokens=output, options=options) for i, at in enumerate(times)]
    return simulate(model, requests)


# ----- arrivals and the replay window -------------------------------------------------------------


def test_arrivals_fixed_random_and_bursty():
    assert arrival_times(Traffic(requests_per_day=144), 3) == [0.0, 600.0, 1200.0]
    poisson = Traffic(requests_per_day=1_440, arrivals="poisson")
    times = arrival_times(poisson, 5_000)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert statistics.fmean(gaps) == pytest.approx(60.0, rel=0.05) and min(gaps) < 6 and max(gaps) > 300
    assert arrival_times(poisson, 50) == times[:50]  # seeded: the same traffic gives the same day
    assert arrival_times(Traffic(requests_per_day=1_440, arrivals="poisson", seed=1), 50) != times[:50]
    # 32 a day in bursts of 4: a burst every 3 hours, its requests BURST_SPACING_S apart.
    bursts = arrival_times(Traffic(requests_per_day=32, arrivals="bursty", burst_size=4), 6)
    assert bursts == [0.0, BURST_SPACING_S, 2 * BURST_SPACING_S, 3 * BURST_SPACING_S, 3 * 3600.0,
                      3 * 3600.0 + BURST_SPACING_S]


def test_replay_count_keeps_to_the_budgets():
    assert replay_count(Traffic(requests_per_day=144)) == 144  # the whole day
    assert replay_count(Traffic(static_tokens=10, dynamic_tokens=0, requests_per_day=10**6)) == MAX_REQUESTS + 1
    long = replay_count(Traffic(static_tokens=50_000, dynamic_tokens=10_000, requests_per_day=10**6))
    assert long - 1 == max(MIN_REQUESTS, TOKEN_BUDGET // 60_000) < 100  # long prompts: fewer requests, still quick
    bursty = replay_count(Traffic(static_tokens=1_000, requests_per_day=10**6, arrivals="bursty", burst_size=7))
    assert (bursty - 1) % 7 == 0  # whole bursts after the first request


# ----- the day against direct simulate runs ------------------------------------------------------------


@pytest.mark.parametrize("ttl", ["5m", "1h"])
def test_whole_day_is_what_simulate_bills(sheets, ttl):
    day = estimate_day(Traffic(lifetime=ttl), sheets=sheets)  # 5,000 static + 100 dynamic, 300 out, every 10 min
    bills = direct_bills(SONNET, 5_000, 100, 300, [i * 600.0 for i in range(144)], mark=ttl)
    assert day.whole_day and len(day.bills) == 144
    assert day.cached_usd == pytest.approx(sum(b.cost_usd for b in bills))
    assert day.uncached_usd == pytest.approx(144 * cost(Usage(input_tokens=5_100, output_tokens=300), sheets[SONNET]))
    assert day.hits == sum(b.usage.cache_read_tokens > 0 for b in bills)
    assert day.break_even == {"5m": 1, "1h": 2}[ttl]
    # 10-minute gaps: the 5-minute entry is always gone, the 1-hour one always there.
    assert (day.hit_rate, day.saved_usd < 0) == ((0.0, True) if ttl == "5m" else (143 / 144, False))


def test_a_busy_day_is_its_first_requests_then_their_average(sheets):
    traffic = Traffic(model_key=GPT, lifetime="in_memory", static_tokens=2_048, dynamic_tokens=50,
                      requests_per_day=100_000, arrivals="poisson")
    day = estimate_day(traffic, sheets=sheets)
    n = len(day.bills)
    assert not day.whole_day and n == replay_count(traffic) < 100_000
    bills = direct_bills(GPT, 2_048, 50, 300, arrival_times(traffic, n))
    rest = statistics.fmean(b.cost_usd for b in bills[1:])
    assert day.cached_usd == pytest.approx(bills[0].cost_usd + 99_999 * rest)
    assert day.hit_rate == pytest.approx(99_999 / 100_000)  # only the day's first request misses
    assert f"first {n:,} requests" in day.replay_note() and "written again" not in day.replay_note()  # no age limit


def test_random_gaps_hit_where_fixed_gaps_of_the_same_mean_never_do(sheets):
    fixed = estimate_day(Traffic(), sheets=sheets)
    random_gaps = estimate_day(Traffic(arrivals="poisson"), sheets=sheets)
    times = random_gaps.arrivals_s
    # A gap of at most 5 minutes hits, unless the previous request wrote the entry and its response had not begun.
    hits = hits_with_ttl([t / 60 for t in times], 5)
    for i in range(1, len(times)):
        hits[i] = hits[i] and not (not hits[i - 1] and times[i] - times[i - 1] < ASSUMED_FIRST_TOKEN_S)
    assert hits != hits_with_ttl([t / 60 for t in times], 5)  # this seed's day has such a pair
    assert fixed.hits == 0 and random_gaps.hits == sum(hits)
    assert random_gaps.cached_usd < random_gaps.uncached_usd < fixed.cached_usd


def test_google_explicit_cache_bills_storage(sheets):
    day = estimate_day(Traffic(model_key=PRO, lifetime="1h", static_tokens=10_000, requests_per_day=96), sheets=sheets)
    bills = direct_bills(PRO, 10_000, 100, 300, [i * 900.0 for i in range(96)], mark="1h")
    # Reads do not renew an explicit cache: created at 0, read at 15, 30, 45 and 60 minutes, created again at 75.
    assert day.whole_day and sum(b.usage.cache_write_tokens > 0 for b in bills) == 20
    assert day.storage_usd == pytest.approx(sum(b.storage_usd for b in bills)) and day.storage_usd > 0
    assert day.cached_usd == pytest.approx(sum(b.cost_usd for b in bills))
    assert day.break_even == 5  # a creation, its own read and one hour of storage


# ----- the cliffs ----------------------------------------------------------------------------------


def test_minimum_length_cliff(sheets):
    day = estimate_day(Traffic(static_tokens=1_000, requests_per_day=1_440), sheets=sheets)
    assert [c.kind for c in day.cliffs] == ["minimum"]
    assert "1,000 tokens" in day.cliffs[0].message and "1,024" in day.cliffs[0].message
    assert day.hits == 0 and day.cached_usd == pytest.approx(day.uncached_usd) and day.reads_per_write is None
    # At the minimum the cliff is gone and the same traffic hits.
    assert estimate_day(Traffic(static_tokens=1_024, requests_per_day=1_440), sheets=sheets).cliffs == []


def test_openai_step_cliff(sheets):
    day = estimate_day(Traffic(model_key=GPT, lifetime="24h", static_tokens=1_100, requests_per_day=1_440),
                       sheets=sheets)
    assert [c.kind for c in day.cliffs] == ["step"]
    assert "1,024 of the 1,100" in day.cliffs[0].message and "last 76" in day.cliffs[0].message
    assert {b.usage.cache_read_tokens for b in day.bills[1:]} == {1_024}
    assert estimate_day(Traffic(model_key=GPT, lifetime="24h", static_tokens=1_152, requests_per_day=1_440),
                        sheets=sheets).cliffs == []


def test_expiry_cliff_between_bursts(sheets):
    # 4 requests 30 s apart every 3 hours: each burst after the first starts with an expired 5-minute entry.
    day = estimate_day(Traffic(requests_per_day=32, arrivals="bursty", burst_size=4), sheets=sheets)
    assert [c.kind for c in day.cliffs] == ["expiry"]
    assert day.cliffs[0].message.startswith("7 of the day's 32") and "bursts start 3h00m apart" in day.cliffs[0].message
    assert day.hits == 24
    assert estimate_day(Traffic(requests_per_day=32, arrivals="bursty", lifetime="1h"), sheets=sheets).hits == 24


def test_expiry_cliff_from_an_age_limit(sheets):
    # A Gemini explicit cache lives its TTL however often it is read: a request a minute re-creates it hourly.
    traffic = Traffic(model_key=PRO, lifetime="1h", static_tokens=2_048, requests_per_day=1_440)
    day = estimate_day(traffic, sheets=sheets, token_budget=10**7)
    bills = direct_bills(PRO, 2_048, 100, 300, [i * 60.0 for i in range(1_440)], mark="1h")
    misses = sum(b.usage.cache_write_tokens > 0 for b in bills[1:])
    assert misses == 23  # created at 0 s, expired after 3,600 s, created again at 3,660 s, 7,320 s, ... 84,180 s
    assert day.whole_day and day.hits == 1_439 - misses
    (expiry,) = day.cliffs
    assert expiry.kind == "expiry" and expiry.message.startswith(f"{misses} of the day's 1,440")
    assert f"{misses} because an explicit cache's TTL runs out" in expiry.message
    assert "every 1h00m" in estimate_day(traffic, sheets=sheets, token_budget=100_000).replay_note()


def test_openai_in_memory_entries_read_every_minute_never_expire(sheets):
    """OpenAI: in-memory prefixes "remain active for 5 to 10 minutes of inactivity, up to a maximum of one hour"; the
    hour is read as one hour after the last use (Azure's copy: "within one hour of the cache's last use"), so a
    request a minute keeps the prefix all day and the calculator names no cliff."""
    day = estimate_day(Traffic(model_key=GPT, lifetime="in_memory", static_tokens=2_048, requests_per_day=1_440),
                       sheets=sheets, token_budget=10**7)
    assert day.whole_day and day.hits == 1_439 and day.cliffs == []


def test_the_retention_asked_for_is_the_one_replayed_not_the_models_default(sheets):
    """GPT-5.4 takes both retentions and defaults to "24h": asking for "in_memory" must not replay its default."""
    assert sheets[GPT].retention[0] == "24h"
    ten_minutes = {lifetime: estimate_day(Traffic(model_key=GPT, lifetime=lifetime), sheets=sheets)
                   for lifetime in ("in_memory", "24h")}
    kinds = {lifetime: [c.kind for c in day.cliffs] for lifetime, day in ten_minutes.items()}
    assert ten_minutes["in_memory"].hits == 0 and "expiry" in kinds["in_memory"]
    assert ten_minutes["24h"].hits == 143 and "expiry" not in kinds["24h"]


def test_a_request_sent_before_the_first_response_begins_misses(sheets):
    """Anthropic: "a cache entry only becomes available after the first response begins" (assumed 1 s after sending):
    a burst 0.5 s apart writes the prefix twice, and the calculator says why."""
    traffic = Traffic(static_tokens=5_000, requests_per_day=3 * 86_400 * 2 // 3, arrivals="bursty", burst_size=3)
    times = arrival_times(traffic, 3)
    assert times[1] - times[0] == pytest.approx(0.5)
    first, second, third = direct_bills(SONNET, 5_000, 100, 300, times, mark="5m")
    assert (second.usage.cache_write_tokens, third.usage.cache_read_tokens) == (5_000, 5_000)
    assert "response has not begun" in second.why
    (expiry,) = estimate_day(traffic, sheets=sheets).cliffs
    assert "before the response that wrote the prefix began" in expiry.message


@pytest.mark.parametrize("traffic, message", [
    (Traffic(lifetime="24h"), "offers the lifetimes"),
    (Traffic(static_tokens=-1), "static_tokens must be a whole number"),
    (Traffic(static_tokens=0, dynamic_tokens=0), "prompt is empty"),
    (Traffic(requests_per_day=0), "requests_per_day"),
    (Traffic(arrivals="sometimes"), "arrivals is one of"),
    (Traffic(model_key=PRO, lifetime="1h", static_tokens=1_000), "at least 2,048 tokens"),  # the simulator's refusal
])
def test_bad_traffic_is_refused_with_a_reason(sheets, traffic, message):
    with pytest.raises(ValueError, match=message):
        estimate_day(traffic, sheets=sheets)


def test_replay_runs_past_a_day():
    times, bills = replay(Traffic(requests_per_day=24), 48)
    assert len(bills) == 48 and times[-1] == 47 * 3600.0
    assert isinstance(CalculatorError("x"), ValueError)


# ----- the view ------------------------------------------------------------------------------------


@pytest.fixture
def view(sheets):
    return CostCalculatorView(price_sheets=sheets)


def test_view_shows_the_days_numbers(view, sheets):
    s = view.state
    assert s.error == "" and s.latency_s > 0
    page = view.summary.value
    bills = direct_bills(SONNET, 5_000, 100, 300, [i * 600.0 for i in range(144)], mark="5m")
    assert usd(sum(b.cost_usd for b in bills)) in page and usd(s.estimate.uncached_usd) in page
    assert "0.0% of requests" in page and "after 1 read per write" in page and "Lifetime expiry" in page
    view.lifetime_picker.value = "1h"
    page = view.summary.value
    assert s.traffic.lifetime == "1h" and f"{143 / 144:.1%} of requests" in page and "after 2 reads" in page
    assert "No cliff" in page


def test_view_sliders_replay_the_day(view):
    view.requests_slider.value = 480
    view.arrivals_picker.value = "poisson"
    view.static_slider.value = 2_000
    t = view.state.traffic
    assert (t.requests_per_day, t.arrivals, t.static_tokens) == (480, "poisson", 2_000)
    bills = direct_bills(SONNET, 2_000, 100, 300, arrival_times(t, 480), mark="5m")
    assert view.state.estimate.cached_usd == pytest.approx(sum(b.cost_usd for b in bills))
    assert usd(view.state.estimate.cached_usd) in view.summary.value
    assert view.burst_slider.disabled
    view.arrivals_picker.value = "bursty"
    assert not view.burst_slider.disabled and "bursts of 4 requests" in view.summary.value


def test_view_shows_each_cliff(view):
    view.static_slider.value = 900
    assert "Minimum length" in view.summary.value and "minimum of 1,024" in view.summary.value
    view.provider_picker.value = "openai"
    view.static_slider.value = 1_100
    view.requests_slider.value = 1_440
    assert "128-token steps" in view.summary.value and "last 76" in view.summary.value
    assert "Lifetime expiry" not in view.summary.value  # lesson 7 promises one cliff here (issue 26, item 5)
    view.model_picker.value = GPT
    view.lifetime_picker.value = "in_memory"  # a request a minute keeps an in-memory prefix alive all day
    assert "128-token steps" in view.summary.value and "Lifetime expiry" not in view.summary.value
    view.provider_picker.value = "anthropic"
    assert view.model_picker.value == view.model_picker.options[0][1]  # a new provider starts at its first model
    view.model_picker.value = SONNET
    view.requests_slider.value = 48
    view.arrivals_picker.value = "bursty"
    assert "Lifetime expiry" in view.summary.value and "bursts start 2h00m apart" in view.summary.value


def test_provider_switch_offers_its_models_and_lifetimes_and_replays_once(view, monkeypatch):
    import workbook.widgets.cost_calculator as module

    calls = []
    monkeypatch.setattr(module, "estimate_day", lambda traffic, **kw: calls.append(traffic) or estimate_day(traffic, **kw))
    view.provider_picker.value = "openai"
    assert len(calls) == 1 and calls[0].model_key == "openai/gpt-5.5" and calls[0].lifetime == "24h"
    assert [v for _, v in view.lifetime_picker.options] == ["24h"]  # "For gpt-5.5 ..., only 24h is supported"
    assert all(key.startswith("openai/") for _, key in view.model_picker.options)
    view.model_picker.value = "openai/gpt-5.4-mini"  # not on the guide's list of models with 24-hour retention
    assert len(calls) == 2 and calls[1].lifetime == "in_memory"
    assert [v for _, v in view.lifetime_picker.options] == ["in_memory"]
    view.model_picker.value = GPT
    assert [v for _, v in view.lifetime_picker.options] == ["24h", "in_memory"] and calls[2].lifetime == "in_memory"


def test_view_shows_bad_input_in_its_error_box(view):
    view.provider_picker.value = "google"
    view.lifetime_picker.value = "1h"
    view.static_slider.value = 1_000  # under Gemini's 2,048: the API refuses to create the explicit cache
    assert "at least 2,048 tokens" in view.errors.message and "at least 2,048 tokens" in view.errors.widget.value
    assert view.state.estimate is None and view.summary.value == "" and view.state.error == view.errors.message
    view.static_slider.value = 4_000
    assert view.errors.message == "" and view.state.estimate.storage_usd > 0 and "storage" in view.summary.value
