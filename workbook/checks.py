"""Argument rules shared by every module: each written once here and imported where it applies."""

from __future__ import annotations

from numbers import Integral

from .errors import WorkbookError


def check_whole(name: str, value, minimum: int, error: type[WorkbookError] = WorkbookError) -> None:
    """Refuse anything but a whole number >= `minimum` with `error`; True is not a count, so booleans are refused too."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise error(f"{name} must be a whole number >= {minimum}, not {value!r}.")
