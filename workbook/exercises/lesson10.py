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
CONFIDENCE = 0.5  # exercise 2: an attacker who can try again settles for finding the sharing half the time
GUESS_CANDIDATES, GUESS_TRIALS = 8, 200  # exercise 3 (the lesson's own guessing uses 20 candidates)


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
    """Exercise 2: from the power curve behind the random delay, how many probes per side find the sharing half the time?"""
    truth = probes_needed(curve, CONFIDENCE)
    if truth is None:
        return CheckResult(None, f"No size on this curve reaches {CONFIDENCE:.0%}: extend `sizes` and run the cell again.")
    return check_number(
        answer, truth, exercise="check_probes", how="Replace None with a number of probes per side.", unit="probes",
        reveal=reveal,
        why=f"{truth} probes per side: the first size whose audits find the sharing at least {CONFIDENCE:.0%} of the time "
            f"(`probes_needed(delayed_curve, {CONFIDENCE})`). An attacker who can repeat a cheap audit needs fewer probes than "
            f"one who must succeed at once.",
        hint="The legend's numbers are for 90%, not for this question. Print `delayed_curve`: each pair is (probes per "
             "side, share of audits that found the sharing). Which is the smallest size whose share reaches one half?")


def check_chance(answer, *, reveal: bool = False) -> CheckResult:
    """Exercise 3: with every response padded to a deadline, how many of 200 guesses among 8 documents should win?"""
    truth = GUESS_TRIALS // GUESS_CANDIDATES
    return check_number(
        answer, truth, exercise="check_chance", how="Replace None with a number of guesses.", unit="guesses",
        reveal=reveal,
        why=f"{truth}: once every probe takes the same time the fastest one is a blind pick, right one time in "
            f"{GUESS_CANDIDATES}, so {GUESS_TRIALS} guesses win {GUESS_TRIALS} / {GUESS_CANDIDATES} = {truth} on average. "
            f"More than that, reliably, means a leak.",
        hint="Ask what the timings still tell the attacker once every response waits for the same deadline, and what a "
             "pick made on that is worth over many tries.")
