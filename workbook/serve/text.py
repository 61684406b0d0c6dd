"""A request's text as its tokens arrive: released only once it is final, cut at the first stop sequence.

Two things make the text of the tokens so far unsafe to send at once: a token may end inside a
multi-byte character (decoded as U+FFFD until the next token completes it), and the text may end
with the beginning of a stop sequence, which must not reach the client if the sequence completes.
OpenAI's SDK (openai 3.63.0, `types/chat/completion_create_params.py`, read 2026-12-06) says of
`stop`: "Up to 4 sequences where the API will stop generating further tokens. The returned text
will not contain the stop sequence."
"""

from __future__ import annotations

from typing import Sequence

MAX_STOP_SEQUENCES = 4  # "Up to 4 sequences", as quoted above
INCOMPLETE = "\ufffd"  # what a split multi-byte character decodes to until its last byte arrives


class TextStream:
    """Turns a growing list of output token ids into text deltas; `stopped` once a stop sequence appears."""

    def __init__(self, tokenizer, stop: Sequence[str] = (), eos: int | None = None):
        self.tokenizer, self.stop, self.eos = tokenizer, tuple(stop), eos
        self.sent = 0  # characters of the text already released
        self.stopped = False

    def feed(self, ids: Sequence[int]) -> str:
        """The new text that is final now, given every output id so far."""
        text = self._text(ids)
        cut = self._first_stop(text)
        if cut is not None:
            self.stopped = True
            return self._release(text, cut)
        return self._release(text, len(text) - self._held_back(text))

    def rest(self, ids: Sequence[int]) -> str:
        """At the end of the request: everything not released yet (nothing more can complete it)."""
        return "" if self.stopped else self._release(self._text(ids), None)

    def _text(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i != self.eos])

    def _first_stop(self, text: str) -> int | None:
        # A stop sequence can only begin in text not released yet: released text held no stop and no start of one.
        found = [i for i in (text.find(s, self.sent) for s in self.stop) if i >= 0]
        return min(found) if found else None

    def _held_back(self, text: str) -> int:
        """Characters at the end that may still change: an incomplete character, or a stop sequence's beginning."""
        held = len(text) - len(text.rstrip(INCOMPLETE))
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text) - self.sent), 0, -1):
                if text.endswith(s[:k]):
                    held = max(held, k)
                    break
        return held

    def _release(self, text: str, end: int | None) -> str:
        end = len(text) if end is None else max(end, self.sent)
        delta, self.sent = text[self.sent:end], end
        return delta
