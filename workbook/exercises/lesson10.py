"""Lesson 10's "check yourself" exercises (the timing side-channel audit): each compares an answer with a reference
computed by the package and returns a `CheckResult`: right, wrong (with a hint), or not answered yet.
"""

from __future__ import annotations

from typing import Sequence

from ..audit import ISOLATIONS, PAIRINGS, probes_needed
from ..audit.procedure import VICTIM
from .verdict import CheckResult, Options, check_letters, check_number

SALTED = "per-org"  # exercise 1's deployment
LETTERS = dict(zip("abc", PAIRINGS))  # exercise 1's options: a) same user, b) same organisation, c) another organisation
CONFIDENCE = 0.9  # exercise 2
GUESS_CANDIDATES, GUESS_TRIALS = 20, 100  # exercise 3


def leak_options(isolation: str = SALTED) -> Options:
    """Each attacker, whether a deployment with `isolation` lets them share the victim's cache entries, and why."""
    salt = ISOLATIONS[isolation]
    options = {}
    for letter, pairing in LETTERS.items():
        attacker = PAIRINGS[pairing]
        shares = salt(attacker) == salt(VICTIM)
        options[letter] = (pairing, shares, f"the salt is {salt(attacker)!r} for the attacker and {salt(VICTIM)!r} for "
                                            f"the victim")
    return options


def check_leaks(answer, *, reveal: bool = False) -> CheckResult:
    """Exercise 1: the cache is salted per organisation. Which attackers can still time the victim's prefixes?"""
    return check_letters(
        answer, leak_options(), exercise="check_leaks", how='Write the letters as a set, e.g. {"a"}.',
        yes="can time it", no="cannot",
        right="The salt is the boundary: whoever gets the same salt shares the entries, and so the timing.",
        hint="Compare each attacker's salt with the victim's: `ISOLATIONS['per-org'](party)`.", reveal=reveal)


def check_probes(answer, curve: Sequence[tuple[int, float]], *, reveal: bool = False) -> CheckResult:
    """Exercise 2: from the power curve behind the random delay, how many probes per side find the sharing 90% of the time?"""
    truth = probes_needed(curve, CONFIDENCE)
    if truth is None:
        return CheckResult(None, "No size on this curve reaches 90%: extend `sizes` and run the cell again.")
    return check_number(
        answer, truth, exercise="check_probes", how="Replace None with a number of probes per side.", unit="probes",
        reveal=reveal,
        why=f"{truth} probes per side: the first size whose audits find the sharing at least {CONFIDENCE:.0%} of the time.",
        hint="Read the curve from the left: the first size at or above 90%. `probes_needed(curve)` computes it.")


def check_chance(answer, *, reveal: bool = False) -> CheckResult:
    """Exercise 3: with hits padded away, how many of 100 guesses among 20 documents should the attacker expect to win?"""
    truth = GUESS_TRIALS // GUESS_CANDIDATES
    return check_number(
        answer, truth, exercise="check_chance", how="Replace None with a number of guesses.", unit="guesses",
        reveal=reveal,
        why=f"{truth}: with no timing signal each guess is one chance in {GUESS_CANDIDATES}, so {GUESS_TRIALS} guesses win "
            f"{GUESS_TRIALS} / {GUESS_CANDIDATES} = {truth} on average. More than that, reliably, means a leak.",
        hint="With no signal, every candidate is equally likely to be the fastest.")
