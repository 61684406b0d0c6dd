"""Which exercises there are: every lesson's `check_*` functions, numbered in the order the lesson module defines them
(the order the notebook asks them). The collector refuses records of any other exercise.

The lesson modules are read as source, not imported: a learner's kernel that sends its first record has imported one
lesson's checks, and importing the other ten would hold that check up for seconds.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_LESSON_FILE = re.compile(r"lesson(\d+)\.py")
EXERCISES_DIR = Path(__file__).resolve().parent.parent / "exercises"  # read, not imported: the exercises sit above the room


@dataclass(frozen=True)
class Exercise:
    """One check-yourself exercise: lesson 4, exercise 2 is `check_break_penalty`."""

    lesson: int
    number: int
    name: str

    @property
    def label(self) -> str:
        return f"lesson {self.lesson} ex {self.number}"


def _checks(source: str) -> list[str]:
    """The names of the `check_*` functions a module's source defines at its top level, in order."""
    return [node.name for node in ast.parse(source).body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("check_")]


@cache
def exercises() -> dict[str, Exercise]:
    """Every exercise by its check function's name, in lesson order."""
    found: list[Exercise] = []
    for path in EXERCISES_DIR.iterdir():
        match = _LESSON_FILE.fullmatch(path.name)
        if match:
            found += [Exercise(int(match.group(1)), number, name)
                      for number, name in enumerate(_checks(path.read_text(encoding="utf-8")), start=1)]
    return {ex.name: ex for ex in sorted(found, key=lambda ex: (ex.lesson, ex.number))}
