"""The one record a learner's check-yourself call sends to the room, and the rules that refuse anything else.

A record holds a seat (a name the learner picks, no account), the lesson, the exercise, whether the answer was right,
the try it was, and the learner's clock time: nothing else. A body over `MAX_BODY_BYTES`, a field missing, extra or of
the wrong type, or an exercise that is not the lesson's, is refused whole (`BadRecordError`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, model_validator

from ..errors import WorkbookError
from .catalogue import exercises

MAX_BODY_BYTES = 1_024  # a record is about 130 bytes of JSON
MAX_SEAT_CHARS = 40

# Printable, on one line, not blank: a seat is shown in the facilitator's grid as it was typed.
Seat = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SEAT_CHARS,
                                        pattern=r"^[^\x00-\x1f\x7f]+$")]
_SEAT = TypeAdapter(Seat, config=ConfigDict(strict=True))


class BadRecordError(WorkbookError):
    """A record the room does not take: it says which field was wrong, and nothing of it is stored."""


class Record(BaseModel):
    """One answer to one exercise, as the learner's notebook sends it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    seat: Seat
    lesson: Annotated[int, Field(ge=1, le=99)]
    exercise: Annotated[str, StringConstraints(max_length=64, pattern=r"^check_[a-z0-9_]+$")]
    correct: bool
    tries: Annotated[int, Field(ge=1, le=10_000, description="the try this answer was: wrong answers so far, "
                                                             "and this one if it is right")]
    time: Annotated[float, Field(gt=0, description="seconds since 1970 on the learner's clock")]

    @model_validator(mode="after")
    def _a_known_exercise(self) -> Record:
        known = exercises().get(self.exercise)
        if known is None:
            raise ValueError(f"{self.exercise} is not a check-yourself exercise")
        if known.lesson != self.lesson:
            raise ValueError(f"{self.exercise} is lesson {known.lesson}'s exercise, not lesson {self.lesson}'s")
        return self


def parse(body: bytes) -> Record:
    """The record in a request body, or BadRecordError saying what is wrong with it."""
    if len(body) > MAX_BODY_BYTES:
        raise BadRecordError(f"A record is at most {MAX_BODY_BYTES:,} bytes; this one is {len(body):,}.")
    try:
        return Record.model_validate_json(body)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in error.errors())
        raise BadRecordError(f"Not a room record ({problems}).") from None


def check_seat(seat: str) -> str:
    """The seat as it will be shown (spaces trimmed), or BadRecordError saying what a seat may be."""
    try:
        return _SEAT.validate_python(seat)
    except ValidationError:
        raise BadRecordError(f"A seat is a name of 1 to {MAX_SEAT_CHARS} printable characters on one line, "
                             f"not {seat!r}.") from None
