"""Lesson 7's cache economics over time (TTL, storage) and its check-yourself functions."""

import random

import pytest

from workbook.exercises.lesson7 import (check_seed_yearly_cost, check_storage_break_even, check_ttl_choice,
                                        day_cost_with_ttl, seed_implied_input_price, seed_yearly_cost)
from workbook.pricing import (TTL_MINUTES, Usage, cost, expected_request_cost, explicit_cache_hourly_cost,
                              hit_probability, hits_with_ttl, load_price_sheets, provider_usage, storage_break_even_rate)


@pytest.fixture(scope="module")
def sheets():
    return load_price_sheets()


def test_hits_with_ttl_renews_on_every_hit():
    # Gaps 3, 4, 6, 5: the 6-minute gap outlives a 5-minute TTL; a gap of exactly the TTL still hits.
    assert hits_with_ttl([0, 3, 7, 13, 18], 5) == [False, True, True, False, True]
    assert hits_with_ttl([], 5) == []
    with pytest.raises(ValueError, match="in order"):
        hits_with_ttl([5, 1], 5)
    with pytest.raises(ValueError, match="positive"):
        hits_with_ttl([0, 1], 0)


def test_hit_probability_matches_a_simulated_poisson_stream():
    rng = random.Random(0)
    for mean_gap in (1.0, 5.0, 20.0):
        times, t = [], 0.0
        for _ in range(20_000):
            t += rng.expovariate(1 / mean_gap)
            times.append(t)
        simulated = sum(hits_with_ttl(times, 5)) / (len(times) - 1)
        assert simulated == pytest.approx(hit_probability(mean_gap, 5), abs=0.01)
    # A TTL equal to the mean gap: 1 - 1/e.
    assert hit_probability(5, 5) == pytest.approx(0.6321, abs=1e-4)


def test_expected_request_cost_runs_from_all_misses_to_all_hits(sheets):
    sonnet = sheets["anthropic/claude-sonnet-4-5"]
    # 5,000 prefix + 100 question, 300 out. Miss: 5,000 x 3.75 + 100 x 3 + 300 x 15 = 23,550 -> $0.02355.
    # Hit: 5,000 x 0.3 + 300 + 4,500 = 6,300 -> $0.0063.
    assert expected_request_cost(sonnet, 5_100, 5_000, 300, 0.0) == pytest.approx(0.02355)
    assert expected_request_cost(sonnet, 5_100, 5_000, 300, 1.0) == pytest.approx(0.0063)
    assert expected_request_cost(sonnet, 5_100, 5_000, 300, 0.5) == pytest.approx((0.02355 + 0.0063) / 2)
    # All misses cost more than sending no cache hints at all: the write premium, every time.
    assert expected_request_cost(sonnet, 5_100, 5_000, 300, 0.0) > cost(Usage(input_tokens=5_100, output_tokens=300), sonnet)
    # The 1-hour lifetime writes at 2x: 5,000 x 6 + 300 + 4,500 = 34,800.
    assert expected_request_cost(sonnet, 5_100, 5_000, 300, 0.0, ttl="1h") == pytest.approx(0.0348)
    with pytest.raises(ValueError, match="fraction"):
        expected_request_cost(sonnet, 5_100, 5_000, 300, 1.5)


def test_storage_break_even(sheets):
    pro = sheets["google/gemini-2.5-pro"]
    # $4.50 per million per hour against a saving of 1.25 - 0.125 = 1.125 per million per read: 4 reads an hour.
    assert storage_break_even_rate(pro) == pytest.approx(4.0)
    cached, plain = explicit_cache_hourly_cost(pro, 100_000, 4.0)
    assert cached == pytest.approx(plain)  # 0.1 x (4.5 + 0.5) = 0.5 = 0.1 x 4 x 1.25
    assert explicit_cache_hourly_cost(pro, 100_000, 10)[0] < explicit_cache_hourly_cost(pro, 100_000, 10)[1]
    assert explicit_cache_hourly_cost(pro, 100_000, 1)[0] > explicit_cache_hourly_cost(pro, 100_000, 1)[1]
    assert storage_break_even_rate(sheets["anthropic/claude-sonnet-4-5"]) is None  # no storage bill
    with pytest.raises(ValueError, match="negative"):
        explicit_cache_hourly_cost(pro, 100, -1)


def test_lesson_7_checks(sheets):
    # Gemini 2.5 Flash: $1/M per hour of storage against a saving of 0.30 - 0.03 = 0.27/M per read: 3.70 reads an hour.
    assert check_storage_break_even(None).correct is None
    assert check_storage_break_even(3.7).correct is True and check_storage_break_even(3.72).correct is True
    assert check_storage_break_even(4).correct is False and check_storage_break_even("3.7").correct is False
    assert "1 / 0.27" in check_storage_break_even(3.7).message
    # ...not the lesson's own Gemini 2.5 Pro, whose 4 an hour the lesson prints.
    assert check_storage_break_even(4, sheets["google/gemini-2.5-pro"]).correct is True

    # 360 requests a day, 4 minutes apart: both lifetimes write once, then read. 5m: one 1.25x write (0.02355) and
    # 359 reads (0.0063 each); 1h: one 2x write (0.0348) and the same reads. So 5m, by 0.75 x 5,000 x $3/M = $0.01125.
    sonnet = sheets["anthropic/claude-sonnet-4-5"]
    assert day_cost_with_ttl("5m", sonnet) == pytest.approx(0.02355 + 359 * 0.0063)
    assert day_cost_with_ttl("1h", sonnet) == pytest.approx(0.0348 + 359 * 0.0063)
    assert set(TTL_MINUTES) == {"5m", "1h"}
    # The simulator's day (the reference) agrees with the napkin rule: hits_with_ttl, then a hit or a miss price each.
    for ttl in TTL_MINUTES:
        napkin = sum(cost(provider_usage(sonnet, 5_100, 5_000, 300, cache_hit=hit), sonnet, ttl=ttl)
                     for hit in hits_with_ttl(range(0, 24 * 60, 4), TTL_MINUTES[ttl]))
        assert day_cost_with_ttl(ttl, sonnet) == pytest.approx(napkin)
    assert check_ttl_choice(None).correct is None
    assert check_ttl_choice("5m").correct is True
    assert "both write once" in check_ttl_choice("5m").message
    assert check_ttl_choice("1h").correct is False and check_ttl_choice("5 minutes").correct is False

    # Seed 001: 2,000 x 100,000 = 200M tokens a day at Haiku 4.5's $1/M = $200 a day, $73,000 a year (not $6 and
    # $2,160); at Sonnet 4.5's $3/M, which the lesson prints, it is $219,000.
    haiku = sheets["anthropic/claude-haiku-4-5"]
    assert seed_yearly_cost(haiku) == pytest.approx(73_000) and seed_yearly_cost(sonnet) == pytest.approx(219_000)
    assert check_seed_yearly_cost(None).correct is None
    assert check_seed_yearly_cost(73_000).correct is True
    assert check_seed_yearly_cost(219_000).correct is False and check_seed_yearly_cost("x").correct is False
    # The seed names no price: $6 a day for 200M tokens a day would need $0.03 per million.
    assert seed_implied_input_price() == pytest.approx(0.03)
    assert "$0.03 per million" in check_seed_yearly_cost(73_000).message
