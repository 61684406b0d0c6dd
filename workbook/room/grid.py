"""Where the room stands: each seat's state on each exercise, and per-exercise counts, from the records alone."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from .catalogue import Exercise, exercises
from .record import Record

STUCK_AFTER = 2  # wrong answers
STUCK_RULE = f"stuck: {STUCK_AFTER} or more wrong answers to an exercise and no right one yet"
RIGHT, STUCK, TRYING, NOT_TRIED = "right", "stuck", "trying", "not tried"
STATES = (RIGHT, STUCK, TRYING, NOT_TRIED)


@dataclass(frozen=True)
class Cell:
    """One seat on one exercise: its state, its wrong answers so far, and the try that was right (0 if none)."""

    seat: str
    exercise: str
    state: str
    wrong: int
    right_on_try: int


@dataclass(frozen=True)
class Column:
    """One exercise across the room: how many seats are done, stuck, trying, of how many, in a sentence too."""

    exercise: str
    lesson: int
    number: int
    label: str
    done: int
    stuck: int
    trying: int
    seats: int
    summary: str


@dataclass(frozen=True)
class Grid:
    """Seats × exercises (the exercises of every lesson someone has answered in), and the room in one line."""

    seats: list[str]
    columns: list[Column]
    cells: list[Cell]
    headline: str
    records: int
    stuck_rule: str = field(default=STUCK_RULE)


def cell(seat: str, exercise: str, answers: list[Record]) -> Cell:
    """A seat's state on an exercise from its answers to it, oldest first."""
    wrong = sum(not a.correct for a in answers)
    right = next((a for a in answers if a.correct), None)
    if right is not None:
        state = RIGHT
    else:
        state = STUCK if wrong >= STUCK_AFTER else TRYING if wrong else NOT_TRIED
    return Cell(seat, exercise, state, wrong, right.tries if right else 0)


def column(exercise: Exercise, cells: list[Cell]) -> Column:
    """One exercise's counts over the seats' cells."""
    count = {state: sum(c.state == state for c in cells) for state in STATES}
    summary = f"{count[RIGHT]} of {len(cells)} done, {count[STUCK]} stuck"
    return Column(exercise.name, exercise.lesson, exercise.number, exercise.label, count[RIGHT], count[STUCK],
                  count[TRYING], len(cells), summary)


def headline(columns: list[Column]) -> str:
    """The exercise most seats are stuck on, as "14 of 20 done, 5 stuck on lesson 4 ex 2" (the later one on a tie)."""
    if not columns:
        return "No answers yet."
    worst = max(reversed(columns), key=lambda c: c.stuck)
    if worst.stuck == 0:
        return "Nobody is stuck."
    return f"{worst.done} of {worst.seats} done, {worst.stuck} stuck on {worst.label}"


def grid(records: list[Record]) -> Grid:
    """The room from every record received (records of exercises this workbook does not have are left out)."""
    known = exercises()
    answers: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for record in records:
        if record.exercise in known:
            answers[record.seat, record.exercise].append(record)
    seats = sorted({seat for seat, _ in answers}, key=str.casefold)
    lessons = {known[name].lesson for _, name in answers}
    shown = [ex for ex in known.values() if ex.lesson in lessons]
    cells = {ex.name: [cell(seat, ex.name, answers.get((seat, ex.name), [])) for seat in seats] for ex in shown}
    columns = [column(ex, cells[ex.name]) for ex in shown]
    return Grid(seats, columns, [c for ex in shown for c in cells[ex.name]], headline(columns), len(records))
