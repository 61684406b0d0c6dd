"""Lesson 5's prompt lab: a templated prompt, the everyday edits that break its cache hit, and two layouts.

A support app renders every request from one template: a system prompt, tool definitions, a
policy document, a date line, the customer's name and message. The cache holds the previous
request (Ana's, yesterday); this request is Ben's, today. Each `Breaker` is one habit that makes
the two prompts part ways earlier than they need to; `PromptLab.run` sends both through an
`Engine` with a `PrefixCache` and reports where they diverged and what the cache could still serve,
and `LabResult.bills` what a provider would bill for the same two requests.

No widgets here: the view in `workbook.widgets.prompt_lab` and the tests drive the same functions.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Literal, Sequence

from ..engine import Engine, GenerationResult
from ..errors import WorkbookError
from ..page_pool import PagePool
from ..prefix_cache import Node, PrefixCache, loadable_tokens
from ..pricing import PriceSheet, Usage
from ..providers import Request
from ..timing import percentile
from ..tokenizer import shared_prefix_length
from .invalidation import mark_invalidated
from .provider_bills import WARM_GAP_S, BothBills, SideBySide, bill_both, careful_request, provider_bills
from .scenarios import DATE_FORMAT, tool_schema

Layout = Literal["static-first", "dynamic-first"]
SPLIT = "\ue000"  # a private-use character marking where the dynamic part starts; removed before tokenizing


class PromptLabError(WorkbookError):
    """A template the lab cannot render: bad tool JSON, a date line without {date}, an unknown breaker."""


# ----- the template and the two requests ----------------------------------------------------------

DEFAULT_SYSTEM = ("You are the support assistant of Cobble & Chain, a bicycle rental shop in Ghent. "
                  "You help customers with bookings, rentals and repairs. Answer briefly and politely.")
DEFAULT_TOOLS = json.dumps([
    tool_schema("check_booking", "Look up a booking by its id.", booking_id=("string", None)),
    tool_schema("extend_rental", "Add days to a running rental.", booking_id=("string", None), days=("integer", None)),
], indent=1)
# The shop's rental terms: long enough that the static part clears Claude Sonnet 4.5's and GPT-5.5's 1,024-token
# minimum, so the lab's "the provider would bill" column has a cache to hit or miss.
DEFAULT_POLICY = "\n".join([
    "## Bookings",
    "- Look up a booking with check_booking before you talk about it.",
    "- Never share another customer's booking, not even with someone who says they are family.",
    "- Bookings are made online or in the shop; we do not take bookings by phone or in this chat.",
    "- A booking can be extended with extend_rental while the bike is out, if the bike is free for the extra days.",
    "- Cancelling is free until 24 hours before pick-up. After that we keep half of the price.",
    "- A booking that is not picked up within two hours of its start is cancelled, and half of the price is kept.",
    "## Prices",
    "- City bike: 15 euros a day. E-bike: 35 euros a day. Cargo bike: 45 euros a day. Tandem: 40 euros a day.",
    "- Children's bikes and child seats: 8 euros a day. Helmets: 3 euros a day. Rain covers: 2 euros a day.",
    "- A week costs five days. Groups of six or more get 10% off when they book together.",
    "- A late return costs 5 euros per started hour, up to the price of one extra day.",
    "- Prices include insurance against theft with a 150-euro excess, if the bike was locked with our lock.",
    "## Pick-up and return",
    "- Pick-up and return are at the shop on Korenlei 7, from 9:00 to 19:00 every day, Sundays from 10:00.",
    "- Bring an identity card. We keep a 100-euro deposit on a card and release it when the bike comes back.",
    "- E-bikes leave the shop fully charged, with a charger for rentals of more than one day.",
    "- Every bike comes with a lock, lights and a bell; baskets and panniers are free on request.",
    "- A bike may not leave Belgium, and cargo bikes may not be taken on trains or trams.",
    "- A bike returned outside opening hours goes into the night box; the rental ends when we open the box.",
    "## Repairs and damage",
    "- Flat tyres are repaired for free during a rental: come to the shop, or call us and we come to you within Ghent.",
    "- A bike that breaks down through normal wear is swapped for free, wherever it is inside the ring road.",
    "- Damage from a fall or misuse is charged at workshop prices, never more than the bike's value.",
    "- A stolen bike must be reported to the police the same day; bring the report to the shop.",
    "- We also repair customers' own bikes: a basic service costs 45 euros and takes two working days.",
    "## Talking to customers",
    "- Answer in the customer's language if it is Dutch, French, English or German; otherwise in English.",
    "- Never promise a bike, a price or a repair time that a tool has not confirmed.",
    "- If a customer is unhappy, apologise once, say what you can do, and offer to pass them to the shop manager.",
    "- Do not give medical, legal or route advice beyond pointing to the city's cycling map.",
    "- When you are not sure, say so and offer to check with the shop; a wrong answer costs more than a slow one.",
])
DEFAULT_DATE_LINE = "Today's date: {date}"
# A rule added in the middle of the policy document: the "changed document" breaker.
NEW_RULE = "- New this season: a helmet comes free with every rental."


@dataclass(frozen=True)
class Visit:
    """The values that change from one request to the next: who writes, what, and when."""

    user_name: str
    user_message: str
    when: dt.datetime


PREVIOUS = Visit("Ana", "Hi! Can I still cancel booking B-2291 for Saturday?", dt.datetime(2026, 3, 14, 9, 0, 0))
CURRENT = Visit("Ben", "My front tyre is flat. What should I do?", dt.datetime(2026, 3, 15, 9, 0, 47))


@dataclass(frozen=True)
class PromptTemplate:
    """The app's prompt: its fixed text, and where the changing lines go.

    static-first puts the system prompt, tools and policy first and the date and customer last;
    dynamic-first opens with the date and the customer, the way a prompt reads most naturally.
    """

    system: str = DEFAULT_SYSTEM
    tools_json: str = DEFAULT_TOOLS
    policy: str = DEFAULT_POLICY
    date_line: str = DEFAULT_DATE_LINE
    layout: Layout = "static-first"

    def __post_init__(self) -> None:
        if self.date_line.count("{date}") != 1:
            raise PromptLabError(f"The date line must contain {{date}} exactly once, e.g. {DEFAULT_DATE_LINE!r}; "
                                 f"got {self.date_line!r}.")
        if self.layout not in ("static-first", "dynamic-first"):
            raise PromptLabError(f"layout is 'static-first' or 'dynamic-first', not {self.layout!r}.")
        if not self.system.strip():
            raise PromptLabError("The system prompt is empty. Write at least one sentence.")
        self.tools()  # fails early, with the parser's reason, on broken JSON

    def tools(self) -> list:
        """The tool definitions, parsed."""
        try:
            tools = json.loads(self.tools_json)
        except json.JSONDecodeError as error:
            raise PromptLabError(f"The tool definitions are not valid JSON: {error}.") from None
        if not isinstance(tools, list):
            raise PromptLabError("The tool definitions must be a JSON list of tools, e.g. [{\"name\": ...}].")
        return tools


@dataclass(frozen=True)
class Draft:
    """One request before rendering: the template's text and visit, plus the choices the breakers make."""

    template: PromptTemplate
    visit: Visit
    system: str
    policy: str
    head: str = ""  # lines that open the system prompt, before the persona
    sort_tool_keys: bool = True  # the app's canonical serialisation: json.dumps(..., sort_keys=True)
    chat_template: str = "default"
    one_string: bool = False  # True: the prompt goes to the engine as one string, not as [static, dynamic] segments

    @classmethod
    def of(cls, template: PromptTemplate, visit: Visit) -> Draft:
        return cls(template, visit, template.system, template.policy)


@dataclass(frozen=True)
class RenderedPrompt:
    """A rendered request: the static part, the dynamic part, and how the engine receives them."""

    static: str  # everything before the first value that changes per request
    dynamic: str
    one_string: bool

    @property
    def text(self) -> str:
        return self.static + self.dynamic

    @property
    def prompt(self) -> str | list[str]:
        """What `Engine.generate` gets: one string, or two segments tokenized apart so the seam stays put."""
        return self.text if self.one_string else [self.static, self.dynamic]

    def blocks(self, tokenizer) -> tuple[list[int], list[int]]:
        """The static and dynamic parts as a provider receives them: two blocks, each tokenized on its own."""
        return tokenizer.encode(self.static), tokenizer.encode(self.dynamic)


def render(draft: Draft, tokenizer) -> RenderedPrompt:
    """Fill the template for one visit, apply the chat template, and cut it where the dynamic part starts."""
    t, visit = draft.template, draft.visit
    tools = json.dumps(t.tools(), sort_keys=draft.sort_tool_keys, indent=1)
    label, rest = t.date_line.split("{date}")
    date_line = label + SPLIT + visit.when.strftime(DATE_FORMAT) + rest
    customer = f"Customer: {visit.user_name}"
    static = f"{draft.head}{draft.system}\n\n# Tools\n{tools}\n\n# Policy\n{draft.policy}"
    if t.layout == "static-first":
        system, user = f"{static}\n\n{date_line}", f"{customer}\n\n{visit.user_message}"
    else:
        system, user = f"{date_line}\n{customer}\n\n{static}", visit.user_message
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    # A template that stamps the date (like Llama 3.2's) reads `date_string` instead of the machine's clock.
    text = tokenizer.apply_chat_template(messages, template=draft.chat_template,
                                         date_string=visit.when.strftime(DATE_FORMAT))
    if text.count(SPLIT) != 1:
        raise PromptLabError(f"Chat template {draft.chat_template!r} did not copy the system message into the prompt "
                             "exactly once (or the template text contains the character U+E000), so the lab cannot "
                             "tell the static part from the dynamic one.")
    static_part, dynamic_part = text.split(SPLIT)
    return RenderedPrompt(static_part, dynamic_part, draft.one_string)


# ----- the breakers -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Breaker:
    """A habit that breaks a cache hit. `edit(draft, later)` changes a draft; `later` is True for this
    request and False for the cached one, so a breaker can make the two differ."""

    name: str
    label: str
    why: str
    edit: Callable[[Draft, bool], Draft]


def insert_middle(document: str, line: str) -> str:
    """`document` with `line` added between its middle lines."""
    lines = document.split("\n")
    lines.insert(len(lines) // 2, line)
    return "\n".join(lines)


BREAKERS: dict[str, Breaker] = {b.name: b for b in [
    Breaker("timestamp", "Timestamp at the top of the system prompt",
            "A request time to the second changes with every request, at the very start of the prompt.",
            lambda d, later: replace(d, head=f"Request time: {d.visit.when:%Y-%m-%d %H:%M:%S}\n" + d.head)),
    Breaker("user_name", "Customer's name in the system prompt's first line",
            "Personalising the opening line makes every customer's prompt different from token ~10 on.",
            lambda d, later: replace(d, head=d.head + f"You are talking to {d.visit.user_name}.\n")),
    Breaker("dated_template", "Chat template that stamps today's date",
            "The 'dated' chat template writes today's date above the system prompt; tomorrow it writes another.",
            lambda d, later: replace(d, chat_template="dated")),
    Breaker("tool_key_order", "Tools re-serialised with another key order",
            "Same tools, same meaning, but json.dumps without sort_keys=True writes the keys in another order.",
            lambda d, later: replace(d, sort_tool_keys=not later)),
    Breaker("trailing_space", "Trailing space after the persona",
            "One invisible space at the end of a line is a different token.",
            lambda d, later: replace(d, system=d.system + " ") if later else d),
    Breaker("changed_document", "A rule added in the middle of the policy",
            "Everything after the edit is recomputed; everything before it is still reused.",
            lambda d, later: replace(d, policy=insert_middle(d.policy, NEW_RULE)) if later else d),
    Breaker("token_seam", "Prompt built as one string (no segments)",
            "The static part ends with the space before the date. Tokenized as one string, that space merges "
            "with the date into one token, so the static part's last token is not the one the cache holds.",
            lambda d, later: replace(d, one_string=True)),
]}


def drafts(template: PromptTemplate, breakers: Iterable[str] = (), previous: Visit = PREVIOUS,
           current: Visit = CURRENT) -> tuple[Draft, Draft]:
    """The cached request's draft and this request's, with the named breakers applied to both."""
    breakers = set(breakers)
    unknown = breakers - set(BREAKERS)
    if unknown:
        raise PromptLabError(f"Unknown breaker(s) {', '.join(sorted(unknown))}; choose from {', '.join(BREAKERS)}.")
    before, now = Draft.of(template, previous), Draft.of(template, current)
    for name in (n for n in BREAKERS if n in breakers):  # a fixed order, whatever order they were given in
        before, now = BREAKERS[name].edit(before, False), BREAKERS[name].edit(now, True)
    return before, now


# ----- one lab run --------------------------------------------------------------------------------

@dataclass
class LabResult:
    """Yesterday's cached request against today's: where they part and what the cache could serve."""

    breakers: tuple[str, ...]
    page_size: int
    cached_ids: list[int]  # the previous request, whose rows the cache holds
    divergence: int  # first token where this request differs from the cached one
    result: GenerationResult  # this request, run through the engine
    parts: tuple[list[int], list[int]]  # this request's static and dynamic parts, each tokenized on its own
    cached_parts: tuple[list[int], list[int]]  # the same for the previous request

    @property
    def ids(self) -> list[int]:
        return self.result.prompt_ids

    @property
    def loaded(self) -> int:
        return self.result.usage.cache_read_tokens

    @property
    def static_tokens(self) -> int:
        """Tokens of this request's static part, tokenized on its own."""
        return len(self.parts[0])

    @property
    def cacheable(self) -> int:
        """Tokens of the static part a hit could load at best (whole pages; see `loadable_tokens`)."""
        return loadable_tokens(self.static_tokens, len(self.ids), self.page_size)

    @property
    def recomputed(self) -> int:
        """Rows of the static part the cache could have served but that were computed again."""
        return max(0, self.cacheable - self.loaded)

    @property
    def reused_share(self) -> float:
        return min(1.0, self.loaded / self.cacheable) if self.cacheable else 0.0

    @property
    def lost_to_pages(self) -> int:
        """Tokens before the first difference that were computed anyway: what a cache of one-token pages
        would have loaded, minus what whole pages let this one load."""
        return max(0, loadable_tokens(self.divergence, len(self.ids), page_size=1) - self.loaded)

    @property
    def provenance(self) -> list[str]:
        """Per token: loaded, invalidated (cacheable but computed again) or computed (new anyway)."""
        return mark_invalidated(self.result.provenance, self.cacheable)

    def bills(self, sheet: PriceSheet) -> SideBySide:
        """This request's prompt billed two ways at `sheet`'s prices: this engine's usage, and what the provider would
        bill, sent as `careful_request`s with the previous request a minute earlier. Output is left out of both."""
        earlier, now = careful_request(*self.cached_parts), careful_request(*self.parts, at_s=WARM_GAP_S)
        return SideBySide(sheet, replace(self.result.usage, output_tokens=0), provider_bills(sheet, [earlier, now])[-1])


class PromptLab:
    """Sends the cached request and this request through one `Engine` with a `PrefixCache`.

    Before each run the cache is emptied and refilled with the previous request's rows, so every
    run starts from the same cache whatever ran before. Those rows are computed once per prompt
    and kept, which is what keeps a click fast.
    """

    def __init__(self, model, tokenizer, *, page_size: int = 16, capacity_tokens: int = 4096,
                 previous: Visit = PREVIOUS, current: Visit = CURRENT):
        self.model, self.tokenizer = model, tokenizer
        self.previous, self.current = previous, current
        self.capacity_tokens = capacity_tokens
        self.set_page_size(page_size)

    def set_page_size(self, page_size: int) -> None:
        """Use a fresh prefix cache with pages of `page_size` tokens."""
        self.engine = Engine(self.model, self.tokenizer, PrefixCache(PagePool.for_tokens(self.capacity_tokens, page_size)))
        self._pinned: tuple[tuple[int, ...], Node | None] | None = None  # the previous request's ids and the node holding them

    @property
    def page_size(self) -> int:
        return self.engine.prefix_cache.pool.page_size

    def run(self, template: PromptTemplate, breakers: Iterable[str] = (), *, temperature: float = 0.0,
            top_p: float = 1.0, max_new_tokens: int = 1, seed: int = 0) -> LabResult:
        """Cache the previous request, send this one, and measure the damage the breakers did."""
        breakers = tuple(breakers)
        before, now = drafts(template, breakers, self.previous, self.current)
        cached, prompt = render(before, self.tokenizer), render(now, self.tokenizer)
        cached_ids, ids = self.engine.prompt_ids(cached.prompt), self.engine.prompt_ids(prompt.prompt)
        self._cache_only(cached_ids)
        result = self.engine.generate(ids, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
        return LabResult(breakers=tuple(n for n in BREAKERS if n in breakers), page_size=self.page_size,
                         cached_ids=cached_ids, divergence=shared_prefix_length(cached_ids, ids),
                         result=result, parts=prompt.blocks(self.tokenizer), cached_parts=cached.blocks(self.tokenizer))

    def _cache_only(self, ids: list[int]) -> None:
        """Leave exactly `ids` in the prefix cache: run through the engine once, then pinned, and the rest evicted each run."""
        cache, key = self.engine.prefix_cache, tuple(ids)
        if self._pinned is not None and self._pinned[0] != key:
            cache.unlock(self._pinned[1])
            self._pinned = None
        cache.clear()  # everything unpinned: what the last run added
        if self._pinned is None:
            self.engine.generate(ids, max_new_tokens=1)
            # One token more, so the match reaches every full page of `ids` (a match never loads a prompt's last token).
            node = cache.match(ids + [0], record=False).node
            cache.lock(node)
            self._pinned = (key, node)


# ----- a replayed workload: two layouts -------------------------------------------------------------

WORKLOAD_NAMES = ["Ana", "Ben", "Chloé", "Dries", "Ana", "Emma", "Ben", "Farid", "Griet", "Ana", "Hugo", "Ines"]
WORKLOAD_MESSAGES = [
    "Can I still cancel booking B-2291 for Saturday?", "My front tyre is flat. What should I do?",
    "Do you rent child seats?", "Can I add two days to booking B-3010?", "Is the shop open on Sunday?",
    "How much is a late return?", "The chain keeps slipping. Can you help?", "Where do I pick up an e-bike?",
    "Can I pay by card at pick-up?", "Please check booking B-2291 again.", "Do you repair my own bike too?",
    "Can two people share one booking?",
]


def workload(start: dt.datetime = CURRENT.when, minutes_apart: float = 3.0) -> list[Visit]:
    """A busy half hour: twelve messages from nine customers (some come back), a few minutes apart."""
    return [Visit(name, message, start + dt.timedelta(minutes=i * minutes_apart))
            for i, (name, message) in enumerate(zip(WORKLOAD_NAMES, WORKLOAD_MESSAGES))]


def workload_requests(tokenizer, template: PromptTemplate, visits: Sequence[Visit]) -> list[Request]:
    """The visits rendered with `template` as `careful_request`s, timed from the first visit (output left out)."""
    return [careful_request(*render(Draft.of(template, visit), tokenizer).blocks(tokenizer),
                            at_s=(visit.when - visits[0].when).total_seconds()) for visit in visits]


@dataclass
class ReplayResult:
    """One layout's run through a workload: this engine's runs beside each provider's bills."""

    layout: Layout
    both: BothBills

    @property
    def usage(self) -> Usage:
        """This engine's billing buckets, summed over the requests."""
        return sum(result.usage for result in self.both.results)

    @property
    def hit_rate(self) -> float:
        """Hit tokens / prompt tokens, as the prefix cache counts it."""
        return self.usage.cache_read_tokens / self.usage.total_input_tokens

    @property
    def ttft_s(self) -> list[float]:
        return [result.timings.ttft_s for result in self.both.results]

    @property
    def ttft_p50_s(self) -> float:
        return percentile(self.ttft_s, 50)

    @property
    def requests(self) -> int:
        return len(self.both.results)

    def billed(self, model_key: str) -> Usage:
        """What `model_key`'s provider bills, summed over the requests."""
        return sum(bill.provider.usage for bill in self.both.bills[model_key])


def replay(model, tokenizer, template: PromptTemplate, visits: Sequence[Visit], model_keys: Sequence[str], *,
           page_size: int = 16, sheets: dict[str, PriceSheet] | None = None) -> ReplayResult:
    """Send `visits` in order through a fresh engine and prefix cache, and through each provider's simulator."""
    requests = workload_requests(tokenizer, template, visits)
    # Untimed: the first call pays one-off set-up costs.
    Engine(model, tokenizer).generate([block.content for block in requests[0].blocks], max_new_tokens=1)
    return ReplayResult(template.layout, bill_both(model, tokenizer, requests, model_keys, page_size=page_size,
                                                   sheets=sheets))


def compare_layouts(model, tokenizer, template: PromptTemplate, visits: Sequence[Visit], model_keys: Sequence[str], *,
                    page_size: int = 16, sheets: dict[str, PriceSheet] | None = None) -> dict[str, ReplayResult]:
    """The same workload replayed static-first and dynamic-first; `sheets` as in `get_sheet`."""
    return {layout: replay(model, tokenizer, replace(template, layout=layout), visits, model_keys, page_size=page_size,
                           sheets=sheets)
            for layout in ("static-first", "dynamic-first")}
