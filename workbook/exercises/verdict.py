"""The verdict every "check yourself" exercise returns, and the answer-reading helpers every lesson shares.

One rule for every exercise (`judge`): a right answer gets the worked explanation; the first wrong answer gets a hint
that points at the idea; the second wrong try, or a call with `reveal=True`, gets the worked answer. An answer of the
wrong shape ("Give a whole number, not 'abc'") is sent back by the check itself and is not counted as a try.
When the facilitator's room is set (`workbook.room`), `judge` also sends it each answer, right or wrong.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Hashable
from numbers import Integral, Real

from ..room import client as room


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one answer: correct is True, False, or None when nothing was answered yet."""

    correct: bool | None
    message: str

    def __bool__(self) -> bool:
        return bool(self.correct)

    def __repr__(self) -> str:
        mark = {True: "✅ Right.", False: "❌ Not quite.", None: "✏️ Not answered yet."}[self.correct]
        return f"{mark} {self.message}"

    __str__ = __repr__


_wrong_tries: Counter = Counter()  # (exercise, variant) -> wrong answers so far, in this kernel


def reset_tries() -> None:
    """Forget every wrong try, so the next wrong answer to each exercise gets its hint again."""
    _wrong_tries.clear()


def not_answered(how: str) -> CheckResult:
    """The verdict while the answer is still None: what to write, then run the cell again."""
    return CheckResult(None, f"{how} Then run this cell again.")


def judge(exercise: str, correct: bool | None, *, how: str, worked: str, hint: str, said: str = "",
          reveal: bool = False, variant: Hashable = None) -> CheckResult:
    """The verdict on a well-formed answer (`correct` is None while nothing was answered).

    `exercise` is the check function's name; `variant` tells apart exercises that share one (other arguments).
    Right: the `worked` answer. Wrong: `said` (what the learner answered), then the `hint` the first time and the
    `worked` answer from the second wrong try on. `reveal=True` shows the worked answer at once, answered or not.
    An answer (right or wrong) is also sent to the facilitator's room when one is set (`workbook.room`).
    """
    if correct is None:
        return CheckResult(None, f"The worked answer: {worked}") if reveal else not_answered(how)
    if not correct:
        _wrong_tries[exercise, variant] += 1
    # The try this answer was: the wrong ones so far, and this one if it is right. Sent only if a room is set.
    room.send(exercise, correct=bool(correct), tries=_wrong_tries[exercise, variant] + bool(correct))
    if correct:
        return CheckResult(True, worked)
    if reveal or _wrong_tries[exercise, variant] > 1:
        return CheckResult(False, f"{said}{worked}")
    return CheckResult(False, f"{said}{hint} Try again, or call {exercise}(..., reveal=True) for the worked answer.")


def whole_number(answer) -> int | None:
    """The answer as an int if it is a whole number (3 or 3.0), else None."""
    if isinstance(answer, bool) or not isinstance(answer, Real):
        return None
    if isinstance(answer, Integral) or float(answer).is_integer():
        return int(answer)
    return None


def real_number(answer) -> float | None:
    """The answer as a float if it is a number (True and False are not), else None."""
    if isinstance(answer, bool) or not isinstance(answer, Real):
        return None
    return float(answer)


def check_number(answer, expected: int, *, exercise: str, how: str, why: str, hint: str, unit: str = "",
                 reveal: bool = False, variant: Hashable = None) -> CheckResult:
    """A whole-number answer against `expected`, judged by `judge` (`why` is the worked answer)."""
    value = whole_number(answer)
    if answer is not None and value is None:
        return CheckResult(False, f"Give a whole number{f' of {unit}' if unit else ''}, not {answer!r}.")
    return judge(exercise, None if answer is None else value == expected, how=how, worked=why, hint=hint,
                 said="" if value is None else f"You said {value:,}. ", reveal=reveal, variant=variant)


def check_amount(answer, expected: float, *, exercise: str, how: str, what: str, why: str, hint: str,
                 said: str = "{:g}", rel_tol: float = 0.0, abs_tol: float = 0.0, reveal: bool = False) -> CheckResult:
    """A numeric answer (`what`: "US dollars", ...) within a tolerance of `expected`; `said` formats it back."""
    value = real_number(answer)
    if answer is not None and value is None:
        return CheckResult(False, f"Give a number of {what}, not {answer!r}.")
    correct = None if value is None else math.isclose(value, expected, rel_tol=rel_tol, abs_tol=abs_tol)
    return judge(exercise, correct, how=how, worked=why, hint=hint,
                 said="" if value is None else f"You said {said.format(value)}. ", reveal=reveal)


Options = dict[str, tuple[str, bool, str]]  # letter -> (the change, whether it is one of the answers, why)


def chosen_letters(answer, options: Options) -> set[str] | CheckResult:
    """The letters a learner picked, from a set, a list or a string like "b, c"; else a verdict saying what to do."""
    if isinstance(answer, str):
        chosen = {ch for ch in answer.lower() if ch.isalnum()}
    else:
        try:
            chosen = {str(x).strip().lower() for x in answer}
        except TypeError:
            return CheckResult(False, f'Give a set of letters like {{"a", "c"}}, not {answer!r}.')
    unknown = chosen - options.keys()
    if unknown:
        return CheckResult(False, f"{', '.join(sorted(unknown))} is not an option; choose from {', '.join(options)}.")
    return chosen


def worked_options(options: Options, yes: str, no: str) -> tuple[set[str], str]:
    """The letters that are answers, and one line per option saying `yes` or `no` and why."""
    answers = {letter for letter, (_, is_answer, _) in options.items() if is_answer}
    lines = "\n".join(f"  {letter}) {yes if is_answer else no}: {why}." for letter, (_, is_answer, why) in options.items())
    return answers, lines


def check_letters(answer, options: Options, *, exercise: str, how: str, yes: str, no: str, right: str,
                  hint: str | Callable[[set[str], set[str]], str], reveal: bool = False) -> CheckResult:
    """A set of letters against the options that are answers. The worked answer is `right`, then why for each option
    (`yes` or `no`); the hint is `hint`, or the one it writes from what was chosen and what was right."""
    answers, lines = worked_options(options, yes=yes, no=no)
    chosen = None if answer is None else chosen_letters(answer, options)
    if isinstance(chosen, CheckResult):
        return chosen
    hint_text = hint if isinstance(hint, str) or chosen is None else hint(chosen, answers)
    return judge(exercise, None if chosen is None else chosen == answers, how=how, worked=f"{right}\n{lines}",
                 hint=hint_text, reveal=reveal)
