"""Why a request stops matching the earlier request it shares the longest prefix with: the cause of a lost cache hit.

Each cause has a check, a short function that looks at the first differing character and says whether its cause
explains it. `CHECKS` tries them in order, most specific first; the first that applies names the cause, and its
rule and detail tell the engineer what to fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, NamedTuple

from ..errors import WorkbookError
from ..tokenizer import shared_prefix_length
from .parts import Part, full_text, part_at

CAUSES: dict[str, str] = {
    "breakpoint_moved": "Same text, but an Anthropic cache_control breakpoint marks other parts.",
    "tool_list": "The tool list changed: a tool was added, removed or moved.",
    "json_key_order": "The same JSON value written differently: keys in another order, or other spacing.",
    "whitespace": "Only whitespace differs: a trailing space, an extra newline, tabs for spaces.",
    "datetime": "A date or time written into the prompt changed.",
    "number": "A number that changes per request changed: an id, a counter, a price.",
    "user_text": "User-specific text (a name, a preference) sits in a part meant to be the same for everyone.",
    "seam": "The characters agree further than the tokens: text before the difference tokenized another way.",
    "history_rewritten": "Earlier turns of the conversation changed: edited, truncated or summarised.",
    "content": "An instruction part (tools, system prompt) was edited: a real change.",
}
# Causes outside the prompt text, found by `diagnosis` from the request's metadata and its time.
REQUEST_CAUSES: dict[str, str] = {
    "model_switch": "Another model served this request: each model has its own cache.",
    "cache_key": "Another prompt_cache_key: OpenAI routes a request by its key and prefix, so a new key finds no cache.",
    "ttl_expiry": "The matching prefix was idle longer than its cache lifetime (TTL) and expired.",
}
# Problems with a request's breakpoints, found on the request itself.
BREAKPOINT_PROBLEMS: dict[str, str] = {
    "too_many_breakpoints": "More than four cache_control breakpoints: the API refuses the request (400).",
    "ttl_order": "A 1-hour breakpoint after a 5-minute one: the API refuses the request (400).",
    "volatile_breakpoint": "A breakpoint ends a part that changes on every request: its cache write is never read.",
}
# The healthy difference: a new question or a new conversation after a shared prefix. Nothing is lost.
HEALTHY = {"new_turn": "A new turn or a new conversation after the shared prefix: expected, nothing lost."}
ALL_CAUSES = {**HEALTHY, **CAUSES, **REQUEST_CAUSES, **BREAKPOINT_PROBLEMS}

STATIC_ROLES = ("system", "developer")  # messages that carry instructions, not a conversation
TURN_KINDS = ("message", "tool_call", "tool_result", "thinking", "image")  # the parts a conversation is made of

_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
          r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_WEEKDAY = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE = "|".join([
    r"\d{4}-\d{2}-\d{2}",                                   # 2026-03-14
    r"\d{1,2}[/.]\d{1,2}[/.]\d{2,4}|\d{4}/\d{1,2}/\d{1,2}",  # 14/03/2026, 14.03.26, 2026/03/14
    rf"{_DAY}\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?",        # 14 Mar 2026, 14th of March
    rf"{_MONTH}\s+{_DAY}(?:,?\s+\d{{4}})?",                  # March 14, 2026
    rf"{_MONTH}\s+\d{{4}}",                                  # March 2026
])
_TIME = (r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[ap]\.?m\b\.?)?(?:\s*(?:z|utc|gmt|[+-]\d{2}:?\d{2})\b)?"
         r"|\d{1,2}\s*[ap]\.?m\b\.?")
DATETIME = re.compile(rf"(?<!\w)(?:(?:{_WEEKDAY},?\s+)?(?:{_DATE})(?:(?:t|,?\s+(?:at\s+)?)(?:{_TIME}))?"
                      rf"|{_TIME}|{_WEEKDAY})(?!\w)", re.IGNORECASE)
# "Today's date: ...", "Current time: 1773480047": whatever follows such a label is the clock's, in any format.
DATE_LINE = re.compile(r"\b(?:today[’']?s date|current (?:date|time)|date|time|timestamp|now)[^\S\n]*:[^\S\n]*"
                       r"(?P<value>[^\n]+)", re.IGNORECASE)
NUMBER = re.compile(r"(?<!\w)[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}(?!\w)"  # a UUID
                    r"|(?<!\w)(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}(?!\w)"  # a hex id
                    r"|\d+(?:[.,]\d+)*", re.IGNORECASE)
NAME = re.compile(r"(?<!\w)[A-ZÀ-ÖØ-Þ]\w*(?: [A-ZÀ-ÖØ-Þ]\w*)*")  # capitalised words in a row: 'Ana Silva'
WORD = re.compile(r"\w+")
CODE_WORD = re.compile(r"[a-z0-9][A-Z]|_|\d")  # a capital inside a word ('UserService'), an underscore or a digit
CODE_KEYWORD = re.compile(r"\b(?:class|import|from|new|extends|implements|def|interface|struct|type)\s+$")
# Where a JSON object or array can start: a bracket followed by what JSON allows next (prose like '{date}' is skipped).
JSON_START = re.compile(r'[{\[](?=\s*(?:["{\[\]}\d-]|true|false|null))')


@dataclass(frozen=True)
class Cause:
    """Why a request lost its cache hit: the cause's name (a key of CAUSES), the rule that decided it, what differed."""

    name: str
    rule: str
    detail: str


@dataclass(frozen=True)
class Divergence:
    """Where `after` first differs from `before`: the character in the full texts, and the part and offset each side."""

    before: list[Part]
    after: list[Part]
    char: int
    part_before: int
    offset_before: int
    part_after: int
    offset_after: int
    seam: bool = False  # the caller found the tokens differ before this character

    @property
    def text_before(self) -> str:
        """The text of the part of `before` that holds the divergence."""
        return self.before[self.part_before].text

    @property
    def text_after(self) -> str:
        """The text of the part of `after` that holds the divergence."""
        return self.after[self.part_after].text

    @property
    def where(self) -> str:
        """The part of `after` the divergence is in, in words."""
        return part_label(self.after, self.part_after)

    def snippets(self, width: int = 20) -> tuple[str, str]:
        """The text around the divergence in each part, to quote in a detail."""
        return (span_around(self.text_before, self.offset_before, width),
                span_around(self.text_after, self.offset_after, width))


def find_divergence(before: list[Part], after: list[Part], *, seam: bool = False) -> Divergence:
    """Locate the first differing character of two rendered requests, and the part holding it on each side."""
    if not before or not after:
        raise WorkbookError("A request with no parts cannot be compared: render each request into at least one Part.")
    a, b = full_text(before), full_text(after)
    char = shared_prefix_length(a, b)  # works on any two sequences; here, characters
    (i, off_i), (j, off_j) = part_at(before, char), part_at(after, char)
    # A difference at a part boundary on one side only belongs to the part that ends there on that side:
    # a trailing space added to the system prompt sits at the start of the first message in the request without it.
    if off_i == 0 and 0 < off_j < len(after[j].text):
        i, off_i = _part_ending_before(before, i)
    if off_j == 0 and 0 < off_i < len(before[i].text):
        j, off_j = _part_ending_before(after, j)
    return Divergence(before, after, char, i, off_i, j, off_j, seam)


def _part_ending_before(parts: list[Part], i: int) -> tuple[int, int]:
    """(index, length) of the last part with text before part `i`; (i, 0) if there is none."""
    for k in range(i - 1, -1, -1):
        if parts[k].text:
            return k, len(parts[k].text)
    return i, 0


def part_label(parts: list[Part], i: int) -> str:
    """A part in words: 'the tool list', 'the system prompt', 'message 2 (user)', 'the prompt'."""
    part = parts[i]
    if part.kind in TURN_KINDS:
        number = sum(1 for p in parts[: i + 1] if p.kind in TURN_KINDS)
        what = "message" if part.kind == "message" else part.kind.replace("_", " ")
        return f"{what} {number} ({part.role})" if part.role else f"{what} {number}"
    return {"tools": "the tool list", "system": "the system prompt", "prompt": "the prompt",
            "tool_choice": "tool_choice"}.get(part.kind, part.kind)


def span_around(text: str, at: int, width: int = 20) -> str:
    """Up to `width` characters either side of position `at`, starting at a whole word: the snippet a detail quotes."""
    start = max(0, at - width)
    cut_word = start > 0 and not text[start - 1].isspace()
    space = re.search(r"\s", text[start:at]) if cut_word else None
    if space:  # drop the cut word's tail, so the quote reads from a word's start
        start += space.end()
    return text[start: at + width]


def breakpoints(parts: list[Part]) -> list[tuple[int, str, int]]:
    """(character where the marked prefix ends, cache_control, part index) for each part carrying a breakpoint."""
    marks, end = [], 0
    for i, part in enumerate(parts):
        end += len(part.text)
        if part.cache_control is not None:
            marks.append((end, part.cache_control, i))
    return marks


def tool_names(tools_json: str) -> list[str] | None:
    """The names of a JSON tool list in order (Anthropic or OpenAI shape), or None if it is not one."""
    try:
        tools = json.loads(tools_json)
    except json.JSONDecodeError:
        return None
    if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
        return None
    names = [tool_name(tool) for tool in tools]
    return names if all(isinstance(name, str) for name in names) else None


def tool_name(tool) -> str | None:
    """A tool's name in Anthropic's shape ({"name": ...}) or OpenAI's ({"function": {"name": ...}}), else None."""
    if not isinstance(tool, dict):
        return None
    return tool.get("name") or (tool.get("function") or {}).get("name")


def _is_static(part: Part) -> bool:
    """Whether a part should read the same for every user: the tools, the system prompt, instruction messages."""
    return part.kind in ("tools", "system", "tool_choice") or (part.kind == "message" and part.role in STATIC_ROLES)


def is_turn(part: Part) -> bool:
    """Whether a part belongs to the conversation: a message, a tool call or result, a thinking block, an image."""
    return part.kind in TURN_KINDS and not _is_static(part)


def _span_at(pattern: re.Pattern, text: str, at: int, window: int = 80) -> tuple[int, int] | None:
    """The span of a match of `pattern` that covers position `at` (or ends right at it), if there is one."""
    group = "value" if "value" in pattern.groupindex else 0
    touching = None
    for match in pattern.finditer(text, max(0, at - window), at + window):  # dates and ids are short: look nearby
        start, end = match.span(group)
        if start <= at < end:
            return start, end
        if end == at:
            touching = start, end
    return touching


def _continues_alike(rest_before: str, rest_after: str, n: int = 20) -> bool:
    """Whether two texts go on the same way for the rest of the line (at most n characters): the edit was a swap."""
    return rest_before.split("\n", 1)[0][:n] == rest_after.split("\n", 1)[0][:n]


def _swapped(pattern: re.Pattern, div: Divergence, *, quote_prefix: bool = False) -> tuple[str, str] | None:
    """(old, new) if a match of `pattern` covers the divergence in both parts and the texts agree again after it.

    With `quote_prefix`, each match is quoted with the non-space characters just before it: 'req-8812', not '8812'.
    """
    span_before = _span_at(pattern, div.text_before, div.offset_before)
    span_after = _span_at(pattern, div.text_after, div.offset_after)
    if span_before is None or span_after is None:
        return None
    old, new = div.text_before[slice(*span_before)], div.text_after[slice(*span_after)]
    if old == new or not _continues_alike(div.text_before[span_before[1]:], div.text_after[span_after[1]:]):
        return None
    if quote_prefix:
        old = re.search(r"\S*$", div.text_before[max(0, span_before[0] - 40): span_before[0]]).group() + old
        new = re.search(r"\S*$", div.text_after[max(0, span_after[0] - 40): span_after[0]]).group() + new
    return old, new


# ----- the checks: each returns an Explanation when its cause explains the divergence, else None ---------------

class Explanation(NamedTuple):
    """What a check found: the rule that decided it and what differed (a Cause without its name)."""

    rule: str
    detail: str


def is_breakpoint_moved(div: Divergence) -> Explanation | None:
    """The texts agree up to the end of the shorter one, and the breakpoints inside that shared text differ."""
    a, b = full_text(div.before), full_text(div.after)
    shared = min(len(a), len(b))
    if div.char < shared:
        return None  # the texts themselves differ: a text check explains it

    # A breakpoint at the end of the shorter request counts only if both end there: when the later request goes on,
    # the newest-turn breakpoint sliding forward is how a growing conversation is meant to be marked.
    def marked(parts: list[Part]) -> list[tuple[int, str, int]]:
        return [mark for mark in breakpoints(parts) if mark[0] < shared or (len(a) == len(b) and mark[0] == shared)]

    marks_before, marks_after = marked(div.before), marked(div.after)
    if [m[:2] for m in marks_before] == [m[:2] for m in marks_after]:
        return None

    def names(parts: list[Part], marks: list[tuple[int, str, int]], with_setting: bool) -> str:
        labels = [part_label(parts, i) + (f" ({control})" if with_setting else "") for _, control, i in marks]
        return ", ".join(labels) or "no part"

    # Spell out the cache_control settings only when they are all that differs.
    same_parts = names(div.before, marks_before, False) == names(div.after, marks_after, False)
    return Explanation(
        rule="The texts agree, but the cache_control breakpoints differ: Anthropic caches the prefix that ends at each "
             "breakpoint, so a request that marks other places asks for prefixes that were never written.",
        detail=f"breakpoints on {names(div.before, marks_before, same_parts)} "
               f"became {names(div.after, marks_after, same_parts)}")


def is_seam(div: Divergence) -> Explanation | None:
    """The caller saw the tokens part ways before the characters do: a tokenization seam."""
    if not div.seam:
        return None
    a, b = full_text(div.before), full_text(div.after)
    return Explanation(
        rule="The tokens differ before the characters do: the end of the shared text merged with what follows into "
             "other tokens (a trailing space joins the next word). End the static text where a token ends, e.g. with "
             "a newline, and start the changing text after it.",
        detail=f"characters agree up to {a[max(0, div.char - 20):div.char]!r}, "
               f"then {a[div.char:div.char + 20]!r} became {b[div.char:div.char + 20]!r}")


def is_new_input(div: Divergence) -> Explanation | None:
    """Expected differences, not cache bugs: one request is a prefix of the other, the newest user message, or
    another conversation that shares only the instructions."""
    a, b = full_text(div.before), full_text(div.after)
    old, new = div.snippets()
    if div.char == len(b):
        return Explanation(
            rule="The later request is a prefix of the earlier one: all of its text was already cached, nothing broke.",
            detail=f"the later request ends at character {div.char}, inside {part_label(div.before, div.part_before)}")
    if div.char == len(a):
        return Explanation(
            rule="The later request continues where the earlier one ended: all of the earlier text could be reused, "
                 "and what follows is new. Not a cache bug.",
            detail=f"{div.where} goes on with {new[:40]!r}")
    if div.part_after == len(div.after) - 1 and is_turn(div.after[-1]):
        return Explanation(
            rule="The difference is in the newest message, the new input of each request: everything before it "
                 "was shared and could be reused. Not a cache bug.",
            detail=f"{div.where}: {old!r} became {new!r}")
    if is_turn(div.after[div.part_after]) and not is_rewritten_history(div):
        return Explanation(
            rule="Another conversation: the two requests share their instructions and part at the first turn that "
                 "differs, and no later turn of one is in the other. Not a cache bug.",
            detail=f"{div.where}: {old!r} became {new!r}")
    return None


def is_rewritten_history(div: Divergence) -> bool:
    """Whether the conversation goes on past the changed message with turns the earlier request also sent (an earlier
    turn edited or summarised), or the changed message is a later turn of the earlier request (oldest turns dropped)."""
    def texts(parts: list[Part], start: int, stop: int) -> set[str]:
        return {p.text for p in parts[start:stop] if is_turn(p) and p.text}

    later_before = texts(div.before, div.part_before + 1, len(div.before))
    history_after = texts(div.after, div.part_after + 1, len(div.after) - 1)  # the newest message is new input
    return bool(history_after & (later_before | {div.text_before})) or div.text_after in later_before


def is_history_rewritten(div: Divergence) -> Explanation | None:
    """The divergence is in an earlier turn of a conversation that goes on: it was edited, truncated or summarised."""
    if not is_turn(div.after[div.part_after]) or not is_rewritten_history(div):
        return None
    old, new = div.snippets()
    return Explanation(
        rule="An earlier turn of the conversation changed (edited, truncated or summarised) while the conversation "
             "goes on: everything after it is computed again. Keep the history append-only; if it must shrink, "
             "shrink it rarely and all at once, not a little every turn.",
        detail=f"{div.where}: {old!r} became {new!r}")


def is_tool_list(div: Divergence) -> Explanation | None:
    """The divergence is in the tool list, and the tools' names or their order differ."""
    if "tools" not in (div.before[div.part_before].kind, div.after[div.part_after].kind):
        return None

    def names(parts: list[Part]) -> list[str] | None:
        return next((tool_names(p.text) for p in parts if p.kind == "tools"), [])  # no tools part: no tools

    names_before, names_after = names(div.before), names(div.after)
    if names_before is None or names_after is None or names_before == names_after:
        return None
    added = [name for name in names_after if name not in names_before]
    removed = [name for name in names_before if name not in names_after]
    changes = []
    if added:
        changes.append("added " + ", ".join(map(repr, added)))
    if removed:
        changes.append("removed " + ", ".join(map(repr, removed)))
    return Explanation(
        rule="The difference is in the tool list, and the tools themselves differ: tools are rendered first, so every "
             "token after them is computed again. Keep one fixed, ordered tool list for every request.",
        detail=f"tools {names_before} became {names_after}: {'; '.join(changes) or 'same tools, another order'}")


def is_json_key_order(div: Divergence) -> Explanation | None:
    """A JSON object or array spans the divergence in both parts, and both parse to the same value."""
    decoder = json.JSONDecoder()
    shift = div.offset_after - div.offset_before  # the text before the divergence is the same on both sides
    for match in JSON_START.finditer(div.text_before):
        start = match.start()
        if start >= div.offset_before:
            break  # a value that starts at or after the divergence cannot span it
        if start + shift < 0:
            continue
        try:
            value_before, end_before = decoder.raw_decode(div.text_before, start)
            value_after, end_after = decoder.raw_decode(div.text_after, start + shift)
        except json.JSONDecodeError:
            continue
        # sort_keys makes the comparison ignore key order; plain == would also call 1, 1.0 and true the same.
        if (end_before > div.offset_before and end_after > div.offset_after
                and json.dumps(value_before, sort_keys=True) == json.dumps(value_after, sort_keys=True)):
            how = ("keys in another order" if json.dumps(value_before) != json.dumps(value_after)
                   else "other whitespace or escapes")
            old, new = div.snippets()
            return Explanation(
                rule="The JSON here parses to the same value in both requests but is written differently, and the "
                     "cache compares text. Serialise with json.dumps(..., sort_keys=True) and fixed separators.",
                detail=f"{div.where}: {old!r} became {new!r} (same JSON value, {how})")
    return None


def is_whitespace(div: Divergence) -> Explanation | None:
    """Whitespace starts the difference, and with runs of whitespace collapsed the part reads the same after it."""
    rest_before, rest_after = div.text_before[div.offset_before:], div.text_after[div.offset_after:]
    if not (rest_before[:1].isspace() or rest_after[:1].isspace()):
        return None
    if " ".join(rest_before.split())[:20] != " ".join(rest_after.split())[:20]:
        return None
    old, new = div.snippets()
    return Explanation(
        rule="Only whitespace differs here: the words agree once runs of spaces and newlines are collapsed, but the "
             "tokens do not. Normalise whitespace (strip trailing spaces, one newline style) when building prompts.",
        detail=f"{div.where}: {old!r} became {new!r}")


def is_datetime(div: Divergence) -> Explanation | None:
    """A date or time covers the divergence in both parts, and the texts agree again after it."""
    swap = _swapped(DATETIME, div) or _swapped(DATE_LINE, div)
    if not swap:
        return None
    return Explanation(
        rule="A date or time covers the difference in both requests and the text after it agrees: the prompt carries "
             "the clock, so it changes by itself. Put it after the cached part, or coarsen it (a date, not a time).",
        detail=f"{div.where}: {swap[0]!r} became {swap[1]!r}")


def is_number(div: Divergence) -> Explanation | None:
    """A number (or a hex id) covers the divergence in both parts, and the texts agree again after it."""
    swap = _swapped(NUMBER, div, quote_prefix=True)
    if not swap:
        return None
    return Explanation(
        rule="A number covers the difference in both requests and the text after it agrees: a value that changes per "
             "request (an id, a counter, a price). Put it after the cached part, e.g. in the newest message.",
        detail=f"{div.where}: {swap[0]!r} became {swap[1]!r}")


def is_user_text(div: Divergence) -> Explanation | None:
    """In a static part, a swapped capitalised name that is not code, or a swapped word the user also wrote."""
    if not _is_static(div.after[div.part_after]):
        return None
    swap = _swapped(NAME, div)
    if swap and (is_code_name(div.text_before, _span_at(NAME, div.text_before, div.offset_before))
                 or is_code_name(div.text_after, _span_at(NAME, div.text_after, div.offset_after))):
        return None  # a class or module name in retrieved code or docs, not a person
    swap = swap or _swapped(WORD, div)
    if not swap:
        return None
    user_text = "\n".join(p.text for p in div.after if p.kind == "message" and p.role == "user")
    if re.search(rf"(?<!\w){re.escape(swap[1])}(?!\w)", user_text):
        why = f"{swap[1]!r}, which the user's message also contains"
    elif NAME.fullmatch(swap[0]) and NAME.fullmatch(swap[1]):
        why = "a capitalised name"
    else:
        return None
    return Explanation(
        rule=f"The difference is in {div.where}, which should read the same for every user, and the swapped text is "
             f"{why}: user-specific text in a static part. Move it into the user's message.",
        detail=f"{div.where}: {swap[0]!r} became {swap[1]!r}")


def is_code_name(text: str, span: tuple[int, int] | None) -> bool:
    """Whether the capitalised word(s) at `span` read as code, not a person: CamelCase or with a digit or underscore
    inside ('UserService', 'Http2', 'My_Class'), in backticks or a fenced code block, after a keyword that names a
    type or module (`class`, `import`, `from`, `new`, `extends`, `def`, `interface`), or followed by '(', '.' or '::'."""
    if span is None:
        return False
    start, end = span
    word = text[start:end]
    if CODE_WORD.search(word):
        return True
    before, after = text[max(0, start - 20):start], text[end:end + 2]
    in_backticks = before.endswith("`") or text[:start].count("```") % 2 == 1
    return bool(in_backticks or CODE_KEYWORD.search(before) or re.match(r"\(|\.\w|::", after))


def is_content(div: Divergence) -> Explanation:
    """What is left is an edit of text; say whether an edit of a static part is expected."""
    old, new = div.snippets()
    if _is_static(div.after[div.part_after]):
        rule = (f"None of the specific causes fits, and {div.where} was edited: a real change costs one cache write. "
                "If it changes on every request, find what rewrites it.")
    else:
        rule = ("None of the specific causes fits: edited content. If this text should repeat across "
                "requests, find what changed it.")
    return Explanation(rule=rule, detail=f"{div.where}: {old!r} became {new!r}")


# In order: the first check that applies names the cause. Breakpoints come first because when the texts agree there
# is nothing else to explain; `seam` is what the caller saw in the tokens; expected differences (a new question) come
# before the text checks so an id in a user's question is not blamed on the app; tool lists before JSON (a reordered
# list is not equal JSON) and JSON before whitespace (JSON spacing has its own fix); dates before numbers, numbers
# before names, since a date is made of numbers and a weekday is capitalised.
CHECKS: list[tuple[str, Callable[[Divergence], Explanation | None]]] = [
    ("breakpoint_moved", is_breakpoint_moved),
    ("new_turn", is_new_input),
    ("tool_list", is_tool_list),
    ("json_key_order", is_json_key_order),
    ("whitespace", is_whitespace),
    ("datetime", is_datetime),
    ("number", is_number),
    ("user_text", is_user_text),
    # After the value checks: a clock or id that changes often cuts its first token differently too, and then
    # the changing value is the cause to fix; the seam is what is left when nothing but the cut differs.
    ("seam", is_seam),
    ("history_rewritten", is_history_rewritten),
    ("content", is_content),
]


def classify(before: list[Part], after: list[Part], *, seam: bool = False) -> Cause:
    """Why `after` stops matching `before` where it does: the first cause in CHECKS that explains the divergence."""
    same_marks = [m[:2] for m in breakpoints(before)] == [m[:2] for m in breakpoints(after)]
    if full_text(before) == full_text(after) and same_marks:
        raise WorkbookError("The two requests are identical, in text and in cache_control breakpoints: there is no "
                            "divergence to explain. Call classify only for a pair that differs.")
    div = find_divergence(before, after, seam=seam)
    for name, check in CHECKS:
        explanation = check(div)
        if explanation is not None:
            return Cause(name, explanation.rule, explanation.detail)
    raise AssertionError("unreachable: is_content, the last check, always applies")
