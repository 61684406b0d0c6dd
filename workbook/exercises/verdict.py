"""The verdict every "check yourself" exercise returns, and the answer-parsing helpers the lessons share."""

from __future__ import annotations

from dataclasses import dataclass
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
    return CheckResult(None, f"{how} Then run this cell again.")


def whole_number(answer) -> int | None:
    """The answer as an int if it is a whole number (3 or 3.0), else None."""
    if isinstance(answer, bool):
        return None
    if isinstance(answer, Integral):
        return int(answer)
    if isinstance(answer, Real) and float(answer).is_integer():
        return int(answer)
    return None


def check_number(answer, expected: int, how: str, why: str) -> CheckResult:
    if answer is None:
        return not_answered(how)
    value = whole_number(answer)
    if value is None:
        return CheckResult(False, f"Give a whole number, not {answer!r}.")
    if value == expected:
        return CheckResult(True, why)
    return CheckResult(False, f"You said {value:,}. {why}")
