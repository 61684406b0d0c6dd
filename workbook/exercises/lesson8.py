"""Lesson 8's "check yourself" exercises (semantic caching): each compares an answer with a reference computed by
the package and returns a `CheckResult`: right, wrong (with a hint), or not answered yet while the answer is still None.
"""

from __future__ import annotations

from ..semantic import SemanticCache, achievable_hit_rate, load_query_log
from ..semantic.verify import disagreement
from .verdict import CheckResult, Options, check_amount, check_letters, check_number

# Exercise 1: pairs written for the exercise, none of them in data/semantic/pairs.csv.
VERIFY_PAIRS = {
    "a": ("Can I pay in euros?", "Can I pay in dollars?"),
    "b": ("How do I turn on two-factor login?", "How do I turn off two-factor login?"),
    "c": ("What's your phone number?", "how can I call you"),
    "d": ("Is the Trailhead 40 backpack waterproof?", "Is the Trailhead 40 backpack water resistant?"),
    "e": ("Do you price match?", "Will you match a lower price from another store?"),
}
ACHIEVABLE_AT = 0.8  # exercise 3's threshold (section 7 prints the bound at others)
REFUNDS = "refunds"  # the policy lesson 8's section 5 changes
CHANGED_POLICY = "shipping"  # exercise 2's policy, another one, so section 5's count does not answer it


def verify_options() -> Options:
    """Each exercise-1 pair, whether the verification stage refuses it, and the reason it gives (or that it gives none)."""
    options = {}
    for letter, (cached, incoming) in VERIFY_PAIRS.items():
        reason = disagreement(incoming, cached)
        options[letter] = (f"{cached} / {incoming}", reason is not None, reason or "no rule objects")
    return options


def check_refusals(answer, *, reveal: bool = False) -> CheckResult:
    """Exercise 1: which pairs does the verification stage refuse, whatever their cosine similarity?"""
    return check_letters(
        answer, verify_options(), exercise="check_refusals",
        how='Write the letters of the refused pairs as a set, e.g. {"a", "c"}.',
        yes="refused", no="passed", right="Those are the pairs a rule objects to.",
        hint="The rules ignore how similar a pair looks: they look only at the words that differ between the two "
             "questions. For each pair, find those words and ask whether one of section 3's rules covers them (a "
             "rule reads the words, not what they mean).",
        reveal=reveal)


def check_invalidated(answer, cache: SemanticCache, *, reveal: bool = False) -> CheckResult:
    """Exercise 2: the shipping policy changed. How many entries of `cache` must go?"""
    truth = sum(e.meta.get("policy") == CHANGED_POLICY for e in cache.entries())
    return check_number(
        answer, truth, exercise="check_invalidated", how="Replace None with a number of entries.", unit="entries",
        reveal=reveal,
        why=(f"{truth} entries quote the {CHANGED_POLICY!r} policy (their meta says so); "
             f"`cache.invalidate(lambda e: e.meta.get('policy') == {CHANGED_POLICY!r})` drops exactly those."),
        hint="An entry must go when the answer it stores quotes the policy that changed, however its question is "
             "worded. Section 5 found the entries of another policy; several intents can quote the same one.")


def check_achievable(answer, embedder, *, reveal: bool = False) -> CheckResult:
    """Exercise 3: at most what share of the day's queries could a cache hit at threshold `ACHIEVABLE_AT`?"""
    truth = achievable_hit_rate([q.query for q in load_query_log()], embedder, ACHIEVABLE_AT)
    return check_amount(
        answer, truth, exercise="check_achievable", how="Replace None with a share between 0 and 1.",
        what="a share between 0 and 1",
        rel_tol=0.0, abs_tol=0.005, said="{:.3f}", reveal=reveal,
        why=(f"{truth:.3f}: the share of queries whose exact text, or an earlier query at cosine {ACHIEVABLE_AT} or "
             "more, came before them. A cache can only do worse: TTLs, evictions and the verification stage refuse some."),
        hint=(f"Even a perfect cache can only hit a query that something earlier in the day already asked: the same "
              f"text, or a query at cosine {ACHIEVABLE_AT} or more. Section 7 measured this bound at other "
              "thresholds."))
