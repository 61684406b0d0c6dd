"""The timing side-channel audit (lesson 10): its statistics on known distributions, the procedure on a fake
`send`, and the audit, its mitigations and the attacks on the real engine.

Timing tests rely only on effects the tiny model produces reliably (a 64-token prefix hit against a miss gives
an AUC near 1) and on verdicts and rank statistics, never on a threshold in milliseconds.
"""

import random
import statistics
import time
from types import SimpleNamespace

import numpy as np
import pytest

import workbook
from workbook.audit import (ALPHA, ISOLATIONS, PAIRINGS, Deployment, Mitigations, Party, audit_sharing, behind_delay,
                            collect, compare, extract_pages, fewest_probes, guess_document, power_curve, probes_needed)
from workbook.audit.procedure import PREFIX_TOKENS, SUFFIX_TOKENS, VICTIM, reordered
from workbook.audit import target
from workbook.audit.target import CALIBRATION_RUNS, PAD_FACTOR, hold_until
from workbook.errors import WorkbookError

MALLORY = Party("globex", "mallory")
pytestmark = pytest.mark.usefixtures("one_thread")  # timings on a busy CPU: see conftest


@pytest.fixture(scope="module")
def shipped():
    return workbook.load_model("tiny"), workbook.load_tokenizer("tiny")


def vocab(shipped):
    return shipped[0].config.vocab_size


# ----- statistics on known distributions ------------------------------------------------------


def pairwise_auc(hits, misses):
    """The share of (miss, hit) pairs in which the miss is slower, ties counting half: computed by hand."""
    wins = sum((m > h) + 0.5 * (m == h) for m in misses for h in hits)
    return wins / (len(hits) * len(misses))


def test_compare_finds_a_planted_shift_in_the_right_direction_only():
    """Misses 3 sd slower than hits give a tiny p and an AUC near 1; the same samples swapped are not 'shared'."""
    rng = np.random.default_rng(0)
    hits, misses = rng.normal(7, 1, 50), rng.normal(10, 1, 50)
    c = compare(hits, misses)
    assert c.p_value < 1e-3 and c.auc > 0.9 and c.shared
    backwards = compare(misses, hits)  # "hits" slower than "misses": the one-sided test finds nothing
    assert backwards.p_value > 0.5 and backwards.auc < 0.1 and not backwards.shared


def test_compare_keeps_its_error_rate_on_identical_distributions():
    """200 audits of two samples from one distribution: at most 1% call it shared, and the AUC averages 0.5."""
    rng = np.random.default_rng(1)
    results = [compare(rng.normal(10, 1, 30), rng.normal(10, 1, 30)) for _ in range(200)]
    assert sum(c.p_value < ALPHA for c in results) <= 2
    assert abs(np.mean([c.auc for c in results]) - 0.5) <= 0.03
    same = rng.normal(10, 1, 20)
    c = compare(same, same)  # literally the same timings: every pair ties
    assert c.auc == 0.5 and c.p_value > 0.4 and not c.shared


def test_auc_is_the_share_of_pairs_where_the_miss_is_slower_ties_counting_half():
    """compare's AUC equals a pair count done by hand, on samples with ties and with overlap."""
    rng = random.Random(2)
    for _ in range(5):
        hits = [rng.randint(0, 8) for _ in range(rng.randint(2, 15))]
        misses = [rng.randint(3, 11) for _ in range(rng.randint(2, 15))]
        assert compare(hits, misses).auc == pytest.approx(pairwise_auc(hits, misses), abs=1e-12)


def test_the_roc_curve_runs_from_0_0_to_1_1_and_counts_probes_faster_than_each_threshold():
    """Each ROC point is (share of misses <= t, share of hits <= t) for its threshold t, from (0,0) to (1,1)."""
    rng = np.random.default_rng(3)
    hits, misses = rng.normal(7, 1.5, 25), rng.normal(9, 1.5, 30)
    c = compare(hits, misses)
    fpr, tpr = c.false_positive_rate, c.true_positive_rate
    assert (fpr[0], tpr[0]) == (0, 0) and (fpr[-1], tpr[-1]) == (1, 1)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert len(c.thresholds_s) == len(fpr) == len(tpr)
    for f, t, threshold in zip(fpr, tpr, c.thresholds_s):
        assert f == pytest.approx(np.mean(misses <= threshold)) and t == pytest.approx(np.mean(hits <= threshold))
    # The trapezoid area under the curve is the AUC the rank test reports.
    assert np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2) == pytest.approx(c.auc)


def test_compare_needs_two_samples_a_side():
    """Fewer than two timings on either side is refused with a WorkbookError."""
    for hits, misses in (([1.0], [1.0, 2.0]), ([1.0, 2.0], [3.0]), ([], [])):
        with pytest.raises(WorkbookError):
            compare(hits, misses)


def test_power_curve_rises_with_the_number_of_probes():
    """For a planted 1.2 sd shift the share of audits finding it grows with size and passes 90%; with 4 probes a
    side even a perfect separation cannot reach ALPHA, so it is 0. The same seed gives the same curve."""
    rng = np.random.default_rng(4)
    hits, misses = list(rng.normal(0, 1, 80)), list(rng.normal(1.2, 1, 80))
    sizes = [4, 8, 12, 16, 24, 32, 48]
    curve = power_curve(hits, misses, sizes, resamples=200, seed=0)
    assert [n for n, _ in curve] == sizes and all(0 <= found <= 1 for _, found in curve)
    shares = [found for _, found in curve]
    assert all(later >= earlier - 0.1 for earlier, later in zip(shares, shares[1:]))  # within resampling noise
    assert shares[0] == 0 and compare([0, 1, 2, 3], [10, 11, 12, 13]).p_value > ALPHA
    assert max(shares) >= 0.9 and shares[-1] > shares[1] + 0.5
    assert power_curve(hits, misses, sizes, resamples=200, seed=0) == curve


def test_power_curve_on_one_pool_keeps_the_error_rate_and_refuses_tiny_sizes():
    """Both sides drawn from the same timings: audits almost never call it shared. Sizes under 2 are refused."""
    pool = list(np.random.default_rng(5).normal(10, 1, 60))
    assert all(found <= 0.02 for _, found in power_curve(pool, pool, [8, 16, 32], resamples=100))
    with pytest.raises(WorkbookError):
        power_curve(pool, pool, [1, 8])


def test_probes_needed_picks_the_first_size_at_or_above_the_confidence():
    """The first size reaching the confidence (inclusive) wins, even if a later size dips; None if none reach it."""
    curve = [(4, 0.1), (8, 0.85), (12, 0.9), (16, 0.97)]
    assert probes_needed(curve) == 12
    assert probes_needed(curve, confidence=0.95) == 16
    assert probes_needed(curve, confidence=0.5) == 8
    assert probes_needed([(4, 0.95), (8, 0.6), (12, 1.0)]) == 4
    assert probes_needed([(4, 0.1), (8, 0.89)]) is None
    assert probes_needed([]) is None


def test_fewest_probes_is_where_a_perfect_separation_first_passes_the_test():
    """With fewest_probes() a side, every miss slower than every hit gives p < ALPHA; with one fewer it cannot, so a
    power curve is 0 below it even on perfectly separated timings. A looser alpha needs fewer probes."""
    n = fewest_probes()
    assert compare(list(range(n)), list(range(n, 2 * n))).p_value < ALPHA
    assert compare(list(range(n - 1)), list(range(n - 1, 2 * n - 2))).p_value >= ALPHA
    assert n == 7  # exact test: 1 / C(14, 7) = 1 / 3,432 < 10^-3 <= 1 / C(12, 6) = 1 / 924
    curve = power_curve([0.0, 1.0, 2.0], [10.0, 11.0, 12.0], [n - 1, n], resamples=50)
    assert curve[0][1] == 0
    assert fewest_probes(0.05) < n


def test_power_curve_tests_every_redrawn_audit_like_compare_would():
    """The vectorised curve equals a loop of one-sided tests on the same draws."""
    hits, misses = [0.1 * i for i in range(30)], [0.1 * i + 1.5 for i in range(30)]
    rng = np.random.default_rng(9)
    expected = []
    for n in (9, 12):
        drawn_misses, drawn_hits = rng.choice(misses, size=(40, n)), rng.choice(hits, size=(40, n))
        expected.append((n, float(np.mean([compare(h, m).p_value < ALPHA for h, m in zip(drawn_hits, drawn_misses)]))))
    assert power_curve(hits, misses, [9, 12], resamples=40, seed=9) == expected
    assert 0 < expected[0][1] < expected[1][1] < 1  # a curve with something to check: neither all found nor none


def test_behind_delay_adds_a_reproducible_delay_in_0_to_jitter():
    """Each time gets its own delay in [0, jitter); a seed fixes them; another seed changes them; no jitter, no delay."""
    times = [0.010 + 0.001 * i for i in range(200)]
    delayed = behind_delay(times, 0.005, seed=7)
    added = [d - t for d, t in zip(delayed, times)]
    assert len(delayed) == len(times)
    assert all(0 <= a < 0.005 for a in added) and max(added) - min(added) > 0.004  # spread across the range
    assert behind_delay(times, 0.005, seed=7) == delayed
    assert behind_delay(times, 0.005, seed=8) != delayed
    assert behind_delay(times, 0.0) == times


# ----- the procedure, on a fake send ----------------------------------------------------------


def test_reordered_keeps_the_tokens_and_changes_the_first():
    """A miss prefix holds the victim's tokens in another order, starting with a different token."""
    rng = random.Random(0)
    for _ in range(20):
        ids = [rng.randrange(50) for _ in range(rng.randint(2, 30))]
        if len(set(ids)) < 2:
            continue
        out = reordered(rng, ids)
        assert sorted(out) == sorted(ids) and out[0] != ids[0]
    original = [3, 3, 3, 7]
    assert reordered(rng, original)[0] == 7 and original == [3, 3, 3, 7]  # only 7 can lead; the input is untouched


def test_reordered_with_one_distinct_token_changes_the_first_token():
    """With nothing to reorder, the first token changes (to another valid id) and the rest stays."""
    for ids in ([5, 5, 5], [0, 0], [9]):
        out = reordered(random.Random(0), ids)
        assert len(out) == len(ids) and out[1:] == ids[1:] and out[0] != ids[0] and out[0] >= 0


class FakeSend:
    """A `send` that knows which probe is a hit: it returns a unique number per attacker probe and logs its kind."""

    def __init__(self, attacker, prefix_tokens):
        self.attacker, self.p = attacker, prefix_tokens
        self.victim_prefixes, self.probes = [], []  # probes: (kind, returned value)

    def __call__(self, ids, party):
        ids = list(ids)
        assert len(ids) == self.p + SUFFIX_TOKENS
        if len(self.victim_prefixes) == len(self.probes):  # calls alternate: the victim, then the attacker
            assert party == VICTIM
            self.victim_prefixes.append(ids[:self.p])
            return -1.0  # the victim's time: never part of the samples
        assert party == self.attacker
        victims = self.victim_prefixes[-1]
        kind = "hit" if ids[:self.p] == victims else "miss"
        if kind == "miss":
            assert sorted(ids[:self.p]) == sorted(victims) and ids[0] != victims[0]
        self.probes.append((kind, float(len(self.probes))))
        return self.probes[-1][1]


def test_collect_times_only_the_attackers_probes_and_drops_the_warm_up():
    """`trials` hits and misses come back, the first `warmup` of each kind dropped, in pairs of one hit and one
    miss in a random order, with a fresh prefix per trial and the victim's own request never timed."""
    send = FakeSend(MALLORY, 24)
    samples = collect(send, VICTIM, MALLORY, trials=10, vocab_size=500, prefix_tokens=24, warmup=3, seed=4)
    kinds = [k for k, _ in send.probes]
    assert kinds.count("hit") == kinds.count("miss") == 13
    assert samples.hits == [v for k, v in send.probes if k == "hit"][3:]
    assert samples.misses == [v for k, v in send.probes if k == "miss"][3:]
    assert len(samples.hits) == len(samples.misses) == 10 and -1.0 not in samples.hits + samples.misses
    assert kinds != ["hit", "miss"] * 13 and kinds != ["miss", "hit"] * 13  # shuffled
    assert all({kinds[i], kinds[i + 1]} == {"hit", "miss"} for i in range(0, len(kinds), 2))  # within pairs
    assert len({tuple(p) for p in send.victim_prefixes}) == 26  # nothing one trial caches helps another
    again = FakeSend(MALLORY, 24)
    assert collect(again, VICTIM, MALLORY, trials=10, vocab_size=500, prefix_tokens=24, warmup=3, seed=4) == samples
    assert again.victim_prefixes == send.victim_prefixes  # the seed fixes the plan and the prefixes


def test_collect_refuses_too_few_trials_or_an_empty_prefix():
    """Fewer than 2 trials, or a prefix under one token, is a WorkbookError before anything is sent."""
    with pytest.raises(WorkbookError):
        collect(FakeSend(MALLORY, PREFIX_TOKENS), VICTIM, MALLORY, trials=1, vocab_size=500)
    with pytest.raises(WorkbookError):
        collect(FakeSend(MALLORY, 0), VICTIM, MALLORY, trials=5, vocab_size=500, prefix_tokens=0)


# ----- the audit on the real engine -----------------------------------------------------------


@pytest.mark.parametrize("isolation", list(ISOLATIONS))
def test_the_audit_finds_sharing_exactly_where_the_salts_match(shipped, isolation):
    """audit_sharing calls a pairing shared exactly when the isolation gives attacker and victim the same salt. `shared`
    is the test against chance (p < ALPHA; with 30 probes a side, an AUC above about 0.73): no fixed floor on the AUC
    beyond it, which a busy machine moves (0.748 against a floor of 0.75 once, beside a CPU-bound job)."""
    verdicts = audit_sharing(Deployment(*shipped, isolation).send, vocab_size=vocab(shipped), trials=30, seed=1)
    salt = ISOLATIONS[isolation]
    expected = {pairing: salt(attacker) == salt(VICTIM) for pairing, attacker in PAIRINGS.items()}
    assert {pairing: v.shared for pairing, v in verdicts.items()} == expected
    for pairing, v in verdicts.items():
        assert v.pairing == pairing and len(v.samples.hits) == len(v.samples.misses) == 30
        assert v.comparison.auc == compare(v.samples.hits, v.samples.misses).auc


def test_the_rule_gives_each_isolation_a_different_pattern():
    """The three isolations share with 3, 2 and 1 of the pairings, so the audit above tells them apart."""
    counts = [sum(ISOLATIONS[i](a) == ISOLATIONS[i](VICTIM) for a in PAIRINGS.values()) for i in ISOLATIONS]
    assert sorted(counts) == [1, 2, 3]


@pytest.mark.parametrize("mitigation, shared", [
    (Mitigations(pad_to_deadline=True), False),
    (Mitigations(min_cached_tokens=1024), False),
    (Mitigations(page_size=64), True),  # membership of a 64-token prefix survives 64-token pages
])
def test_mitigations_on_a_global_cache(shipped, mitigation, shared, monkeypatch):
    """Padding and a minimum cached length hide a cross-organisation hit on 72-token probes; coarser pages do not.
    Padding hides only what finishes before its deadline: here the deadline is 10x a cold request's median, so that
    a busy machine's misses stay under it (the lesson's 2x shows the overruns when there are some). A probe the
    machine stalls for ten times the median still overruns (one did, beside a CPU-bound job): a few may."""
    monkeypatch.setattr(target, "PAD_FACTOR", 10)
    deployment = Deployment(*shipped, "global", mitigation)
    trials = 20 if mitigation.pad_to_deadline else 30  # a padded probe sleeps out 10x a cold request: 20 a side do
    samples = collect(deployment.send, VICTIM, MALLORY, trials=trials, vocab_size=vocab(shipped), seed=2)
    assert compare(samples.hits, samples.misses).shared is shared
    if mitigation.min_cached_tokens:
        assert deployment.engine.prefix_cache.pool.pages_in_use == 0  # nothing this short was ever cached
    if mitigation.pad_to_deadline:  # every probe, hit or miss, waited for the deadline, and no two came back equal
        times = samples.hits + samples.misses
        assert deployment.overruns <= len(times) // 20
        assert min(times) >= deployment.deadline_s(PREFIX_TOKENS + SUFFIX_TOKENS)
        assert len(set(times)) == len(times)


def test_padding_really_waits_until_the_deadline(monkeypatch):
    """hold_until sleeps out the rest of the deadline and reports the time the caller saw; a response already past
    the deadline goes out at once, unchanged. Checked by the sleeps asked for and by lower bounds only (a sleep never
    ends early), so a busy machine cannot fail it."""
    slept = []
    real_sleep = time.sleep
    monkeypatch.setattr(time, "sleep", lambda seconds: (slept.append(seconds), real_sleep(seconds))[1])
    start = time.perf_counter()
    seen = hold_until(0.030, 0.010)
    waited = time.perf_counter() - start
    assert slept == [pytest.approx(0.020)] and seen >= 0.030 and waited >= 0.020 and seen <= 0.010 + waited
    slept.clear()
    assert hold_until(0.010, 0.025) == 0.025 and slept == []


def test_the_deadline_is_pad_factor_times_the_median_cold_time_timed_once_per_length(shipped):
    """The deadline of a length is PAD_FACTOR x the median of CALIBRATION_RUNS cold requests of that length, timed the
    first time the length is seen and then kept."""
    deployment = Deployment(*shipped, "global", Mitigations(pad_to_deadline=True))
    fake = iter([0.05, 0.01, 0.04, 0.02, 0.03] * 2)
    calls = []

    def cold(ids, max_new_tokens):
        calls.append(len(ids))
        return SimpleNamespace(timings=SimpleNamespace(ttft_s=next(fake)))

    deployment.uncached.generate = cold
    assert CALIBRATION_RUNS == 5
    assert deployment.deadline_s(72) == pytest.approx(PAD_FACTOR * statistics.median([0.05, 0.01, 0.04, 0.02, 0.03]))
    assert deployment.deadline_s(72) == pytest.approx(PAD_FACTOR * 0.03) and calls == [72] * 5  # kept, not retimed
    deployment.deadline_s(100)
    assert calls == [72] * 5 + [100] * 5


def test_a_padded_response_that_overran_its_deadline_is_counted_and_goes_out_late(shipped, monkeypatch):
    deployment = Deployment(*shipped, "global", Mitigations(pad_to_deadline=True))
    deployment._deadline_s[8] = 0.001  # a deadline any real request overruns
    monkeypatch.setattr(time, "sleep", lambda seconds: pytest.fail("an overrun response must not wait"))
    seen = deployment.send(list(range(1, 9)), VICTIM)
    assert deployment.overruns == 1 and seen > 0.001


def test_a_minimum_length_caches_every_prompt_at_or_over_it(shipped):
    """With min_cached_tokens=1024 a 1,023-token prompt is never cached and a 1,024-token one is: the mitigation
    protects only prompts shorter than the minimum, so probes of 1,024 tokens are as visible as without it."""
    deployment = Deployment(*shipped, "global", Mitigations(min_cached_tokens=1024))
    ids = [(7 * i) % 4000 + 1 for i in range(1024)]
    deployment.send(ids[:1023], VICTIM)
    assert deployment.engine.prefix_cache.pool.pages_in_use == 0
    deployment.send(ids, VICTIM)
    assert deployment.engine.prefix_cache.pool.pages_in_use > 0
    again = deployment.engine.generate(ids[:1016] + [1] * 8, max_new_tokens=1)
    assert again.usage.cache_read_tokens >= 1000  # the attacker's 1,024-token probe would hit


def test_mitigations_and_deployment_reject_bad_settings(shipped):
    """Negative lengths or delays, a zero page and an unknown isolation are WorkbookErrors."""
    for bad in ({"min_cached_tokens": -1}, {"jitter_s": -0.001}, {"page_size": 0}):
        with pytest.raises(WorkbookError):
            Mitigations(**bad)
    with pytest.raises(WorkbookError):
        Deployment(*shipped, "per-team")


# ----- the attacks ----------------------------------------------------------------------------


def test_guessing_a_document_beats_chance_on_a_global_cache_only(shipped):
    """Among 10 candidates the attacker finds the pasted one most of the time on a global cache (chance would get
    5 of 10 right in under 0.2% of runs), and about as often as chance (1 in 10) when the cache is salted."""
    open_guess = guess_document(Deployment(*shipped, "global").send, VICTIM, MALLORY, vocab_size=vocab(shipped),
                                candidates=10, trials=10, seed=3)
    assert open_guess.correct >= 5 and open_guess.success_rate == open_guess.correct / 10 and open_guess.chance == 0.1
    salted = guess_document(Deployment(*shipped, "per-org").send, VICTIM, MALLORY, vocab_size=vocab(shipped),
                            candidates=10, trials=8, seed=3)
    assert salted.trials == 8 and salted.correct <= 4  # chance expects 0.8; 5 or more happens < 0.1% of runs


def test_guessing_refuses_fewer_than_two_candidates_or_no_trial():
    """One candidate or zero trials is a WorkbookError."""
    for bad in ({"candidates": 1}, {"trials": 0}):
        with pytest.raises(WorkbookError):
            guess_document(FakeSend(MALLORY, PREFIX_TOKENS), VICTIM, MALLORY, vocab_size=500, **bad)


def computed_tokens(deployment):
    """A noiseless `send` on a global deployment: the tokens the engine had to compute, in place of seconds.

    Time to first token grows with the tokens computed; this is that clock without the machine's noise, so the
    attacks' logic can be checked exactly, apart from whether this machine's timings are clean enough."""
    return lambda ids, party: len(ids) - deployment.engine.generate(list(ids), max_new_tokens=1).usage.cache_read_tokens


def test_extraction_reads_every_chunk_when_chunks_fill_whole_pages(shipped):
    """On the noiseless clock, chunks of one 16-token page are read in order, one probe per candidate per chunk."""
    for seed in (6, 7):
        walk = extract_pages(computed_tokens(Deployment(*shipped, "global")), VICTIM, MALLORY,
                             vocab_size=vocab(shipped), known_tokens=64, chunks=4, chunk_tokens=16, choices=8, seed=seed)
        assert (walk.recovered, walk.probes) == (4, 32)


def test_extraction_stops_at_the_first_chunk_when_pages_are_coarser_than_the_chunks(shipped):
    """With 64-token pages a 16-token chunk completes no cached page: every candidate computes as many tokens, the
    attacker's pick (the first of the tied) is a blind guess, and with these seeds it is wrong at once."""
    for seed in (6, 7):  # their first secret chunk is not candidate 0
        walk = extract_pages(computed_tokens(Deployment(*shipped, "global", Mitigations(page_size=64))), VICTIM,
                             MALLORY, vocab_size=vocab(shipped), known_tokens=64, chunks=4, chunk_tokens=16, choices=8,
                             seed=seed)
        assert (walk.recovered, walk.probes) == (0, 8)


def test_extraction_on_real_timings_reads_far_more_than_chance(shipped):
    """Timed for real, chunks of two 16-token pages are read well beyond chance.

    A probe that a scheduler hiccup slows by a few milliseconds costs the rest of its walk, so three walks are
    pooled: blind guesses among 8 would read about 0.14 chunks per walk, under half a chunk in all three."""
    walks = [extract_pages(Deployment(*shipped, "global").send, VICTIM, MALLORY, vocab_size=vocab(shipped),
                           known_tokens=64, chunks=4, chunk_tokens=32, choices=8, seed=seed) for seed in (6, 7, 8)]
    assert sum(w.recovered for w in walks) >= 4
    assert all(w.probes == 8 * min(w.recovered + 1, w.chunks) for w in walks)


def test_extraction_validates_its_input():
    """No known part, no chunk, an empty chunk or a single choice is a WorkbookError."""
    for bad in ({"known_tokens": 0}, {"chunks": 0}, {"chunk_tokens": 0}, {"choices": 1}):
        with pytest.raises(WorkbookError):
            extract_pages(FakeSend(MALLORY, PREFIX_TOKENS), VICTIM, MALLORY, vocab_size=500, **bad)
