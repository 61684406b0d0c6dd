"""Lesson 5's multi-turn conversation: an agent chat of 12 requests, and where to put Anthropic's breakpoints in it.

Cobble & Chain's fleet assistant is an agent: a long system prompt with tool definitions, then a
staff member's messages, the model's tool calls and the tools' results. Every request resends the
whole conversation so far, so request n is request n-1 plus what happened since: the model's last
reply and the new message or tool results (a "turn"). At request 3 the agent checks 24 bikes at
once, so that turn adds 25 blocks: more than Anthropic's 20-block lookback can see past.

`Conversation.requests(strategy)` renders the chat five ways, the same tokens each time, with
breakpoints placed differently; `bill_strategies` bills them at several providers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

from ..errors import WorkbookError
from ..pricing import get_sheet
from ..providers import Bill, Block, Request
from .provider_bills import provider_bills
from .scenarios import tool_schema

# ----- the scenario -----------------------------------------------------------------------------------

_AGENT_TOOLS = [
    tool_schema("list_bikes", "List the bikes of the rental fleet, optionally of one type, with their ids and models.",
                type=("string", "One of city, e-bike, cargo, kids or tandem; leave out for the whole fleet."),
                available_only=("boolean", "Only bikes that are not rented out or in the workshop right now.")),
    tool_schema("check_bike", "Read one bike's service record: km and days since the last service, brake pad depth "
                              "(mm), tyres, battery health (%, e-bikes only) and open damage reports.",
                bike_id=("string", "The bike id, for example EB-07.")),
    tool_schema("book_workshop", "Book a bike into the workshop for a service slot. The bike is taken off the rental "
                                 "calendar for the slot and the mechanic gets the job card.",
                bike_id=("string", "The bike id."), day=("string", "The day, as YYYY-MM-DD."),
                job=("string", "What the mechanic should do, in one line.")),
    tool_schema("find_bookings", "Find customer bookings that use given bikes between two days.",
                bike_ids=("array", "The bike ids to look for."), start=("string", "First day, YYYY-MM-DD."),
                end=("string", "Last day, YYYY-MM-DD.")),
    tool_schema("swap_bike", "Move a customer booking to another bike of the same type and tell the customer.",
                booking_id=("string", "The booking id, for example B-4410."),
                bike_id=("string", "The bike the booking moves to.")),
    tool_schema("weather_forecast", "The forecast for Ghent for one day: rain chance, wind and temperature by hour.",
                day=("string", "The day, as YYYY-MM-DD.")),
    tool_schema("check_stock", "How many of a spare part the shop has in stock, and its price.",
                part=("string", "The part, for example 'brake pads, Shimano B05S'.")),
    tool_schema("order_parts", "Order spare parts from the wholesaler for delivery the next working day.",
                part=("string", "The part, for example 'brake pads, Shimano B05S'."),
                quantity=("integer", "How many.")),
]

AGENT_SYSTEM = "\n".join([
    "You are the fleet assistant of Cobble & Chain, a bicycle rental shop in Ghent. You work for the shop's staff, "
    "not for customers: you keep the fleet of city bikes, e-bikes, cargo bikes, kids' bikes and tandems safe, "
    "serviced and available, and you rearrange bookings when a bike has to go into the workshop.",
    "",
    "# How you work",
    "- Use the tools to look things up. Never guess a bike's state, a booking or the weather.",
    "- When you need several independent look-ups, call the tools in parallel in one turn.",
    "- Before you book a bike into the workshop, check that no customer booking needs it that day, or swap the "
    "booking to another bike of the same type first.",
    "- Tell customers about a swap in one friendly sentence; never mention the fault in detail.",
    "- Keep answers to staff short: a list of what you found, then what you propose or did.",
    "- Ask before you spend money: parts orders above 200 euros need the manager's yes.",
    "",
    "# Service rules",
    "- Every bike is serviced after 800 km or 60 days, whichever comes first.",
    "- Brake pads under 1.5 mm are replaced before the bike is rented again.",
    "- A tyre with a cut, a bulge or worn tread is replaced; a slow puncture is repaired.",
    "- E-bike batteries under 80% health are reported to the manager; under 70% they are replaced.",
    "- A bike with an open damage report is not rented until a mechanic has closed the report.",
    "- The workshop takes at most four bikes a day; e-bikes take a full slot, other bikes half a slot.",
    "- Weekends are the busiest days: plan services from Monday to Thursday when you can.",
    "",
    "# Bookings and customers",
    "- Booking ids look like B-4410, bike ids like EB-07 (e-bikes), CB-03 (cargo), CT-12 (city), KD-02 (kids).",
    "- A customer keeps the price they booked at when you move them to another bike, even a more expensive one.",
    "- If no bike of the same type is free, offer a free upgrade to an e-bike, then a refund, in that order.",
    "- Rain covers and child seats are extras: check stock before you promise them.",
    "",
    "# Tools",
    "Call a tool by replying with one JSON object per call: {\"tool\": <name>, \"arguments\": <object>}. Each result "
    "comes back as a tool message in the next turn, in the order of the calls.",
    "",
    json.dumps(_AGENT_TOOLS),
])


@dataclass(frozen=True)
class Exchange:
    """One request's worth of the chat: what arrives (a message or tool results, a block each), when, and the reply."""

    arrives: tuple[str, ...]
    at_s: float  # seconds since the first request
    reply: str


def _bike(n: int) -> dict:
    """E-bike EB-n's service record: made-up but fixed numbers, with four bikes in poor shape."""
    worn = {4: "pads 1.2 mm", 9: "battery 68%", 15: "rear tyre cut", 21: "pads 1.4 mm"}
    return {"bike": f"EB-{n:02d}", "km": 120 + 37 * n % 650, "days": 5 + 3 * n % 50,
            "pads": 1.2 if n == 4 else 1.4 if n == 21 else 2.0 + n % 3 * 0.4, "tyres": "cut" if n == 15 else "ok",
            "battery": 68 if n == 9 else 82 + n % 15, "reports": [worn[n]] if n in worn else []}


def _result(tool: str, value) -> str:
    """A tool result as the agent sees it: the tool's name, then its JSON."""
    return f"{tool}: {json.dumps(value)}"


def _calls(*calls: tuple[str, dict]) -> str:
    """The model's reply when it calls tools: one JSON object per call, as the system prompt asks."""
    return "\n".join(json.dumps({"tool": tool, "arguments": arguments}) for tool, arguments in calls)


_E_BIKES = range(1, 25)
_THURSDAY, _SATURDAY = "2026-03-19", "2026-03-21"
_WORKSHOP = [("EB-04", "new brake pads"), ("EB-09", "new battery"), ("EB-15", "new rear tyre"),
            ("EB-21", "new brake pads")]

EXCHANGES: list[Exchange] = [
    Exchange(("Staff: Good morning! Which e-bikes need a service before the weekend? Saturday is fully booked.",), 0.0,
             _calls(("list_bikes", {"type": "e-bike"}))),
    Exchange((_result("list_bikes", {f"EB-{n:02d}": "Gazelle C380" if n % 2 else "R&M Roadster" for n in _E_BIKES}),),
             4.0, _calls(*(("check_bike", {"bike_id": f"EB-{n:02d}"}) for n in _E_BIKES))),
    Exchange(tuple(_result("check_bike", _bike(n)) for n in _E_BIKES), 15.0,
             "Four e-bikes need the workshop before Saturday:\n- EB-04: brake pads at 1.2 mm, to be replaced before it "
             "is rented again.\n- EB-09: battery at 68%, under 70%: replace it.\n- EB-15: cut in the rear tyre.\n"
             "- EB-21: brake pads at 1.4 mm.\nThe other 20 are fine. Shall I book all four for Thursday?"),
    Exchange(("Staff: Yes, Thursday is good. But check the bookings first, I think EB-09 is rented out on Thursday.",),
             95.0, _calls(("find_bookings", {"bike_ids": [bike for bike, _ in _WORKSHOP], "start": _THURSDAY,
                                             "end": _THURSDAY}))),
    Exchange((_result("find_bookings", [
        {"booking_id": "B-4410", "bike_id": "EB-09", "customer": "Lena Maes", "from": "09:00", "to": "18:00"},
        {"booking_id": "B-4423", "bike_id": "EB-21", "customer": "Tom Peeters", "from": "13:00",
         "to": "next day 10:00"},
    ]),), 99.0,
             "EB-09 (B-4410, Lena Maes) and EB-21 (B-4423, Tom Peeters) are booked on Thursday; EB-02 and EB-13 are "
             "free all day. I propose to move both bookings, then book the four bikes. Go ahead?"),
    Exchange(("Staff: Go ahead.",), 160.0,
             _calls(("swap_bike", {"booking_id": "B-4410", "bike_id": "EB-02"}),
                    ("swap_bike", {"booking_id": "B-4423", "bike_id": "EB-13"}))),
    Exchange((_result("swap_bike", {"booking_id": "B-4410", "bike_id": "EB-02", "customer_told": True}),
              _result("swap_bike", {"booking_id": "B-4423", "bike_id": "EB-13", "customer_told": True})), 166.0,
             _calls(*(("book_workshop", {"bike_id": bike, "day": _THURSDAY, "job": job}) for bike, job in _WORKSHOP))),
    Exchange(tuple(_result("book_workshop", {"bike_id": bike, "day": _THURSDAY, "slot": slot})
                   for slot, (bike, _) in enumerate(_WORKSHOP, 1)), 175.0,
             "Done: B-4410 moved to EB-02 and B-4423 to EB-13, both customers told, and the four bikes are booked for "
             "Thursday in slots 1 to 4. The workshop is full that day."),
    Exchange(("Staff: Thanks. Do we have the brake pads and a battery in stock, or should I order?",), 290.0,
             _calls(("check_stock", {"part": "brake pads, Shimano B05S"}),
                    ("check_stock", {"part": "battery 500 Wh"}))),
    Exchange((_result("check_stock", {"part": "brake pads, Shimano B05S", "in_stock": 3, "price_eur": 24}),
              _result("check_stock", {"part": "battery 500 Wh", "in_stock": 0, "price_eur": 540})), 296.0,
             "We have 3 sets of brake pads and need 4, and no battery. The battery costs 540 euros, above the 200-euro "
             "limit, so it needs the manager's yes. Shall I order one set of pads (24 euros) now?"),
    Exchange(("Staff: Order the pads. I'll ask the manager about the battery. What is the weather on Saturday?",),
             410.0,
             _calls(("order_parts", {"part": "brake pads, Shimano B05S", "quantity": 1}),
                    ("weather_forecast", {"day": _SATURDAY}))),
    Exchange((_result("order_parts", {"part": "brake pads, Shimano B05S", "quantity": 1, "delivery": "2026-03-18"}),
              _result("weather_forecast", {"day": _SATURDAY, "rain_chance_by_2h_from_9": [10, 10, 40, 70, 70, 60, 30],
                                           "wind_kmh": 22, "temperature_c": 11})), 418.0,
             "Pads ordered, delivered Wednesday. Saturday: dry in the morning, rain likely from 15:00 to 19:00, wind "
             "22 km/h, 11 degrees. Worth putting rain covers out for the afternoon pick-ups."),
]


# ----- the same chat, rendered five ways --------------------------------------------------------------

STRATEGIES: dict[str, str] = {
    "none": "no breakpoint",
    "system": "(a) one breakpoint on the system prompt",
    "newest": "(b) a breakpoint moved to the newest turn",
    "two": "(c) two sliding breakpoints: newest and previous turn",
    "whitespace": "(d) newest turn, on a ' ' block the renderer adds",
}
PAD = " "  # what a renderer that needs a block to carry the breakpoint appends, and drops on the next request


@dataclass(frozen=True)
class Conversation:
    """The chat as token-id blocks: turn 0 is the system prompt, turn n + 1 the blocks request n adds (0-based)."""

    turns: tuple[tuple[tuple[int, ...], ...], ...]
    at_s: tuple[float, ...]  # one per request
    output_tokens: tuple[int, ...]  # one per request: its reply
    pad: tuple[int, ...]  # the ' ' block's ids

    @classmethod
    def encode(cls, tokenizer, system: str = AGENT_SYSTEM, exchanges: Sequence[Exchange] = EXCHANGES) -> Conversation:
        """Tokenize every block once with `tokenizer`; a turn after the first starts with the model's previous reply."""
        def ids(text: str) -> tuple[int, ...]:
            return tuple(tokenizer.encode(text))

        turns = [(ids(system),)]
        for n, exchange in enumerate(exchanges):
            earlier = (ids(exchanges[n - 1].reply),) if n else ()
            turns.append(earlier + tuple(ids(text) for text in exchange.arrives))
        return cls(tuple(turns), tuple(e.at_s for e in exchanges), tuple(len(ids(e.reply)) for e in exchanges),
                   ids(PAD))

    def __len__(self) -> int:
        """How many requests the chat makes."""
        return len(self.at_s)

    def turn_tokens(self, n: int) -> int:
        """Tokens of turn n: the system prompt for n = 0, else what request n - 1 adds."""
        return sum(map(len, self.turns[n]))

    def prompt_tokens(self, request: int) -> int:
        """Tokens request `request` (0-based) sends, before any padding: the system prompt and turns 1..request+1."""
        return sum(self.turn_tokens(n) for n in range(request + 2))

    def requests(self, strategy: str) -> list[Request]:
        """The chat's requests with breakpoints placed by `strategy` (a key of STRATEGIES)."""
        if strategy not in STRATEGIES:
            raise WorkbookError(f"Unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}.")
        return [self._request(strategy, r) for r in range(len(self))]

    def _request(self, strategy: str, r: int) -> Request:
        turns = self.turns[:r + 2]
        marked = {"system": {0}, "newest": {r + 1}, "two": {r, r + 1}}.get(strategy, set())
        blocks = [Block(ids, "5m" if n in marked and j == len(turn) - 1 else None)
                  for n, turn in enumerate(turns) for j, ids in enumerate(turn)]
        if strategy == "whitespace":
            blocks.append(Block(self.pad, "5m"))
        return Request(blocks, self.at_s[r], self.output_tokens[r])


def bill_strategies(conversation: Conversation, model_keys: Sequence[str],
                    strategies: Sequence[str] = tuple(STRATEGIES)) -> dict[str, dict[str, list[Bill]]]:
    """Bills per strategy and model key: each strategy's requests replayed on a fresh cache of each provider."""
    sheets = [get_sheet(key) for key in model_keys]
    return {strategy: {sheet.key: provider_bills(sheet, conversation.requests(strategy)) for sheet in sheets}
            for strategy in strategies}
