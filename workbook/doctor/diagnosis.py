"""Where each logged request stops matching the requests before it, why, and what it costs at a provider.

Requests are first sorted into streams, one per call type (`stream_of`): requests whose instructions (tools,
system prompt) share most of their lines. A chain's two templates are two streams, each diagnosed on its own; a
model fallback or a changed clock line stays in its stream. Within a stream, each request is compared with the
recent requests and with the latest request that reached its deepest part boundary; the one sharing the longest
token prefix is its match. A match only counts as usable if the provider could have read it: the same model
(caches are per model), the same `prompt_cache_key` (OpenAI routes by key and prefix), and not idle past its
lifetime (`ttl_s`, refreshed by each read, as the providers' caches are). When an unusable match shares more than
the best usable one, the cause is the one that made it unusable (`model_switch`, `cache_key`, `ttl_expiry`) and
the difference is lost. Otherwise the first differing character names the cause (`causes.classify`); the static
region of a request is everything before its last message (for a rendered prompt: everything before its last
line), and its tokens past the divergence are *lost*: a byte-stable static region would have shared them.
Breakpoint problems (`BREAKPOINT_PROBLEMS`) are found on each request and listed beside its cause.

Memory is bounded per stream: `RECENT` requests and `KEPT_KEYS` part-boundary keys, whatever the log's length.
Dollars come from `workbook.providers.simulate`.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict, defaultdict, deque
from dataclasses import dataclass, field, replace
from bisect import bisect_right
from functools import lru_cache
from itertools import accumulate, chain
from typing import Iterable, Sequence

from ..errors import WorkbookError
from ..pricing import Usage, get_sheet
from ..providers import (GEMINI_IMPLICIT_IDLE_S, MAX_BREAKPOINTS, RETENTION_S, TTL_SECONDS, Bill, Block, ProviderCache,
                         Request, as_sent_to, chained_keys, duration, retentions, without_breakpoints)
from ..tokenizer import GPT2_PATTERN, BPETokenizer, first_divergence, shared_prefix_length
from .causes import BREAKPOINT_PROBLEMS, HEALTHY, REQUEST_CAUSES, Cause, breakpoints, classify, is_turn, part_label
from .logs import Record
from .parts import Part, full_text, part_at

RECENT = 16  # earlier requests of a stream compared with each request
KEPT_KEYS = 1024  # part-boundary keys a stream remembers (the latest request that reached each)
MAX_STREAMS = 256  # call types kept at once; the longest unused is forgotten first
OPENING = 20  # characters of a shared opening line that make one call type
SAME_TEMPLATE = 0.5  # share of the shorter instructions' characters, in lines both send, that makes one call type
DEFAULT_GAP_S = 30.0  # spacing assumed between requests of a log without timestamps
SNIPPET = 40  # characters shown on each side of a divergence


@dataclass(frozen=True)
class Finding:
    """One request's diagnosis: what it shares with the best earlier request, where they part, and why."""

    line: int
    tokens: int
    static_tokens: int
    match_line: int | None  # the earlier request sharing the longest prefix (None: the first of its stream)
    shared_tokens: int  # tokens a usable earlier request shares: what the provider could read
    char_at: int | None  # first differing character of this request's text (None: nothing differs before it ends)
    before: str = ""  # the earlier request's text around the divergence
    after: str = ""  # this request's text around it
    cause: Cause | None = None
    lost_tokens: int = 0  # what a byte-stable static region, or a usable match, would have shared as well
    reported_cached: int | None = None
    stream: int = 0  # the call type (`stream_of`), numbered in order of first appearance
    at_s: float | None = None
    part: str = ""  # where the divergence is, in words ('the system prompt', 'message 3 (user)')
    problems: tuple[Cause, ...] = ()  # breakpoint problems of this request itself


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
        """The same if every static region were byte-stable and every match usable."""
        return sum(f.shared_tokens + f.lost_tokens for f in self.findings) / self.tokens

    @property
    def causes(self) -> Counter:
        """How many requests each cause (and each breakpoint problem) broke; healthy new turns included."""
        return Counter([f.cause.name for f in self.findings if f.cause]
                       + [p.name for f in self.findings for p in f.problems])

    def lost_by_cause(self) -> dict[str, int]:
        lost: dict[str, int] = defaultdict(int)
        for f in self.findings:
            if f.cause is not None:
                lost[f.cause.name] += f.lost_tokens
            for problem in f.problems:
                lost[problem.name] += 0  # counted under the request's cause; listed so the problem shows
        return dict(lost)

    def streams(self) -> Counter:
        """Requests per call type."""
        return Counter(f.stream for f in self.findings)


class Tokens:
    """Token ids of parts, each part tokenized on its own (as blocks are), each distinct text once: logs repeat their
    parts. With the workbook's BPE tokenizer a part is cut into lines where the cut cannot change a token
    (`LINE_CUT`), and each distinct line is tokenized once: a system prompt whose first line holds a clock costs one
    short line per request, not the whole prompt."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        whole = lambda text: tuple(tokenizer.encode(text))  # noqa: E731
        self.line = lru_cache(maxsize=LINES_KEPT)(whole)
        self.encode = lru_cache(maxsize=PARTS_KEPT)(self._by_lines if cuts_lines_exactly(tokenizer) else whole)
        self.ends = lru_cache(maxsize=PARTS_KEPT)(self._ends)
        self.length = lru_cache(maxsize=None)(lambda token: len(tokenizer.token_texts([token])[0]))

    def __reduce__(self):  # sent to a Dask worker (inside a `Biller`) as its tokenizer: the caches start empty there
        return Tokens, (self.tokenizer,)

    def of(self, parts: Sequence[Part]) -> list[tuple[int, ...]]:
        return [self.encode(part.text) if part.text else () for part in parts]

    def _by_lines(self, text: str) -> tuple[int, ...]:
        return tuple(chain.from_iterable(map(self.line, cut_lines(text))))

    def _ends(self, text: str) -> tuple[int, ...]:
        """Where each token of `text` ends, in characters (token texts of byte-level BPE may split a character)."""
        return tuple(accumulate(map(self.length, self.encode(text))))

    def chars_before(self, parts: Sequence[Part], k: int) -> int:
        """Characters of the request's text that its first k tokens cover (only the tokens of the part token k falls
        in are measured: the parts before it count whole)."""
        chars = 0
        for part in parts:
            ids = self.encode(part.text) if part.text else ()
            if k < len(ids):
                return chars + sum(map(self.length, ids[:k]))
            chars, k = chars + len(part.text), k - len(ids)
        return chars


# A line break after a character that is not a space, before a letter or digit: the GPT-2 pre-tokenizer (which the
# workbook's BPE tokenizer uses) always ends a piece at the break and starts one at the letter, and BPE never merges
# across pieces, so tokenizing the text on either side of such a cut on its own gives the same ids.
# The pattern matches the break itself (then looks behind it and ahead), so the search jumps from one line break to the
# next: a zero-width pattern is tried at every character, ten times slower on a system prompt.
LINE_CUT = re.compile(r"\n(?<=\S\n)(?=[^\W_])")
# Distinct lines and parts remembered: bounded memory on any log. Parts are cheap to join again from their lines, so
# few are kept (on a 20 MB log, 512 parts instead of 4,096 took 85 MB less at 5% more time).
LINES_KEPT, PARTS_KEPT = 65_536, 1_024


def cut_lines(text: str) -> list[str]:
    """`text` cut after each line break `LINE_CUT` matches, each piece keeping its break."""
    cuts = [match.end() for match in LINE_CUT.finditer(text)]
    return [text[start:end] for start, end in zip([0, *cuts], [*cuts, len(text)])]


def cuts_lines_exactly(tokenizer) -> bool:
    """Whether `LINE_CUT` keeps this tokenizer's ids: the workbook's BPE tokenizer with the GPT-2 pattern."""
    return isinstance(tokenizer, BPETokenizer) and tokenizer._splitter.pattern == GPT2_PATTERN


# ----- streams and their memory ------------------------------------------------------------------------

@dataclass
class Seen:
    """An earlier request as a stream remembers it: its parts' token ids and its static region's length."""

    record: Record
    ids: list[list[int]]
    static: int


@dataclass
class Stream:
    """One call type: the lines its instructions send, and its recent requests."""

    number: int
    head: dict[str, int]  # instruction line -> its length, from the stream's latest request
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT))
    by_key: OrderedDict = field(default_factory=OrderedDict)  # part-boundary key -> (the latest Seen, when it was sent)

    def remember(self, seen: Seen, keys: list[int], at_s: float | None) -> None:
        """Keep `seen` as the latest request to send each of its prefixes: sending a prefix writes or refreshes it."""
        self.recent.append(seen)
        for key in keys:
            self.by_key[key] = seen, at_s
            self.by_key.move_to_end(key)
        while len(self.by_key) > KEPT_KEYS:
            self.by_key.popitem(last=False)

    def last_used(self, keys: list[int], parts: int, seen: Seen) -> float | None:
        """When a request last sent the prefix of its first `parts` parts (`keys` are the prefix keys); for a prefix
        shorter than a part, or one forgotten, when `seen` was sent."""
        kept = self.by_key.get(keys[parts - 1]) if parts else None
        return kept[1] if kept else seen.record.at_s


def instruction_lines(record: Record) -> dict[str, int]:
    """The lines of a request's instructions (tools, system prompt; for a rendered prompt every line but the last),
    each with its length: what a call type's requests have in common."""
    if record.shape == "prompt":
        return lines_of((record.parts[0].text.rstrip("\n").rpartition("\n")[0],))
    return lines_of(tuple(p.text for p in record.parts if not is_turn(p)))


@lru_cache(maxsize=1024)  # a call type sends the same instructions again and again: each is split once
def lines_of(texts: tuple[str, ...]) -> dict[str, int]:
    """The non-blank lines of `texts`, each with its length (plus its newline). Shared: not to be changed."""
    return {line: len(line) + 1 for text in texts for line in text.split("\n") if line.strip()}


def same_template(a: dict[str, int], b: dict[str, int]) -> bool:
    """Whether two requests' instructions are one template: they open with the same line (of `OPENING` characters or
    more: a template whose variable text comes later, like retrieved context), or share at least `SAME_TEMPLATE` of
    the shorter one's characters in whole lines (a changed clock line or name at the top). Assumed: two call types do
    not open with the same long line. No instructions on both sides is one call type."""
    if not a or not b:
        return not a and not b
    first = next(iter(a))
    if len(first) >= OPENING and first == next(iter(b)):
        return True
    common = sum(n for line, n in a.items() if line in b)
    return common >= SAME_TEMPLATE * min(sum(a.values()), sum(b.values()))


class Streams:
    """The call types seen so far, newest use last; at most `MAX_STREAMS` are kept."""

    def __init__(self):
        self.kept: OrderedDict[int, Stream] = OrderedDict()
        self.count = 0

    def of(self, record: Record) -> Stream:
        """The stream `record` belongs to (its head updated to the record's), or a new one."""
        head = instruction_lines(record)
        stream = next((s for s in reversed(self.kept.values()) if same_template(s.head, head)), None)
        if stream is None:
            stream = Stream(self.count, head)
            self.count += 1
            if len(self.kept) == MAX_STREAMS:
                self.kept.popitem(last=False)
        self.kept[stream.number] = stream
        self.kept.move_to_end(stream.number)
        stream.head = head
        return stream


# ----- lifetimes: how long the provider keeps a prefix after its last use -----------------------------------

def provider_of(record: Record, default: str) -> str:
    """The provider whose rules decide the record's cache: the log's own ("gemini" read as Google), else `default`."""
    provider = record.provider or default
    return "google" if provider == "gemini" else provider


def ttl_s(record: Record, ids: list[list[int]], shared: int, provider: str) -> float | None:
    """How long the provider keeps the prefix `record` shares (its first `shared` tokens) after its last use; None
    where nothing is cached (an Anthropic request without breakpoints).

    Anthropic: the TTL of the last breakpoint whose prefix ends within the shared tokens (`TTL_SECONDS`), else of the
    first breakpoint. OpenAI: the retention the request asks for, else the model's default (`retentions`), else in
    memory (`RETENTION_S`). Google: the implicit cache's assumed idle lifetime (`GEMINI_IMPLICIT_IDLE_S`)."""
    if provider == "anthropic":
        ends = list(accumulate(map(len, ids)))
        marks = [(ends[k], p.cache_control) for k, p in enumerate(record.parts) if p.cache_control and k < len(ends)]
        if not marks:
            return None
        within = [ttl for end, ttl in marks if end <= shared]
        return TTL_SECONDS[(within or [marks[0][1]])[-1]]
    if provider == "openai":
        retention = dict(record.extra).get("prompt_cache_retention")
        retention = retention.strip('"') if retention else default_retention(record.model)
        return RETENTION_S.get(retention, RETENTION_S["in_memory"])
    return GEMINI_IMPLICIT_IDLE_S


@lru_cache(maxsize=None)
def default_retention(model: str | None) -> str:
    """An OpenAI model's default prompt_cache_retention, from its price sheet; in memory for a model the sheets lack."""
    try:
        return retentions(get_sheet(f"openai/{model}"))[0]
    except WorkbookError:
        return "in_memory"


def unusable(seen: Seen, record: Record, shared: int, used_s: float | None, provider: str) -> Cause | None:
    """Why the provider could not have read `seen`'s prefix for `record` (its first `shared` tokens, last sent at
    `used_s`), as a cause; None if it could."""
    old, new = seen.record, record
    if old.model and new.model and old.model != new.model:
        return Cause("model_switch", REQUEST_CAUSES["model_switch"] + " Pin the model, or keep a warm cache per "
                     "fallback model (send it its own traffic), so a fallback does not start cold.",
                     f"model {old.model!r} became {new.model!r}")
    if provider == "openai" and old.cache_key != new.cache_key:
        return Cause("cache_key", REQUEST_CAUSES["cache_key"] + " Use one stable key per user or conversation, "
                     "not a fresh one per request.", f"prompt_cache_key {old.cache_key!r} became {new.cache_key!r}")
    lifetime = ttl_s(old, seen.ids, shared, provider)
    if lifetime is not None and used_s is not None and new.at_s is not None and new.at_s - used_s > lifetime:
        return Cause("ttl_expiry", REQUEST_CAUSES["ttl_expiry"] + " Where gaps run past the TTL, a longer lifetime "
                     "(Anthropic's 1-hour cache_control, OpenAI's 24h retention) keeps it.",
                     f"idle {duration(new.at_s - used_s)} since the prefix line {old.line} shares was last sent, "
                     f"past its {duration(lifetime)} lifetime")
    return None


# ----- breakpoint problems, found on the request itself -------------------------------------------------------------

def breakpoint_problems(record: Record) -> list[Cause]:
    """More than `MAX_BREAKPOINTS` breakpoints, or a 1-hour one after a 5-minute one: the API refuses the request."""
    marks = breakpoints(list(record.parts))
    problems = []
    if len(marks) > MAX_BREAKPOINTS:
        labels = ", ".join(part_label(list(record.parts), i) for _, _, i in marks)
        problems.append(Cause("too_many_breakpoints", BREAKPOINT_PROBLEMS["too_many_breakpoints"] + " Keep at most "
                              f"{MAX_BREAKPOINTS}: the ones that end stable parts and the newest turn.",
                              f"{len(marks)} breakpoints, on {labels}"))
    ttls = [ttl for _, ttl, _ in marks]
    if "5m" in ttls and "1h" in ttls[ttls.index("5m"):]:
        problems.append(Cause("ttl_order", BREAKPOINT_PROBLEMS["ttl_order"] + " Put the 1-hour breakpoints first.",
                              f"lifetimes in order: {', '.join(ttls)}"))
    return problems


def volatile_breakpoint(after: Sequence[Part], part: int, before: Sequence[Part]) -> Cause | None:
    """A breakpoint on a static part that differs from the match's: the entry it writes is never read again."""
    if after[part].cache_control is None or is_turn(after[part]) or part == len(after) - 1:
        return None
    if part >= len(before) or before[part].cache_control is None:
        return None
    return Cause("volatile_breakpoint", BREAKPOINT_PROBLEMS["volatile_breakpoint"] + " Mark a part that stays the "
                 "same, and move what changes after it.", f"{part_label(list(after), part)} carries a breakpoint and "
                 "changed since the request it matches")


def diagnose_records(records: Iterable[Record], tokens: Tokens, tokenizer_name: str, *,
                     provider: str = "anthropic") -> Diagnosis:
    """A `Finding` per record, read one at a time (any iterable), each compared within its stream (`Streams`).
    `provider` decides the cache lifetimes of records that do not say whose they are."""
    return replay(records, tokens, tokenizer_name, (), provider=provider)[0]


def replay(records: Iterable[Record], tokens: Tokens, tokenizer_name: str, model_keys: Sequence[str], *,
           provider: str = "anthropic") -> tuple[Diagnosis, Costs]:
    """`diagnose_records` and `costs` in one pass over the log: each record is tokenized once for both."""
    streams, findings = Streams(), []
    billers = [Biller(key, tokens) for key in model_keys]
    for i, record in enumerate(records):
        ids = tokens.of(record.parts)
        findings.append(finding(record, ids, streams.of(record), tokens, provider_of(record, provider)))
        for biller in billers:
            biller.send(i, record)  # the biller's tokenizer finds each part's ids in `tokens`' cache
    return Diagnosis(findings, tokenizer_name), Costs({b.model_key: b.bills for b in billers})


def finding(record: Record, ids: list[list[int]], stream: Stream, tokens: Tokens, provider: str) -> Finding:
    """Request `record` against its stream's candidates: the usable one sharing most tokens is its match, unless an
    unusable one shares more (then the reason it is unusable is the cause)."""
    keys = chained_keys(ids)
    total = sum(map(len, ids))
    static = static_tokens(record, ids, tokens)
    deepest = next((stream.by_key[k][0] for k in reversed(keys) if k in stream.by_key), None)
    candidates = list({id(s): s for s in [*stream.recent, *([deepest] if deepest else [])]}.values())
    base = dict(reported_cached=record.reported_cached, stream=stream.number, at_s=record.at_s,
                problems=tuple(breakpoint_problems(record)))
    prefixes = {id(s): common_prefix(ids, s.ids) for s in candidates}
    shared = {k: n for k, (n, _) in prefixes.items()}
    ranked = sorted(candidates, key=lambda s: (shared[id(s)], s.record.line), reverse=True)  # most shared, newest
    why: dict[int, Cause | None] = {}
    match = None  # the first usable candidate in that order: only as many are checked as it takes to find one
    for s in ranked:
        why[id(s)] = unusable(s, record, shared[id(s)], stream.last_used(keys, prefixes[id(s)][1], s), provider)
        if why[id(s)] is None:
            match = s
            break
    stream.remember(Seen(record, ids, static), keys, record.at_s)
    if not ranked:
        return Finding(record.line, total, static, None, 0, None, **base)
    best = ranked[0]
    read = shared[id(match)] if match is not None else 0
    text = match and text_finding(record, ids, match, read, total, static, tokens, base)
    if shared[id(best)] > read and not (text and text.cause and text.cause.name not in HEALTHY):
        # a prefix the provider could not read (another model or key, or expired), and no text change to blame
        cause = why[id(best)]
        label = {"model_switch": "the model", "cache_key": "prompt_cache_key"}.get(cause.name, "the cached prefix")
        old, new = cause.detail.split(" became ") if " became " in cause.detail else ("", cause.detail)
        return Finding(record.line, total, static, best.record.line, read, None, old, new,
                       cause, shared[id(best)] - read, part=label, **base)
    return text


def text_finding(record: Record, ids: list[list[int]], match: Seen, shared: int, total: int, static: int,
                 tokens: Tokens, base: dict) -> Finding:
    """Request `record` against its usable match `match`: where their texts part, why, and the static tokens lost."""
    before, after = list(match.record.parts), list(record.parts)
    text_before, text_after = full_text(before), full_text(after)
    char_at = first_divergence(text_before, text_after)
    same_marks = [m[:2] for m in breakpoints(before)] == [m[:2] for m in breakpoints(after)]
    if char_at is None and (same_marks or shared == total):
        return Finding(record.line, total, static, match.record.line, shared, None, **base)
    at = min(len(text_before), len(text_after)) if char_at is None else char_at
    seam = char_at is not None and is_seam(before, after, shared, char_at, tokens)
    cause = classify(before, after, seam=seam)
    # Past the static region (a new question) nothing is lost; inside it, whatever the two static regions could share.
    lost = 0 if cause.name in HEALTHY else max(0, min(static, match.static) - shared)
    k = part_at(after, min(at, max(0, len(text_after) - 1)))[0]
    problems = base["problems"] + tuple(p for p in [volatile_breakpoint(after, k, before)] if p)
    return Finding(record.line, total, static, match.record.line, shared, char_at, around(text_before, at),
                   around(text_after, at), cause, lost, part=part_label(after, k),
                   **{**base, "problems": problems})


def common_prefix(a: list[list[int]], b: list[list[int]]) -> tuple[int, int]:
    """(leading tokens two requests share, leading parts they share whole), compared part by part."""
    shared = 0
    for k, (x, y) in enumerate(zip(a, b)):
        if x is not y and x != y:  # `Tokens` hands out one list per distinct text: the same list is the same part
            return shared + shared_prefix_length(x, y), k
        shared += len(x)
    return shared, min(len(a), len(b))


def is_seam(before: Sequence[Part], after: Sequence[Part], shared: int, char_at: int, tokens: Tokens) -> bool:
    """The tokens part before the text does: the first unshared token of either request ends before the first
    differing character, so text both requests hold was cut into other tokens (a space merged with the next word)."""
    return any(tokens.chars_before(parts, shared) < tokens.chars_before(parts, shared + 1) <= char_at
               for parts in (before, after))


def static_tokens(record: Record, ids: list[list[int]], tokens: Tokens) -> int:
    """Tokens of the static region: every part before the last message; for a rendered prompt, all but its last line."""
    if record.shape == "prompt":
        text = record.parts[0].text
        cut = text.rstrip("\n").rfind("\n") + 1  # where the last line starts (0: a one-line prompt has no static region)
        return bisect_right(tokens.ends(text), cut)
    last = max((k for k, part in enumerate(record.parts) if is_turn(part)), default=len(record.parts))
    return sum(len(part) for part in ids[:last])


def around(text: str, at: int, width: int = SNIPPET) -> str:
    """The text around character `at`, with … where it was cut."""
    start, end = max(0, at - width), min(len(text), at + width)
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


# ----- dollars -----------------------------------------------------------------------------------------

BLOCK_TYPES = {"tool_call": "tool_use", "tool_result": "tool_result", "image": "image"}  # part kind -> Block type


def provider_request(record: Record, provider: str, at_s: float) -> Request:
    """The record as `provider` receives it: one block of text per part (tool calls and results typed, for
    Anthropic's lookback; empty parts left out), its breakpoints as `as_sent_to` keeps them, and at OpenAI its
    prompt_cache_key. Assumed: the request's other options (retention, tool_choice, thinking) are left to the
    provider's defaults."""
    blocks = [Block(part.text, part.cache_control, type=BLOCK_TYPES.get(part.kind, "text"))
              for part in record.parts if part.text]
    options = {"prompt_cache_key": record.cache_key} if provider == "openai" and record.cache_key else None
    return as_sent_to(provider, Request(blocks, at_s=at_s, output_tokens=record.output_tokens, options=options))


def bills(records: Iterable[Record], tokens: Tokens, model_key: str) -> list[Bill]:
    """What `model_key`'s provider bills for the log, replayed in order (`Biller`)."""
    biller = Biller(model_key, tokens)
    for i, record in enumerate(records):
        biller.send(i, record)
    return biller.bills


class Biller:
    """One provider model's bills for a log, fed its records in order. Caches are per model, so each model the log
    names gets a cache of its own (all priced at `model_key`). A request the API would refuse (five breakpoints, a
    1-hour one after a 5-minute one, a prompt past the context window) bills nothing and changes no cache.

    The requests go to the simulator as text, with `tokens` as its tokenizer: the ids are the doctor's own counts
    (each distinct text tokenized once, `Tokens`), which the simulator takes as a tokenizer's output, unchecked."""

    def __init__(self, model_key: str, tokens: Tokens):
        self.model_key, self.provider, self.tokens = model_key, model_key.split("/")[0], tokens
        self.caches: dict[str | None, ProviderCache] = {}
        self.bills: list[Bill] = []

    def send(self, i: int, record: Record) -> None:
        """Bill the log's `i`-th record."""
        cache = self.caches.get(record.model)
        if cache is None:
            cache = self.caches[record.model] = ProviderCache(self.model_key, self.tokens)
        at_s = i * DEFAULT_GAP_S if record.at_s is None else record.at_s
        request = provider_request(record, self.provider, at_s)
        try:
            self.bills.append(cache.send(request))
        except WorkbookError as error:
            self.bills.append(resent(cache, request, error))


def resent(cache: ProviderCache, request: Request, error: WorkbookError) -> Bill:
    """A request the API refused, billed as the client sends it again without breakpoints (assumed: a client that
    gets a 400 for its cache_control retries without it), or as nothing if that is refused too."""
    try:
        bill = cache.send(without_breakpoints(request))
    except WorkbookError:
        return Bill(Usage(), 0.0, f"refused by the API: {error}")
    return replace(bill, why=f"refused by the API ({error}); sent again without breakpoints: {bill.why}")


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
