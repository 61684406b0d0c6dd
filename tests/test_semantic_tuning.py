"""Scoring and tuning the semantic cache: PairScores arithmetic, loosest_threshold, the query-log replay and its
price, achievable_hit_rate, the recommended threshold and the contrastive adapter.

Arithmetic is checked on hand-placed unit vectors (a table embedder, so every cosine is known exactly) and
synthetic checks; the last tests use the real embedding model on the shipped data.
"""

import math

import numpy as np
import pytest
import torch

from workbook.errors import EmptyInputError, WorkbookError
from workbook.pricing import Usage, cost, load_price_sheets
from workbook.semantic import (DEFAULT_THRESHOLD, ExactCache, LoggedQuery, Pair, PairScores, achievable_hit_rate,
                               cross_validated_scores, load_embedder, load_intents, load_pairs, load_query_log,
                               loosest_threshold, recommended_threshold, replay, replay_cost, split_day, train_adapter,
                               wrong_share)
from workbook.semantic.tuning import MAX_WRONG
from workbook.semantic.pairs import GRID

SHEET = "anthropic/claude-sonnet-4-5"


class Table:
    """Unit vectors chosen by hand: text -> angle, so cosine(a, b) = cos(angle_a - angle_b). Takes a list too."""

    def __init__(self, angles):
        self.angles = angles

    def vector(self, text):
        a = self.angles[text]
        return np.array([math.cos(a), math.sin(a)], np.float32)

    def __call__(self, texts):
        if isinstance(texts, str):
            return self.vector(texts)
        return np.stack([self.vector(t) for t in texts]) if texts else np.zeros((0, 2), np.float32)


@pytest.fixture(scope="module")
def embedder():
    """The real model, with the tuning pairs and the log embedded up front in one batch: the Embedder remembers
    texts, and a cache replay otherwise embeds the log one query at a time (minutes on a busy two-core CPU).
    Torch runs on one thread meanwhile: these matrices are small, and threads fighting another busy process
    made the adapter's 100 steps take half a minute instead of a fraction of a second."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = load_embedder(device="cpu")
        texts = {t for p in load_pairs("tune") for t in (p.cached, p.incoming)}
        texts |= {q.query.strip() for q in load_query_log()}
        model(sorted(texts))
        yield model
    finally:
        torch.set_num_threads(threads)


# --- loosest_threshold -------------------------------------------------------------------------------------

def test_loosest_threshold_walks_down_and_returns_the_last_safe_one():
    """With a check that is safe from 0.75 up, the walk goes down the grid from 1.0 and returns 0.75."""
    asked = []

    def is_safe(t):
        asked.append(t)
        return t >= 0.75 - 1e-9

    assert loosest_threshold(is_safe) == pytest.approx(0.75)
    assert asked[0] == pytest.approx(1.0) and asked == sorted(asked, reverse=True)
    assert asked[-1] == pytest.approx(0.74)  # the first refusal ends the walk
    assert all(isinstance(t, float) for t in asked)


def test_loosest_threshold_stops_at_the_first_refusal():
    """A check that refuses 0.8 but would accept every looser threshold still stops the walk at 0.81."""
    asked = []

    def is_safe(t):
        asked.append(t)
        return abs(t - 0.8) > 1e-9

    assert loosest_threshold(is_safe) == pytest.approx(0.81)
    assert min(asked) == pytest.approx(0.8)  # nothing below the refusal was tried


def test_loosest_threshold_sorts_the_thresholds_it_is_given():
    """Thresholds in any order are tried strictest first."""
    asked = []
    assert loosest_threshold(lambda t: asked.append(t) or True, [0.5, 0.9, 0.7]) == 0.5
    assert asked == [0.9, 0.7, 0.5]


def test_loosest_threshold_fails_when_even_the_strictest_is_unsafe():
    """If the strictest threshold is refused there is no safe threshold: WorkbookError, after one check."""
    asked = []
    with pytest.raises(WorkbookError, match="strictest"):
        loosest_threshold(lambda t: asked.append(t) or False, [0.6, 0.95, 0.8])
    assert asked == [0.95]


# --- PairScores --------------------------------------------------------------------------------------------

# (label, cosine) for each hand-made pair, in table order: two paraphrases, three near misses.
PAIR_COSINES = [("same", 0.9), ("near_miss", 0.6), ("near_miss", 0.8), ("same", 0.7), ("near_miss", 0.95)]


@pytest.fixture
def toy_pairs():
    angles, pairs = {}, []
    for i, (label, cosine) in enumerate(PAIR_COSINES):
        cached, incoming = f"cached {i}", f"incoming {i}"
        angles[cached], angles[incoming] = 0.3 * i, 0.3 * i + math.acos(cosine)
        pairs.append(Pair(f"t{i}", "tune", label, "paraphrase" if label == "same" else "object", "support",
                          cached, incoming))
    return pairs, Table(angles)


def expected_rates(threshold, objected=()):
    """The rates by their definitions, counted over PAIR_COSINES in plain Python."""
    served = [(label, c) for i, (label, c) in enumerate(PAIR_COSINES) if c >= threshold and i not in objected]
    right = sum(label == "same" for label, _ in served)
    wrong = len(served) - right
    n_same = sum(label == "same" for label, _ in PAIR_COSINES)
    return (right / n_same, wrong / (len(PAIR_COSINES) - n_same), right / len(served) if served else 1.0,
            len(served))


@pytest.mark.parametrize("threshold", [0.3, 0.65, 0.75, 0.85, 0.92, 0.99])
def test_pair_scores_rates_follow_their_definitions(toy_pairs, threshold):
    """Recall, false-hit rate, precision (1.0 when nothing is served) and the served count, for a plain threshold."""
    pairs, table = toy_pairs
    scores = PairScores(pairs, table, verify=None)
    np.testing.assert_allclose(scores.similarities, [c for _, c in PAIR_COSINES], atol=1e-6)
    r = scores.rates(threshold)
    assert r.threshold == threshold
    assert (r.paraphrase_hits, r.false_hits, r.precision, r.served) == pytest.approx(expected_rates(threshold))


def test_pair_scores_hand_checked_values(toy_pairs):
    """A few rates worked out by hand: at 0.75 it serves 0.9 (right), 0.8 and 0.95 (wrong)."""
    scores = PairScores(*toy_pairs, verify=None)
    r = scores.rates(0.75)
    assert (r.paraphrase_hits, r.false_hits, r.precision, r.served) == pytest.approx((0.5, 2 / 3, 1 / 3, 3))
    r = scores.rates(0.99)
    assert (r.paraphrase_hits, r.false_hits, r.precision, r.served) == (0.0, 0.0, 1.0, 0)


def test_the_verifier_removes_what_it_objects_to(toy_pairs):
    """Pairs the verifier objects to are never served, at any threshold; its reasons are kept per pair."""
    pairs, table = toy_pairs
    objected_to = {pairs[4].incoming, pairs[2].incoming}  # the two most similar near misses
    scores = PairScores(pairs, table, verify=lambda incoming, cached: "no" if incoming in objected_to else None)
    assert scores.objections == [None, None, "no", None, "no"]
    for threshold in (0.3, 0.75, 0.92):
        r = scores.rates(threshold)
        assert (r.paraphrase_hits, r.false_hits, r.precision, r.served) == \
            pytest.approx(expected_rates(threshold, objected=(2, 4)))
    assert not scores.served(0.0)[[2, 4]].any()


def test_the_default_verifier_is_the_verification_stage():
    """PairScores' default verify is `disagreement`: a pair with different order numbers gets its reason."""
    pair = Pair("x", "tune", "near_miss", "number", "support", "refund for order 1234", "refund for order 1243")
    scores = PairScores([pair], Table({pair.cached: 0.0, pair.incoming: 0.01}))
    assert scores.objections[0] and "1234" in scores.objections[0]
    assert scores.rates(0.5).served == 0


def test_sweep_is_rates_at_each_threshold(toy_pairs):
    """sweep(ts) is [rates(t) for t in ts], over GRID by default; recall never rises as the threshold does."""
    scores = PairScores(*toy_pairs, verify=None)
    assert scores.sweep([0.9, 0.5]) == [scores.rates(0.9), scores.rates(0.5)]
    full = scores.sweep()
    assert [r.threshold for r in full] == pytest.approx(list(GRID))
    hits = [r.paraphrase_hits for r in full]
    assert all(a >= b for a, b in zip(hits, hits[1:]))


def test_near_misses_served_are_the_wrong_answers_most_similar_first(toy_pairs):
    """Only near misses, only those served, sorted by similarity from the top."""
    pairs, table = toy_pairs
    scores = PairScores(pairs, table, verify=None)
    served = scores.near_misses_served(0.5)
    assert [p.pair_id for p, _ in served] == ["t4", "t2", "t1"]
    assert [s for _, s in served] == pytest.approx([0.95, 0.8, 0.6], abs=1e-6)
    assert [p.pair_id for p, _ in scores.near_misses_served(0.85)] == ["t4"]
    assert scores.near_misses_served(0.99) == []


def test_pair_scores_needs_pairs():
    """An empty list of pairs is a WorkbookError, not a division by zero later."""
    with pytest.raises(WorkbookError):
        PairScores([], Table({}))


# --- the query log replayed --------------------------------------------------------------------------------

def test_exact_cache_replay_hits_every_exact_repeat_and_nothing_else():
    """Replaying the log through ExactCache hits exactly the queries whose (stripped) text came earlier; a hit
    is wrong exactly when the first asker's intent differs (or was a one-off)."""
    log, intents = load_query_log(), load_intents()
    first_intent, repeats, wrong = {}, [], 0
    for i, q in enumerate(log):
        text = q.query.strip()
        if text in first_intent:
            repeats.append(i)
            wrong += first_intent[text] != q.intent or q.intent == "other"
        else:
            first_intent[text] = q.intent
    assert repeats  # the log has exact repeats to find

    served = replay(log, ExactCache(), intents)
    assert [s.logged for s in served] == log
    assert [i for i, s in enumerate(served) if s.hit is not None] == repeats
    assert {s.source for s in served if s.hit is not None} == {"exact"}
    assert sum(s.wrong for s in served) == wrong
    for s in served:
        if s.hit is not None:
            assert s.hit.exact and s.hit.similarity == 1.0 and s.hit.age_s >= 0
            assert s.hit.answer == intents[s.logged.intent].answer  # an exact repeat of a known intent


def test_exact_cache_keeps_namespaces_apart_and_reports_age():
    """ExactCache matches stripped text within one namespace; age is now minus the time stored."""
    cache = ExactCache()
    cache.put(" where is my parcel ", "on its way", meta={"intent": "track"}, now=10.0)
    hit = cache.get("where is my parcel", now=25.0)
    assert hit.answer == "on its way" and hit.age_s == 15.0 and hit.meta == {"intent": "track"}
    assert cache.get("where is my parcel", namespace="other tenant") is None
    assert cache.get("Where is my parcel") is None  # exact means exact


def words_count(text):
    """A toy tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def test_replay_cost_prices_every_query_without_cache_and_only_misses_with_it():
    """Without a cache every query is a model call (prompt + query in, answer out); with one, only the misses
    are. Checked on the log's queries with known intents, so the answer is the intent's answer."""
    intents = load_intents()
    log = [q for q in load_query_log() if q.intent in intents]
    sheet = load_price_sheets()[SHEET]
    prompt = 700

    def call(q):
        return cost(Usage(input_tokens=prompt + words_count(q.query),
                          output_tokens=words_count(intents[q.intent].answer)), sheet)

    served = replay(log, ExactCache(), intents)
    bill = replay_cost(served, sheet, words_count, prompt, intents)
    misses = [s.logged for s in served if s.hit is None]
    assert 0 < len(misses) < len(log)
    assert bill.queries == len(log) and bill.hits == len(log) - len(misses)
    assert bill.wrong == sum(s.wrong for s in served)
    assert bill.usd_without_cache == pytest.approx(sum(call(q) for q in log), rel=1e-12)
    assert bill.usd_with_cache == pytest.approx(sum(call(q) for q in misses), rel=1e-12)
    assert bill.saved_usd == pytest.approx(sum(call(s.logged) for s in served if s.hit is not None), rel=1e-9)
    # and `cost` itself is prices per million tokens: one query worked out by hand
    q = log[0]
    by_hand = ((prompt + words_count(q.query)) * sheet.input + words_count(intents[q.intent].answer) * sheet.output) / 1e6
    assert call(q) == pytest.approx(by_hand, rel=1e-12)


def test_replay_cost_of_a_one_off_charges_an_answer_too():
    """A query of no known intent still costs its input and some output; with no hits both totals agree."""
    intents = load_intents()
    sheet = load_price_sheets()[SHEET]
    log = [LoggedQuery(0, "u1", "other", "do you sell gift wrap for kayaks"),
           LoggedQuery(5, "u2", "other", "is the shop dog friendly")]
    bill = replay_cost(replay(log, ExactCache(), intents), sheet, words_count, 100, intents)
    input_only = sum(cost(Usage(input_tokens=100 + words_count(q.query)), sheet) for q in log)
    assert bill.hits == 0 and bill.wrong == 0
    assert bill.usd_with_cache == bill.usd_without_cache > input_only


# --- achievable_hit_rate -----------------------------------------------------------------------------------

HIT_ANGLES = {"reset my password": 0.0, "I forgot my password": math.acos(0.8), "where is my parcel": 1.5}
HIT_QUERIES = ["reset my password", "I forgot my password", "reset my password", "where is my parcel",
               " I forgot my password "]


def test_achievable_hit_rate_counts_exact_repeats_even_above_any_threshold():
    """With a threshold no cosine reaches, only the exact repeats (after stripping) count: 2 of 5."""
    table = Table(HIT_ANGLES)
    stripped = [q.strip() for q in HIT_QUERIES]
    repeats = sum(q in stripped[:i] for i, q in enumerate(stripped))
    assert repeats == 2
    assert achievable_hit_rate(HIT_QUERIES, table, 1.5) == repeats / len(HIT_QUERIES)


def test_achievable_hit_rate_threshold_boundary_is_inclusive():
    """"I forgot my password" is at cosine 0.8 of an earlier query: it counts at 0.8 - 1e-5, not at 0.8 + 1e-5."""
    table = Table(HIT_ANGLES)
    assert achievable_hit_rate(HIT_QUERIES, table, 0.8 + 1e-5) == 2 / 5
    assert achievable_hit_rate(HIT_QUERIES, table, 0.8 - 1e-5) == 3 / 5
    # "where is my parcel" is at cos(1.5 - acos(0.8)) ~ 0.65 of "I forgot my password", which came before it
    assert achievable_hit_rate(HIT_QUERIES, table, math.cos(1.5 - math.acos(0.8)) - 1e-5) == 4 / 5


def test_achievable_hit_rate_only_looks_back():
    """The first query never hits, and a query similar only to a later one does not count."""
    table = Table(HIT_ANGLES)
    assert achievable_hit_rate(["reset my password"], table, -1.0) == 0.0
    assert achievable_hit_rate(["where is my parcel", "reset my password"], table, 0.5) == 0.0  # cos 0.07
    assert achievable_hit_rate(["reset my password", "I forgot my password"], table, 0.5) == 0.5


def test_achievable_hit_rate_needs_queries():
    """An empty log is an EmptyInputError."""
    with pytest.raises(EmptyInputError):
        achievable_hit_rate([], Table({}), 0.8)


# --- the real model ----------------------------------------------------------------------------------------

def test_split_day_keeps_time_order_and_halves_the_day():
    """The first half (tuning) is the earlier queries, the second (held out) the later ones, and nothing is lost."""
    log = load_query_log()
    first, second = split_day(log)
    assert first + second == log and abs(len(first) - len(second)) <= 1
    assert max(q.t_s for q in first) <= min(q.t_s for q in second)


def test_the_default_threshold_is_the_recommended_one(embedder):
    """cache.DEFAULT_THRESHOLD is what lesson 8's rule derives for the bundled model (tuning pairs + the first
    half of the replayed day), and the rule looks at the first half only: the next looser threshold fails there."""
    assert DEFAULT_THRESHOLD == recommended_threshold(embedder)
    first, _ = split_day(load_query_log())
    looser = round(DEFAULT_THRESHOLD - 0.01, 2)
    tune = PairScores(load_pairs("tune"), embedder)
    assert wrong_share(embedder, DEFAULT_THRESHOLD, log=first) <= MAX_WRONG
    assert wrong_share(embedder, looser, log=first) > MAX_WRONG or tune.rates(looser).false_hits > MAX_WRONG


def test_cross_validated_scores_score_each_pair_with_a_map_that_never_saw_it(embedder):
    """Each fold's similarities come from an adapter trained on the other fold only, not on the pairs themselves."""
    pairs = load_pairs("tune")
    scores = cross_validated_scores(pairs, embedder)
    for fold in range(2):
        adapter = train_adapter([p for i, p in enumerate(pairs) if i % 2 != fold], embedder)
        np.testing.assert_allclose(scores.similarities[fold::2],
                                   PairScores(pairs[fold::2], adapter, verify=None).similarities, atol=1e-6)
    memorised = PairScores(pairs, train_adapter(pairs, embedder), verify=None).rates(0.8)
    assert scores.rates(0.8).paraphrase_hits < memorised.paraphrase_hits  # unseen pairs are harder than learned ones


def test_train_adapter_needs_both_labels(embedder):
    """Contrastive training needs paraphrases and near misses: only one label (or none) is a WorkbookError."""
    tune = load_pairs("tune")
    for pairs in ([p for p in tune if p.same], [p for p in tune if not p.same], []):
        with pytest.raises(WorkbookError, match="both"):
            train_adapter(pairs, embedder)


def mean_cosines(pairs, embed):
    cosines = np.einsum("ij,ij->i", embed([p.cached for p in pairs]), embed([p.incoming for p in pairs]))
    same = np.array([p.same for p in pairs])
    return float(cosines[same].mean()), float(cosines[~same].mean())


def test_train_adapter_pulls_paraphrases_together_and_pushes_near_misses_apart(embedder):
    """On the tuning split, the adapted embedding raises the mean paraphrase cosine and lowers the mean
    near-miss cosine relative to the base model, and still gives unit vectors."""
    tune = load_pairs("tune")
    adapted = train_adapter(tune, embedder)
    base_same, base_near = mean_cosines(tune, embedder)
    tuned_same, tuned_near = mean_cosines(tune, adapted)
    assert tuned_same > base_same
    assert tuned_near < base_near
    vectors = adapted([tune[0].cached, tune[0].incoming])
    assert vectors.shape == (2, embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
