"""Lesson 8's views driven from Python, its exercises, and the cache-stack arrangements."""

import pytest

import workbook
from workbook.errors import WorkbookError
from workbook.exercises.lesson8 import VERIFY_PAIRS, check_achievable, check_invalidated, check_refusals, verify_options
from workbook.lessons.cache_stack import ARRANGEMENTS, CacheStack, call_request, confidence, run_stack
from workbook.lessons.scenarios import DEFAULT_SYSTEM_PROMPT, LONG_SYSTEM_PROMPT
from workbook.pricing import load_price_sheets
from workbook.providers import simulate
from workbook.semantic import (PairScores, SemanticCache, ThresholdOutcome, achievable_hit_rate, disagreement,
                               load_embedder, load_intents, load_pairs, load_query_log, replay)
from workbook.widgets import ThresholdView, WrongAnswerCostView


@pytest.fixture(scope="module")
def embedder():
    return load_embedder(device="cpu")


@pytest.fixture(scope="module")
def scores(embedder):
    tune = load_pairs("tune")
    return {"plain": {"tune": PairScores(tune, embedder, verify=None)},
            "verified": {"tune": PairScores(tune, embedder)}}


def test_the_threshold_view_recounts_as_the_slider_moves(scores):
    view = ThresholdView(scores, threshold=0.99)
    strict = view.state.rates
    view.slider.value = 0.5
    loose = view.state.rates
    assert loose.threshold == 0.5 and loose.paraphrase_hits >= strict.paraphrase_hits
    assert loose.false_hits >= strict.false_hits and loose.served > strict.served
    assert [p.pair_id for p, _ in view.state.near_misses] == \
        [p.pair_id for p, _ in scores["plain"]["tune"].near_misses_served(0.5)]
    assert f"{loose.paraphrase_hits:.0%}" in view.summary.value
    assert len(view.state.near_misses) == round(loose.false_hits * sum(not p.same for p in scores["plain"]["tune"].pairs))
    assert list(view.figure.data[1].x) == [loose.paraphrase_hits] and list(view.figure.data[1].y) == [loose.precision]
    view.cache_picker.value = "verified"
    assert view.state.cache == "verified" and view.state.rates == scores["verified"]["tune"].rates(0.5)
    assert view.state.rates.false_hits < loose.false_hits  # the verification stage refuses near misses


def test_the_wrong_answer_cost_view_moves_the_best_threshold_right_as_wrong_answers_get_dearer():
    outcomes = [ThresholdOutcome(0.5, 100, 30, 1.00), ThresholdOutcome(0.7, 80, 5, 0.80), ThresholdOutcome(0.9, 50, 0, 0.50)]
    view = WrongAnswerCostView(outcomes, usd_per_wrong=0.0001)
    assert view.state.best.threshold == 0.5
    view.slider.value = 0.01  # 0.80 - 0.05 beats 1.00 - 0.30 and 0.50
    assert view.state.best.threshold == 0.7 and "0.70" in view.summary.value
    view.slider.value = 1.0
    assert view.state.best.threshold == 0.9 and list(view.figure.data[0].y) == [1.0 - 30, 0.8 - 5, 0.5]
    with pytest.raises(WorkbookError):
        WrongAnswerCostView([])


def test_exercise_1_is_judged_by_the_verification_stage():
    options = verify_options()
    refused = {k for k, (cached, incoming) in VERIFY_PAIRS.items() if disagreement(incoming, cached)}
    assert {k for k, (_, is_answer, _) in options.items() if is_answer} == refused and 0 < len(refused) < 5
    assert check_refusals(refused).correct is True
    assert check_refusals(set(VERIFY_PAIRS)).correct is False
    assert check_refusals(None).correct is None and check_refusals({"z"}).correct is False


def test_exercise_2_counts_the_entries_quoting_the_shipping_policy(embedder):
    cache = SemanticCache(embedder)
    replay(load_query_log()[:120], cache, load_intents())
    truth = sum(e.meta.get("policy") == "shipping" for e in cache.entries())
    assert truth > 0 and truth != sum(e.meta.get("policy") == "refunds" for e in cache.entries())
    assert check_invalidated(truth, cache).correct is True and check_invalidated(truth + 1, cache).correct is False
    assert cache.invalidate(lambda e: e.meta.get("policy") == "shipping") == truth


def test_exercise_3_is_the_achievable_hit_rate(embedder):
    truth = achievable_hit_rate([q.query for q in load_query_log()], embedder, 0.8)
    assert check_achievable(truth, embedder).correct is True
    assert check_achievable(truth + 0.02, embedder).correct is False
    assert check_achievable(None, embedder).correct is None


@pytest.fixture(scope="module")
def models():
    return workbook.load_model("tiny"), workbook.load_model("tiny-draft"), workbook.load_tokenizer("tiny")


def test_the_arrangements_route_and_price_as_described(models, embedder):
    large, small, tokenizer = models
    sheets = load_price_sheets()
    log = load_query_log()[:12]
    steps = {a: run_stack(CacheStack(a, large, small, tokenizer, embedder, large_sheet=sheets["anthropic/claude-sonnet-4-5"],
                                     small_sheet=sheets["anthropic/claude-haiku-4-5"]), log) for a in ARRANGEMENTS}
    assert {s.route for s in steps["model only"]} == {"model"} == {s.route for s in steps["prefix cache"]}
    # The default system prompt is under Sonnet's 1,024-token minimum: the provider reads nothing, breakpoint or not.
    assert len(tokenizer.encode(DEFAULT_SYSTEM_PROMPT)) < sheets["anthropic/claude-sonnet-4-5"].min_cacheable_tokens
    assert [s.usd for s in steps["prefix cache"]] == [s.usd for s in steps["model only"]]
    assert steps["model only"][0].usd > 0
    semantic = steps["semantic + prefix"]
    assert all(s.usd == 0 for s in semantic if s.route == "semantic hit")
    assert {s.route for s in steps["semantic + small first"]} <= {"semantic hit", "small model", "large model"}
    with pytest.raises(WorkbookError, match="arrangement"):
        CacheStack("everything", large, small, tokenizer, embedder, large_sheet=None, small_sheet=None)


def test_a_marked_system_prompt_is_read_only_over_the_minimum_and_within_the_lifetime(models):
    """call_request marks the system prompt when asked; the provider reads it from the second call on when it is over
    the model's minimum and the calls are under 5 minutes apart, and never otherwise."""
    _, _, tokenizer = models
    sonnet, haiku = "anthropic/claude-sonnet-4-5", "anthropic/claude-haiku-4-5"
    sheets = load_price_sheets()
    assert sheets[sonnet].min_cacheable_tokens <= len(tokenizer.encode(LONG_SYSTEM_PROMPT)) \
        < sheets[haiku].min_cacheable_tokens

    def bills(key, marked, gap_s):
        return simulate(key, [call_request(tokenizer, LONG_SYSTEM_PROMPT, q, at_s=i * gap_s, output_tokens=16,
                                           marked=marked) for i, q in enumerate(["Hi?", "Where is my order?", "Boots?"])])

    warm = bills(sonnet, True, 60)
    written = warm[0].usage.cache_write_tokens
    assert written > 0 and [b.usage.cache_read_tokens for b in warm[1:]] == [written, written]
    assert sum(b.cost_usd for b in warm) < sum(b.cost_usd for b in bills(sonnet, False, 60))
    for unread in (bills(sonnet, False, 60), bills(sonnet, True, 600), bills(haiku, True, 60)):
        assert all(b.usage.cache_read_tokens == 0 for b in unread)  # unmarked, expired, or under Haiku's minimum


def test_confidence_is_the_probability_of_the_chosen_tokens(models):
    large, _, tokenizer = models
    prompt = tokenizer.encode("Harbor & Pine ships to")
    greedy = workbook.Engine(large, tokenizer).generate(prompt, max_new_tokens=1).output_ids  # the most likely token
    others = [t for t in tokenizer.encode(" Canada and Mexico, free over") if t not in greedy]
    best = confidence(large, prompt, greedy)
    assert 0.0 < best <= 1.0 and all(confidence(large, prompt, [t]) < best for t in others)
    two = confidence(large, prompt, greedy + others[:1])  # a mean: between its parts' probabilities
    assert min(best, confidence(large, prompt + greedy, others[:1])) <= two <= best
