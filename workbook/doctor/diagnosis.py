"""Where each logged request stops matching the requests before it, why, and what it costs at a provider.

For every request the doctor finds the earlier request that shares the longest token prefix (among
the most recent ones that reach the same part boundary: caches forget old prompts anyway), the
first character where the two differ, and the cause (`causes.classify`). The static region of a
request is everything before its last message (for a rendered prompt: everything before its last
line); tokens of the static region past the divergence are *lost*: a byte-stable static region would
have shared them. Dollars come from `workbook.providers.simulate`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from bisect import bisect_right
from functools import lru_cache
from itertools import accumulate
from typing import Sequence

from ..providers import Bill, Block, Request, as_sent_to, chained_keys, simulate
from ..tokenizer import first_divergence
from .causes import Cause, breakpoints, classify
from .logs import Record
from .parts import Part, full_text

RECENT = 16  # earlier requests compared per part boundary
DEFAULT_GAP_S = 30.0  # spacing assumed between requests of a log without timestamps
SNIPPET = 40  # characters shown on each side of a divergence


@dataclass(frozen=True)
class Finding:
    """One request's diagnosis: what it shares with the best earlier request, where they part, and why."""

    line: int
    tokens: int
    static_tokens: int
    match_line: int | None  # the earlier request sharing the longest prefix (None: the first request)
    shared_tokens: int
    char_at: int | None  # first differing character of this request's text (None: nothing differs before it ends)
    before: str = ""  # the earlier request's text around the divergence
    after: str = ""  # this request's text around it
    cause: Cause | None = None
    lost_tokens: int = 0  # static tokens past the divergence: what a byte-stable static region would have shared
    reported_cached: int | None = None


@dataclass
class Diagnosis:
    """Every request's finding, and the log's totals."""

    findings: list[Finding]
    tokenizer_name: str

    @property
    def tokens(self) -> int:
        return sum(f.tokens for f in self.findings)

    @property
    def hit_rate(self) -> float:
        """Share of prompt tokens an ideal token-level prefix cache would have reused."""
        return sum(f.shared_tokens for f in self.findings) / self.tokens

    @property
    def achievable_hit_rate(self) -> float:
        """The same if every static region were byte-stable."""
        return sum(f.shared_tokens + f.lost_tokens for f in self.findings) / self.tokens

    @property
    def causes(self) -> Counter:
        """How many requests each cause broke."""
        return Counter(f.cause.name for f in self.findings if f.cause)

    def lost_by_cause(self) -> dict[str, int]:
        lost: dict[str, int] = defaultdict(int)
        for f in self.findings:
            if f.cause is not None:
                lost[f.cause.name] += f.lost_tokens
        return dict(lost)


class Tokens:
    """Token ids of parts, each part tokenized on its own (as blocks are) and remembered: logs repeat their parts."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.encode = lru_cache(maxsize=65_536)(tokenizer.encode)
        self.ends = lru_cache(maxsize=65_536)(self._ends)
        self.length = lru_cache(maxsize=None)(lambda token: len(tokenizer.token_texts([token])[0]))

    def of(self, parts: Sequence[Part]) -> list[list[int]]:
        return [self.encode(part.text) if part.text else [] for part in parts]

    def _ends(self, text: str) -> tuple[int, ...]:
        """Where each token of `text` ends, in characters (token texts of byte-level BPE may split a character)."""
        return tuple(accumulate(map(self.length, self.encode(text))))

    def chars_before(self, parts: Sequence[Part], k: int) -> int:
        """Characters of the request's text that its first k tokens cover."""
        chars = 0
        for part in parts:
            ends = self.ends(part.text) if part.text else ()
            if k < len(ends):
                return chars + (ends[k - 1] if k else 0)
            chars, k = chars + len(part.text), k - len(ends)
        return chars


def diagnose_records(records: Sequence[Record], tokens: Tokens, tokenizer_name: str, *,
                     explain: bool = True) -> Diagnosis:
    """A `Finding` per record, each compared with the earlier records that share its longest part-boundary prefix.
    With `explain=False` only the shared tokens are counted (no cause, no snippets): enough for a hit rate."""
    seen: dict[int, list[int]] = defaultdict(list)  # prefix key at a part boundary -> indices of records, newest last
    ids_of = [tokens.of(r.parts) for r in records]
    findings = []
    for i, record in enumerate(records):
        keys = chained_keys(ids_of[i])
        same = next((k + 1 for k in reversed(range(len(keys))) if keys[k] in seen), 0)  # leading parts some request shares
        candidates = seen[keys[same - 1]][-RECENT:] if same else list(range(max(0, i - RECENT), i))
        findings.append(finding(records, ids_of, i, candidates, same, tokens, explain))
        for key in keys:
            seen[key].append(i)
    return Diagnosis(findings, tokenizer_name)


def finding(records: Sequence[Record], ids_of: list[list[list[int]]], i: int, candidates: list[int], same: int,
            tokens: Tokens, explain: bool = True) -> Finding:
    """Request i against the candidate that shares most tokens with it; every candidate shares its first `same` parts."""
    record, ids = records[i], ids_of[i]
    total, static = sum(map(len, ids)), static_tokens(record, ids, tokens)
    if not candidates:
        return Finding(record.line, total, static, None, 0, None, reported_cached=record.reported_cached)
    shared_parts = sum(map(len, ids[:same]))
    shared = {j: shared_parts + common_tokens(part(ids, same), part(ids_of[j], same)) for j in candidates}
    best = max(candidates, key=lambda j: (shared[j], j))
    before, after = records[best].parts, record.parts
    if not explain:
        return Finding(record.line, total, static, records[best].line, shared[best], None)
    text_before, text_after = full_text(before), full_text(after)
    char_at = first_divergence(text_before, text_after)
    same_marks = [m[:2] for m in breakpoints(list(before))] == [m[:2] for m in breakpoints(list(after))]
    if char_at is None and (same_marks or shared[best] == total):
        return Finding(record.line, total, static, records[best].line, shared[best], None,
                       reported_cached=record.reported_cached)
    at = min(len(text_before), len(text_after)) if char_at is None else char_at
    seam = char_at is not None and is_seam(before, after, shared[best], char_at, tokens)
    cause = classify(list(before), list(after), seam=seam)
    # Past the static region (a new question) nothing is lost; inside it, whatever the two static regions could share.
    lost = max(0, min(static, static_tokens(records[best], ids_of[best], tokens)) - shared[best])
    return Finding(record.line, total, static, records[best].line, shared[best], char_at,
                   around(text_before, at), around(text_after, at), cause, lost, record.reported_cached)


def is_seam(before: Sequence[Part], after: Sequence[Part], shared: int, char_at: int, tokens: Tokens) -> bool:
    """The tokens part before the text does: the first unshared token of either request ends before the first
    differing character, so text both requests hold was cut into other tokens (a space merged with the next word)."""
    return any(tokens.chars_before(parts, shared) < tokens.chars_before(parts, shared + 1) <= char_at
               for parts in (before, after))


def part(ids: list[list[int]], k: int) -> list[int]:
    """The token ids of part k, or none past the last part."""
    return ids[k] if k < len(ids) else []


def common_tokens(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    split = first_divergence(a, b)
    return min(len(a), len(b)) if split is None else split


def static_tokens(record: Record, ids: list[list[int]], tokens: Tokens) -> int:
    """Tokens of the static region: every part before the last message; for a rendered prompt, all but its last line."""
    if record.shape == "prompt":
        text = record.parts[0].text
        cut = text.rstrip("\n").rfind("\n") + 1  # where the last line starts (0: a one-line prompt has no static region)
        return bisect_right(tokens.ends(text), cut)
    last = max((k for k, part in enumerate(record.parts) if part.kind == "message"), default=len(record.parts))
    return sum(len(part) for part in ids[:last])


def around(text: str, at: int, width: int = SNIPPET) -> str:
    """The text around character `at`, with … where it was cut."""
    start, end = max(0, at - width), min(len(text), at + width)
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


# ----- dollars -----------------------------------------------------------------------------------------

def provider_requests(records: Sequence[Record], tokens: Tokens, provider: str) -> list[Request]:
    """The records as `provider` receives them: one block per part, its breakpoints as `as_sent_to` keeps them."""
    return [as_sent_to(provider, Request([Block(ids, part.cache_control)
                                          for ids, part in zip(tokens.of(record.parts), record.parts) if ids],
                                         at_s=i * DEFAULT_GAP_S if record.at_s is None else record.at_s,
                                         output_tokens=record.output_tokens))
            for i, record in enumerate(records)]


def bills(records: Sequence[Record], tokens: Tokens, model_key: str) -> list[Bill]:
    """What `model_key`'s provider bills for the log, replayed in order."""
    return simulate(model_key, provider_requests(records, tokens, model_key.split("/")[0]))


@dataclass
class Costs:
    """A log's bill at several providers: per model key, the bills and their total."""

    bills: dict[str, list[Bill]] = field(default_factory=dict)

    def total(self, model_key: str) -> float:
        return sum(b.cost_usd for b in self.bills[model_key])

    def cached_tokens(self, model_key: str) -> int:
        return sum(b.usage.cache_read_tokens for b in self.bills[model_key])


def costs(records: Sequence[Record], tokens: Tokens, model_keys: Sequence[str]) -> Costs:
    return Costs({key: bills(records, tokens, key) for key in model_keys})
