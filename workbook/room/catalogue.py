"""Which exercises there are: every lesson's `check_*` functions, numbered in the order the lesson module defines them
(the order the notebook asks them). The collector refuses records of any other exercise."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass
from functools import cache

import workbook.exercises

_LESSON_MODULE = re.compile(r"lesson(\d+)")


@dataclass(frozen=True)
class Exercise:
    """One check-yourself exercise: lesson 4, exercise 2 is `check_break_penalty`."""

    lesson: int
    number: int
    name: str

    @property
    def label(self) -> str:
        return f"lesson {self.lesson} ex {self.number}"


@cache
def exercises() -> dict[str, Exercise]:
    """Every exercise by its check function's name, in lesson order."""
    found: list[Exercise] = []
    for module_info in pkgutil.iter_modules(workbook.exercises.__path__):
        match = _LESSON_MODULE.fullmatch(module_info.name)
        if match:
            module = importlib.import_module(f"workbook.exercises.{module_info.name}")
            checks = [name for name, fn in vars(module).items()
                      if name.startswith("check_") and inspect.isfunction(fn) and fn.__module__ == module.__name__]
            found += [Exercise(int(match.group(1)), number, name) for number, name in enumerate(checks, start=1)]
    return {ex.name: ex for ex in sorted(found, key=lambda ex: (ex.lesson, ex.number))}
