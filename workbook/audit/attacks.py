"""What an attacker does with a measurable hit: guess what a victim sent, then read it piece by piece.

Both attacks only call `send`. Each probe is used once: a probe writes its own prompt into the cache,
so probing the same text again would always hit and say nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..errors import WorkbookError
from ..shapes import random_ids
from .procedure import PREFIX_TOKENS, SUFFIX_TOKENS
from .target import Party, Send


@dataclass(frozen=True)
class GuessResult:
    trials: int
    correct: int
    candidates: int

    @property
    def success_rate(self) -> float:
        return self.correct / self.trials

    @property
    def chance(self) -> float:
        return 1 / self.candidates


def guess_document(send: Send, victim: Party, attacker: Party, *, vocab_size: int, candidates: int = 20,
                   trials: int = 5, doc_tokens: int = PREFIX_TOKENS, seed: int = 0) -> GuessResult:
    """The victim pastes one of `candidates` known documents; the attacker probes each once and picks the fastest."""
    if candidates < 2 or trials < 1:
        raise WorkbookError("Guessing needs at least 2 candidate documents and 1 trial.")
    rng = random.Random(seed)
    correct = 0
    for _ in range(trials):
        docs = [random_ids(rng, doc_tokens, vocab_size) for _ in range(candidates)]
        pasted = rng.randrange(candidates)
        send(docs[pasted] + random_ids(rng, SUFFIX_TOKENS, vocab_size), victim)
        times = [send(doc + random_ids(rng, SUFFIX_TOKENS, vocab_size), attacker) for doc in docs]
        correct += times.index(min(times)) == pasted
    return GuessResult(trials, correct, candidates)


@dataclass(frozen=True)
class ExtractionResult:
    chunks: int  # secret chunks in the victim's prompt
    recovered: int  # read in order before the first wrong guess
    probes: int


def extract_pages(send: Send, victim: Party, attacker: Party, *, vocab_size: int, known_tokens: int = 256,
                  chunks: int = 4, chunk_tokens: int = 16, choices: int = 8, seed: int = 0) -> ExtractionResult:
    """Read a victim's prompt one chunk at a time.

    The prompt is a part the attacker knows (a public system prompt), then `chunks` secret chunks, each one
    of `choices` texts the attacker can list (a name, an account type, a date). For each chunk the attacker
    probes known + recovered + candidate and keeps the fastest: the right candidate extends the cached
    prefix by a page, so less is computed. It works when a chunk fills whole pages of the cache; coarser
    pages than the chunk leave nothing to measure.
    """
    if min(known_tokens, chunks, chunk_tokens) < 1 or choices < 2:
        raise WorkbookError("Extraction needs a known part, at least one chunk of a token, and 2 choices per chunk.")
    rng = random.Random(seed)
    known = random_ids(rng, known_tokens, vocab_size)
    options = [[random_ids(rng, chunk_tokens, vocab_size) for _ in range(choices)] for _ in range(chunks)]
    secret = [rng.randrange(choices) for _ in range(chunks)]
    send(known + [i for c, o in zip(secret, options) for i in o[c]] + random_ids(rng, SUFFIX_TOKENS, vocab_size), victim)
    found, probes = [], 0
    for position, candidates in enumerate(options):
        recovered = [i for c, o in zip(found, options) for i in o[c]]
        times = [send(known + recovered + chunk + random_ids(rng, SUFFIX_TOKENS, vocab_size), attacker)
                 for chunk in candidates]
        probes += len(candidates)
        guess = times.index(min(times))
        if guess != secret[position]:
            break
        found.append(guess)
    return ExtractionResult(chunks, len(found), probes)
