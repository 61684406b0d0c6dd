"""The facilitator's live view of the room, opt-in: learners' check-yourself answers sent to one collector
(`python -m workbook.room serve`), shown as a grid of seats × exercises. See the README, "A facilitator's view of the
room". Importing this is light: the collector's web framework is imported only by `serve`."""

from .client import join, leave

__all__ = ["join", "leave"]
