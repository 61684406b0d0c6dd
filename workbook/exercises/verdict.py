"""The verdict every "check yourself" exercise returns, and the answer-reading helpers every lesson shares."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable
from numbers import Integral, Real


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


def not_answered(how: str) -> CheckResult:
    """The verdict while the answer is still None: what to write, then run the cell again."""
    return CheckResult(None, f"{how} Then run this cell again.")


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


def check_number(answer, expected: int, *, how: str, why: str, hint: str | None = None,
                 unit: str = "") -> CheckResult:
    """A whole-number answer against `expected`. A wrong one hears `hint` if given, else the worked `why`."""
    if answer is None:
        return not_answered(how)
    value = whole_number(answer)
    if value is None:
        return CheckResult(False, f"Give a whole number{f' of {unit}' if unit else ''}, not {answer!r}.")
    if value == expected:
        return CheckResult(True, why)
    return CheckResult(False, f"You said {value:,}. {why if hint is None else hint}")


def check_amount(answer, expected: float, *, how: str, what: str, why: str, hint: str, said: str = "{:g}",
                 rel_tol: float = 0.0, abs_tol: float = 0.0) -> CheckResult:
    """A numeric answer (`what`: "US dollars", ...) within a tolerance of `expected`; `said` formats it back."""
    if answer is None:
        return not_answered(how)
    value = real_number(answer)
    if value is None:
        return CheckResult(False, f"Give a number of {what}, not {answer!r}.")
    if math.isclose(value, expected, rel_tol=rel_tol, abs_tol=abs_tol):
        return CheckResult(True, why)
    return CheckResult(False, f"You said {said.format(value)}. {hint}")


Options = dict[str, tuple[str, bool, str]]  # letter -> (the change, whether it is one of the answers, why)


def chosen_letters(answer, options: Options, how: str) -> set[str] | CheckResult:
    """The letters a learner picked, from a set, a list or a string like "b, c"; else a verdict saying what to do."""
    if answer is None:
        return not_answered(how)
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


def check_letters(answer, options: Options, *, how: str, yes: str, no: str, right: str,
                  wrong: str | Callable[[set[str], set[str]], str]) -> CheckResult:
    """A set of letters against the options that are answers. Right: `right`, then why for each option (`yes` or
    `no`); wrong: the hint `wrong`, or the one it writes from what was chosen and what was right."""
    chosen = chosen_letters(answer, options, how)
    if isinstance(chosen, CheckResult):
        return chosen
    answers, lines = worked_options(options, yes=yes, no=no)
    if chosen == answers:
        return CheckResult(True, f"{right}\n{lines}")
    return CheckResult(False, wrong if isinstance(wrong, str) else wrong(chosen, answers))
