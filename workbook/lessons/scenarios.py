"""The made-up shop, users and questions that lesson 4 (the prefix demo and the radix tree) runs on.

Harbor & Pine, an online outdoor-gear shop, has a support assistant whose system prompt carries
a date near the top (what breaks a prefix) and tool definitions; three apps (support, coding,
travel) of two tenants send short questions behind their own system prompts.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass

# ----- lesson 4: one support assistant, a cold request, a hit, a broken prefix -------------------


def tool_schema(name: str, description: str, **params: tuple[str, str | None]) -> dict:
    """A tool as providers describe it: a JSON schema. Each parameter is name=(JSON type, description or None)."""
    properties = {key: {"type": kind} | ({} if text is None else {"description": text})
                  for key, (kind, text) in params.items()}
    return {"name": name, "description": description,
            "parameters": {"type": "object", "properties": properties, "required": list(params)}}


SUPPORT_TOOLS = [  # the support assistant's tools, as providers describe them
    tool_schema("lookup_order", "Look up an order by its id and return its status, items and delivery estimate.",
                order_id=("string", "The order id, for example A12345.")),
    tool_schema("start_return", "Start a return for a delivered order and email a prepaid label to the customer.",
                order_id=("string", "The order id."), reason=("string", "Why the customer is returning the item.")),
]

# The date sits right after the persona, as a template that stamps "today" would put it: the one
# line that changes every day is near the top, which is exactly what breaks a prefix cache.
DEFAULT_SYSTEM_PROMPT = "\n".join([
    "You are the customer support assistant of Harbor & Pine, an online shop for outdoor gear. "
    "You help customers with orders, returns and product questions.",
    "Today Date: 14 Mar 2026",
    "",
    "# Policies",
    "- Always look up an order with lookup_order before answering questions about it.",
    "- Returns are accepted within 30 days of delivery. Items must be unused.",
    "- Refunds go back to the original payment method within 5 business days.",
    "- Never share another customer's order details.",
    "- If you cannot help, offer to hand the conversation to a human agent.",
    "",
    "# Tools",
    'To call a tool, reply with only a JSON object: {"tool": <name>, "arguments": <object>}. '
    "The result comes back in a tool message.",
    "",
    json.dumps(SUPPORT_TOOLS),
])

# The same assistant at a realistic size: the full tool list and the shop's handbook. Long enough for
# providers' minimum lengths (1,024 tokens at Claude Sonnet 4.5 and GPT-5.5), so lesson 4 can show
# what a provider bills for it. The date is still near the top; the gift-card line sits near the end.
_MORE_TOOLS = [
    tool_schema("track_parcel", "Where a parcel is now, from the carrier's tracking page.",
                tracking_number=("string", "The carrier's tracking number, for example 1Z999AA10123456784.")),
    tool_schema("product_info", "Sizes, materials, weight and care instructions of a product.",
                product_id=("string", "The product id, for example HP-BOOT-214.")),
    tool_schema("store_stock", "How many of a product in a given size are in stock, online and in each store.",
                product_id=("string", "The product id."), size=("string", "The size, for example EU 42 or M.")),
    tool_schema("exchange_item", "Exchange a delivered item for another size or colour of the same product.",
                order_id=("string", "The order id."), product_id=("string", "The product id."),
                new_size=("string", "The size the customer wants instead.")),
    tool_schema("gift_card_balance", "The remaining balance and expiry date of a gift card.",
                card_number=("string", "The 16-digit gift card number.")),
    tool_schema("hand_over", "Pass the conversation to a human agent, with a one-line summary of the problem.",
                summary=("string", "What the customer needs, in one line.")),
]
GIFT_CARD_LINE = "- Gift cards are valid for three years from the day they were bought."
LONG_SYSTEM_PROMPT = "\n".join([
    DEFAULT_SYSTEM_PROMPT,
    json.dumps(_MORE_TOOLS),
    "",
    "# Shipping",
    "- Orders placed before 14:00 on a working day leave the warehouse the same day.",
    "- Standard delivery takes 2 to 4 working days in the EU and is free above 60 euros; below, it costs 4.95 euros.",
    "- Express delivery takes 1 working day and costs 9.95 euros. It is not available for tents and kayaks.",
    "- A parcel that the carrier marks as delivered but the customer did not get is investigated with the "
    "carrier first; after 5 working days we send a replacement or refund the order.",
    "- We do not ship to PO boxes, and we ship outside the EU only to Norway, Switzerland and the United Kingdom.",
    "",
    "# Sizes and products",
    "- Boots run small: suggest half a size up if the customer is between sizes.",
    "- Down jackets must not be washed with ordinary detergent; point to the care instructions from product_info.",
    "- Tents are checked for all parts before they ship; a missing part is sent by express at no cost.",
    "- Never guess stock: check store_stock, and say that stock can change within minutes.",
    "",
    "# Warranty",
    "- Every product has a two-year warranty against defects in materials and workmanship.",
    "- Wear and tear, misuse and damage from accidents are not covered; be kind but clear about it.",
    "- For a warranty claim, ask for the order id and a photo of the defect, then hand over to a human agent.",
    "",
    "# Payments and gift cards",
    "- We accept cards, PayPal, Bancontact, iDEAL and gift cards; we never ask for card numbers in the chat.",
    GIFT_CARD_LINE,
    "- A gift card balance can pay for part of an order; the rest is paid by any other method.",
])
QUESTION_1 = "Hi. Where is my order A12345? It should have arrived on Monday."
QUESTION_2 = "Hello. Can I still return the hiking boots I bought three weeks ago?"

_DATE = re.compile(r"\b(\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4})\b")
DATE_FORMAT = "%d %b %Y"  # as Llama 3.2's and the shipped "dated" chat template write it, e.g. "15 Mar 2026"


def chat(system_prompt: str, question: str) -> list[dict]:
    """The messages of one request: the shared system prompt, then the user's question."""
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": question}]


def break_system_prompt(text: str) -> str:
    """`text` with its first date ("14 Mar 2026") moved on by one day; without a date, one is added after the first line."""
    found = _DATE.search(text)
    if found is None:
        first, _, rest = text.partition("\n")
        return f"{first}\nToday Date: 14 Mar 2026\n{rest}"
    next_day = dt.datetime.strptime(found.group(0), DATE_FORMAT) + dt.timedelta(days=1)
    return text[:found.start()] + next_day.strftime(DATE_FORMAT) + text[found.end():]


# ----- lesson 4's radix tree: three apps, six users, two tenants ----------------------------------

SYSTEM_PROMPTS = {
    "support": ("You are the support assistant of Harbor & Pine, an online shop for outdoor gear. Always look up an order "
                "with lookup_order before answering questions about it. Returns are accepted within 30 days of delivery; "
                "items must be unused. Refunds go back to the original payment method within 5 business days. Never "
                "share another customer's order details."),
    "coding": ("You are a Python coding assistant for the data team. Answer with short, correct code and one sentence "
               "of explanation. Prefer the standard library over new dependencies. Use type hints and f-strings. "
               "Never run code you were not asked to run, and say so when an answer depends on the Python version."),
    "travel": ("You are a travel planning assistant. Suggest flights, weather and local tips for the places a "
               "customer asks about. Give prices in the customer's currency and say when a price may have changed. "
               "Do not book anything without the customer's clear confirmation, and mention visa rules when they apply."),
}


@dataclass(frozen=True)
class User:
    name: str
    tenant: str  # the organisation; its cache is salted apart from every other tenant's
    app: str  # which system prompt the user's app sends


USERS = [User("Ana", "acme", "support"), User("Ben", "acme", "coding"), User("Chloe", "globex", "support"),
         User("Dev", "acme", "support"), User("Elif", "globex", "travel"), User("Farah", "acme", "coding")]
QUESTIONS = {
    "support": ["Where is my order A12345?", "Can I return boots I wore once?", "How long does a refund take?",
                "Do you ship to Norway?", "My jacket arrived torn. What now?"],
    "coding": ["How do I read a CSV file?", "Sort a list of dicts by a key.", "What does enumerate return?",
               "How do I time a function?", "Split a string on commas."],
    "travel": ["Flights from Lisbon to Oslo in May?", "Is Tokyo rainy in June?", "Tips for a day in Vienna?",
               "Cheapest week to fly to Lima?", "Do I need a visa for Seoul?"],
}
