"""The audit (after Gu et al., "Auditing Prompt Caching in Language Model APIs", 2025), run on any `send`.

Each trial draws fresh random prefixes, so nothing one trial caches helps another. The victim sends a
request, then the attacker probes: in a *hit* trial with the victim's prefix, in a *miss* trial with a
prefix nobody sent. Both kinds start with the victim's request, so the only difference is whether the
prefixes match; a miss probe even uses the victim's tokens in another order, so the machine's memory
caches see the same data and only the prefix cache can tell the two apart. Trials come in pairs, one of
each kind in a random order, a few warm-up trials are thrown away, and only the attacker's probe is
timed. Running victim and attacker as the same user, as two users of one organisation, and as two
organisations tells which of those a deployment lets share.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..errors import WorkbookError
from ..shapes import random_ids
from .stats import Comparison, compare
from .target import Party, Send

PREFIX_TOKENS = 64  # long enough that a hit saves a clearly measurable prefill on the shipped model
SUFFIX_TOKENS = 8  # each request's own tail, so no two requests are identical
VICTIM = Party("acme", "alice")
PAIRINGS = {  # who probes, relative to the victim
    "same user": VICTIM,
    "same organisation": Party("acme", "bob"),
    "another organisation": Party("globex", "mallory"),
}


@dataclass(frozen=True)
class Samples:
    hits: list[float]  # attacker's times after the victim sent the prefix
    misses: list[float]  # attacker's times on prefixes nobody sent


def reordered(rng: random.Random, ids: list[int]) -> list[int]:
    """The same tokens in another order, starting with a different token: a prefix nobody sent."""
    if len(set(ids)) < 2:  # nothing to reorder: change the first token instead
        return [ids[0] - 1 if ids[0] else 1] + ids[1:]
    out = ids[:]
    while out[0] == ids[0]:
        rng.shuffle(out)
    return out


def collect(send: Send, victim: Party, attacker: Party, *, trials: int = 30, vocab_size: int,
            prefix_tokens: int = PREFIX_TOKENS, warmup: int = 2, seed: int = 0) -> Samples:
    """`trials` hit and `trials` miss timings of the attacker, in a shuffled order, after `warmup` of each."""
    if trials < 2 or prefix_tokens < 1:
        raise WorkbookError("An audit needs at least 2 trials of each kind and a prefix of at least 1 token.")
    rng = random.Random(seed)
    # One hit and one miss per pair, in a random order: every stretch of time holds as many of each, so a
    # machine that speeds up or slows down during the audit moves both kinds alike.
    plan = [kind for _ in range(trials + warmup) for kind in rng.sample(["hit", "miss"], 2)]
    samples, seen = {"hit": [], "miss": []}, {"hit": 0, "miss": 0}
    for kind in plan:
        victims = random_ids(rng, prefix_tokens, vocab_size)
        send(victims + random_ids(rng, SUFFIX_TOKENS, vocab_size), victim)  # the victim's request, untimed
        probe = victims if kind == "hit" else reordered(rng, victims)
        seconds = send(probe + random_ids(rng, SUFFIX_TOKENS, vocab_size), attacker)
        seen[kind] += 1
        if seen[kind] > warmup:
            samples[kind].append(seconds)
    return Samples(samples["hit"], samples["miss"])


@dataclass(frozen=True)
class Verdict:
    pairing: str
    samples: Samples
    comparison: Comparison

    @property
    def shared(self) -> bool:
        return self.comparison.shared


def audit_sharing(send: Send, *, vocab_size: int, trials: int = 30, seed: int = 0) -> dict[str, Verdict]:
    """A verdict for each pairing: does the attacker's timing reveal the victim's prefix?"""
    verdicts = {}
    for i, (pairing, attacker) in enumerate(PAIRINGS.items()):
        samples = collect(send, VICTIM, attacker, trials=trials, vocab_size=vocab_size, seed=seed + i)
        verdicts[pairing] = Verdict(pairing, samples, compare(samples.hits, samples.misses))
    return verdicts
