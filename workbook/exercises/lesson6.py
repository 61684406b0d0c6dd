"""Lesson 6's "check yourself" exercises on speculative decoding, each returning a `CheckResult`.

An answer that is still `None` gets "not answered yet", never an error, so the lesson runs top
to bottom before the learner has answered anything.
"""

from __future__ import annotations

from ..speculative import predicted_speedup
from .verdict import CheckResult, check_letters, judge, whole_number

# Exercise 1: one verify step.
STEP_K, STEP_ACCEPTED = 6, 2

# Exercise 2: the k that pays best for a given draft.
BEST_K_ALPHA, BEST_K_C, BEST_K_RANGE = 0.6, 0.2, range(1, 11)

# Exercise 3: what may change the tokens of greedy speculative decoding. Each: (change, changes output?, why).
OUTPUT_CHANGERS: dict[str, tuple[str, bool, str]] = {
    "a": ("replacing the draft model with a much worse one", False,
          "a worse draft is rejected more often, which costs speed, but every kept token is the target's own choice"),
    "b": ("raising k from 4 to 8", False, "more proposals per step, judged by the same rule"),
    "c": ("drafting by prompt lookup instead of a draft model", False,
          "where the guesses come from does not matter; the target still decides"),
    "d": ("replacing the target model with another one", True,
          "the output is the target's greedy output, so another target gives other tokens"),
    "e": ("letting k adapt from step to step (adaptive_k=True)", False,
          "k only changes how many tokens each pass may keep"),
}


def step_outcome(k: int, n_accepted: int) -> tuple[int, int]:
    """(tokens a verify step adds, target cache rows it rolls back) when `n_accepted` of `k` drafts pass."""
    return n_accepted + 1, k - n_accepted


def check_step_outcome(answer, k: int = STEP_K, n_accepted: int = STEP_ACCEPTED, *,
                       reveal: bool = False) -> CheckResult:
    """Exercise 1: k drafts, the first n_accepted pass; answer (tokens added, target rows rolled back)."""
    given = None
    if answer is not None:
        try:
            added, dropped = (whole_number(x) for x in answer)
        except (TypeError, ValueError):
            return CheckResult(False, f"Give a pair of whole numbers like (1, 2), not {answer!r}.")
        if added is None or dropped is None:
            return CheckResult(False, f"Both numbers must be whole numbers, not {answer!r}.")
        given = (added, dropped)
    want_added, want_dropped = step_outcome(k, n_accepted)
    why = (f"The step keeps the {n_accepted} accepted drafts plus the target's own token at the first rejection: "
           f"{want_added} tokens. The verify pass wrote a row for the pending token and each of the {k} drafts; "
           f"the rows of the rejected draft and of the {k - n_accepted - 1} after it are dropped: {want_dropped} rows. "
           "(The correction itself has no row yet: it is the next pass's pending token.)")
    return judge("check_step_outcome", None if given is None else given == (want_added, want_dropped),
                 how="Set the answer to a pair of whole numbers: (tokens added, rows rolled back).", worked=why,
                 said="" if given is None else f"You said {given}. ",
                 hint="Two ideas: at the first rejection the target puts in its own token, so a step always adds "
                      "something; and after the rollback the cache holds rows only for tokens that stay in the text.",
                 reveal=reveal, variant=(k, n_accepted))


def best_k(alpha: float, c: float, ks=BEST_K_RANGE) -> int:
    """The k with the highest predicted speedup for per-token acceptance `alpha` and cost ratio `c`."""
    return max(ks, key=lambda k: predicted_speedup(alpha, k, c))


def check_best_k(answer, alpha: float = BEST_K_ALPHA, c: float = BEST_K_C, *, reveal: bool = False) -> CheckResult:
    """Exercise 2: which k from 1 to 10 gives the highest predicted speedup for this alpha and c?"""
    k = whole_number(answer)
    if answer is not None and (k is None or k not in BEST_K_RANGE):
        return CheckResult(False, f"Give a whole number from {BEST_K_RANGE.start} to {BEST_K_RANGE.stop - 1}, not {answer!r}.")
    best = best_k(alpha, c)
    table = ", ".join(f"k={j}: {predicted_speedup(alpha, j, c):.2f}x" for j in range(1, 6))
    why = (f"With α = {alpha} and c = {c}: {table}. Each extra draft costs c of a target pass for sure, but only "
           f"pays off if every draft before it passed, which gets less likely as k grows: k = {best} is best.")
    return judge("check_best_k", None if k is None else k == best,
                 how=f"Set the answer to a whole number k from {BEST_K_RANGE.start} to {BEST_K_RANGE.stop - 1}.",
                 worked=why, said="" if k is None else f"k = {k} predicts {predicted_speedup(alpha, k, c):.2f}x. ",
                 hint="Call `predicted_speedup(alpha, k, c)` for a few k and compare: an extra draft always costs c, "
                      "but pays only if every draft before it passed.", reveal=reveal, variant=(alpha, c))


def check_output_changers(answer, *, reveal: bool = False) -> CheckResult:
    """Exercise 3: which changes in `OUTPUT_CHANGERS` can change greedy speculative output? A set of letters."""
    return check_letters(answer, OUTPUT_CHANGERS, exercise="check_output_changers",
                         how='Set the answer to a set of letters, e.g. {"a", "c"}, or set() for none.',
                         yes="changes the output", no="keeps the output",
                         right="The drafter only decides how fast; the target decides what (barring the float "
                               "near-ties of section 3's fine point):",
                         hint="Ask of each change: does it change which token the target would pick itself? "
                              "Drafts never get a say.", reveal=reveal)
