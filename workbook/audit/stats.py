"""Telling two sets of timings apart: a rank test, the ROC curve of a threshold detector, and probes needed.

Hits are faster than misses, so "a random miss is slower than a random hit" is what the audit tests.
Mann-Whitney's U counts exactly those (miss, hit) pairs, so U / (n_miss * n_hit) is the area under the
ROC curve (AUC) traced by the family of detectors "call it a hit when the probe is faster than t", one
for each threshold t: 0.5 means timing tells nothing, 1.0 means it tells everything. SciPy does the
test; scikit-learn draws the curve.

- p-value: how often timings at least this separated would turn up if hits and misses took the same time.
- power: the share of audits of a given size that find a leak that is really there (`power_curve`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.stats import mannwhitneyu
from sklearn.metrics import roc_curve

from ..errors import WorkbookError

ALPHA = 1e-3  # the p-value below which the audit calls the cache shared


@dataclass(frozen=True)
class Comparison:
    p_value: float  # one-sided: how likely timings this separated are if hits and misses took the same time
    auc: float  # P(a random miss is slower than a random hit); ties count half
    false_positive_rate: np.ndarray  # the ROC curve of "call it a hit when faster than t", over every t
    true_positive_rate: np.ndarray
    thresholds_s: np.ndarray

    @property
    def shared(self) -> bool:
        return self.p_value < ALPHA


def compare(hits: Sequence[float], misses: Sequence[float]) -> Comparison:
    """Are `hits` (probes after the victim's request) faster than `misses` (probes of prefixes nobody sent)?"""
    if len(hits) < 2 or len(misses) < 2:
        raise WorkbookError("Comparing timings needs at least two samples on each side.")
    test = mannwhitneyu(misses, hits, alternative="greater")
    labels = np.r_[np.ones(len(hits)), np.zeros(len(misses))]
    fpr, tpr, thresholds = roc_curve(labels, -np.r_[hits, misses])  # faster = more hit-like
    return Comparison(float(test.pvalue), float(test.statistic) / (len(hits) * len(misses)), fpr, tpr, -thresholds)


def behind_delay(times: Sequence[float], jitter_s: float, seed: int = 0) -> list[float]:
    """What an observer sees when the server adds a uniform random delay in [0, jitter_s) to each response."""
    rng = random.Random(seed)
    return [t + rng.uniform(0, jitter_s) for t in times]


def power_curve(hits: Sequence[float], misses: Sequence[float], sizes: Sequence[int], *, alpha: float = ALPHA,
                resamples: int = 200, seed: int = 0) -> list[tuple[int, float]]:
    """(probes per side, share of audits that call the cache shared) when an audit draws that many of each.

    Draws with replacement from the measured timings: how many probes an attacker needs for a given
    confidence, without running the engine again for every size. Each row of the drawn arrays is one
    audit; SciPy tests all the rows at once.
    """
    if min(sizes) < 2:
        raise WorkbookError("An audit needs at least two probes on each side.")
    rng = np.random.default_rng(seed)
    hits, misses = np.asarray(hits, dtype=float), np.asarray(misses, dtype=float)
    curve = []
    for n in sizes:
        audits_misses, audits_hits = rng.choice(misses, size=(resamples, n)), rng.choice(hits, size=(resamples, n))
        p_values = mannwhitneyu(audits_misses, audits_hits, alternative="greater", axis=1).pvalue
        curve.append((n, float(np.mean(p_values < alpha))))
    return curve


def fewest_probes(alpha: float = ALPHA) -> int:
    """The fewest probes per side with which even a perfect separation (every miss slower than every hit) has p < alpha.

    Below it no audit can call a cache shared, however clear the timings: the test needs enough pairs to rule out luck.
    """
    n = 2
    while mannwhitneyu(range(n, 2 * n), range(n), alternative="greater").pvalue >= alpha:
        n += 1
    return n


def probes_needed(curve: Sequence[tuple[int, float]], confidence: float = 0.9) -> int | None:
    """The fewest probes per side whose audits find the sharing at least `confidence` of the time; None if none do."""
    return next((n for n, found in curve if found >= confidence), None)
