"""The training corpus of the shipped models, built offline from what ships with Python.

Two kinds of text, both needing no download:

* Python's own documentation: the language reference topics in `pydoc_data.topics` and the
  docstrings of common standard-library modules, classes and functions (read with `inspect`).
* Generated assistant conversations shaped like the prompts the lessons use: a long system
  prompt (persona, policies, tool schemas in JSON), then user questions, tool calls, tool
  results and assistant answers. They are templated but varied, and seeded, so the same seed
  gives the same text.

Conversations are written in the chat format of the shipped tokenizer (`render_chat`), the
same text its chat templates produce, so the model learns the template.

    python -m workbook.training.corpus --out data/train_runs/corpus --seed 0
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import json
import os
import pkgutil
import random
import re
import sys
import sysconfig
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbook.lessons.scenarios import tool_schema

# --- the chat format ------------------------------------------------------------------------

BOS = "<|endoftext|>"
END = "<|end|>"
ROLES = ("system", "user", "assistant", "tool")
SPECIAL_TOKENS = [BOS, *(f"<|{role}|>" for role in ROLES), END]

# Each turn is "<|role|>\n" + content + "<|end|>\n"; a prompt starts with <|endoftext|>, which
# is also what separates documents in the corpus, so a rendered chat is a corpus document.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] not in ['system', 'user', 'assistant', 'tool'] %}"
    "{{- raise_exception('Unknown role ' + message['role'] + '; use system, user, assistant or tool.') }}"
    "{%- endif %}"
    "{{- '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>\\n' }}{%- endif %}"
)

# Like Llama 3.2's template, stamp today's date at the top of the system turn (adding a system
# turn if there is none). The date changes every day, and with it the prompt's first tokens. As in
# Llama 3.2's, a `date_string` variable, when given, replaces the machine's clock.
DATED_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if date_string is not defined %}{%- set date_string = strftime_now('%d %b %Y') %}{%- endif %}"
    "{%- set today = 'Today Date: ' + date_string %}"
    "{%- if not messages or messages[0]['role'] != 'system' %}"
    "{{- '<|system|>\\n' + today + '<|end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] not in ['system', 'user', 'assistant', 'tool'] %}"
    "{{- raise_exception('Unknown role ' + message['role'] + '; use system, user, assistant or tool.') }}"
    "{%- endif %}"
    "{%- if loop.first and message['role'] == 'system' %}"
    "{{- '<|system|>\\n' + today + '\\n\\n' + message['content'] + '<|end|>\\n' }}"
    "{%- else %}"
    "{{- '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>\\n' }}{%- endif %}"
)


def render_chat(messages: list[dict], add_generation_prompt: bool = False, date: str | None = None) -> str:
    """The text the chat templates produce: CHAT_TEMPLATE, or DATED_CHAT_TEMPLATE when `date` is given."""
    turns = [dict(m) for m in messages]
    for m in turns:
        if m["role"] not in ROLES:
            raise ValueError(f"Unknown role {m['role']!r}; use one of {', '.join(ROLES)}.")
    if date is not None:
        stamp = f"Today Date: {date}"
        if turns and turns[0]["role"] == "system":
            turns[0]["content"] = f"{stamp}\n\n{turns[0]['content']}"
        else:
            turns.insert(0, {"role": "system", "content": stamp})
    text = BOS + "".join(f"<|{m['role']}|>\n{m['content']}{END}\n" for m in turns)
    return text + ("<|assistant|>\n" if add_generation_prompt else "")


# --- Python's documentation -----------------------------------------------------------------

# Every importable standard-library module and submodule except these: GUI, platform-only,
# deprecated or with side effects at import (`this` prints, `antigravity` opens a browser).
SKIP_MODULES = {
    "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "lib2to3", "ensurepip",
    "venv", "distutils", "pydoc_data", "encodings", "site", "msilib", "msvcrt", "winreg", "winsound",
    "nt", "curses", "readline", "crypt", "nis", "spwd", "ossaudiodev", "tty", "pty", "webbrowser",
    "pdb", "pydoc",
}


def doc_module_names() -> list[str]:
    """Names of the standard-library modules whose docstrings go into the corpus, sorted."""
    names = []
    for top in sorted(sys.stdlib_module_names - SKIP_MODULES):
        module = _import(top) if not top.startswith("_") else None
        if module is None:
            continue
        names.append(top)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), top + "."):
            if not any(part.startswith("_") or part in ("test", "tests") for part in info.name.split(".")):
                names.append(info.name)
    return names


def _import(name: str):
    """The module, or None where it cannot be imported on this platform."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module(name)
        except Exception:  # platform-only modules raise ImportError, a few raise others
            return None


def clean(text: str) -> str:
    """Strip trailing spaces, turn tabs into spaces and squeeze runs of blank lines."""
    lines = [line.rstrip() for line in text.expandtabs(4).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


class _Elided:
    """Stands in for a default value that must not be written out (see `_signature`)."""

    def __repr__(self) -> str:
        return "..."


def _machine_values() -> set[str]:
    """Defaults that show this machine rather than the library: interpreter paths, install scheme."""
    values = {sys.executable, sys.prefix, sys.base_prefix, sys.exec_prefix, os.getcwd(), sysconfig.get_default_scheme()}
    return {repr(v) for v in values if v}


def _signature(obj) -> str:
    """The call signature, with defaults that depend on the run or the machine written `...`.

    Object reprs hold memory addresses (`<function <lambda> at 0x7f...>`), long ones this machine's
    state (`environ={...}` is the whole environment); neither may go into a published corpus.
    """
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return ""
    params = []
    for p in signature.parameters.values():
        shown = repr(p.default) if p.default is not p.empty else ""
        unstable = shown.startswith("<") or len(shown) > 60 or shown in _machine_values()
        params.append(p.replace(default=_Elided()) if unstable else p)
    return str(signature.replace(parameters=params))


def _defined_in(obj, module_name: str) -> bool:
    """True for objects the module itself defines (C helpers like `_json` count as the module)."""
    owner = getattr(obj, "__module__", None) or ""
    base = module_name.rsplit(".", 1)[-1]
    return owner in (module_name, "_" + base, base)


def _entry(title: str, doc: str | None) -> str | None:
    doc = clean(doc or "")
    return f"{title}\n\n{doc}" if len(doc) >= 40 else None


def module_document(module_name: str) -> str | None:
    """One module's documentation: its docstring, then each public class, method and function."""
    module = _import(module_name)
    if module is None:
        return None
    parts = [_entry(f"Module {module_name}", inspect.getdoc(module))]
    for name in sorted(getattr(module, "__all__", None) or dir(module)):
        obj = getattr(module, name, None)
        if name.startswith("_") or not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        if module_name != "builtins" and not _defined_in(obj, module_name):
            continue
        parts.append(_entry(f"{module_name}.{name}{_signature(obj)}", inspect.getdoc(obj)))
        if inspect.isclass(obj):
            for attr, member in sorted(vars(obj).items()):
                # Skip methods other libraries patch in (transformers adds Logger.info_once, say).
                patched = getattr(member, "__module__", None) not in (None, obj.__module__)
                if not attr.startswith("_") and inspect.isroutine(member) and not patched:
                    parts.append(_entry(f"{module_name}.{name}.{attr}{_signature(member)}", inspect.getdoc(member)))
    # Aliases (e.g. a class and its old name) share a docstring; keep the first.
    unique, seen = [], set()
    for part in filter(None, parts):
        body = part.partition("\n\n")[2]
        if body not in seen:
            seen.add(body)
            unique.append(part)
    return "\n\n".join(unique) if unique else None


def python_docs() -> dict[str, str]:
    """Every documentation text, by a stable key: 'topic:<name>' or 'module:<name>'."""
    from pydoc_data.topics import topics

    docs = {f"topic:{name}": clean(text) for name, text in sorted(topics.items())}
    for name in doc_module_names():
        text = module_document(name)
        if text:
            docs[f"module:{name}"] = text
    return docs


# --- generated conversations ----------------------------------------------------------------


@dataclass
class Scenario:
    """One kind of assistant: who it is, its rules, its tools, and how its chats go."""

    persona: str
    policies: list[str]
    tools: list[dict]
    exchanges: list[Callable[[random.Random], list[dict]]]  # each makes the messages of one exchange


def call(name: str, **arguments) -> str:
    """An assistant turn that calls a tool: one JSON object, as the system prompts ask."""
    return json.dumps({"tool": name, "arguments": arguments})


def result(**fields) -> str:
    """A tool message: the tool's result as JSON."""
    return json.dumps(fields)


def pick(rng: random.Random, *options: str) -> str:
    return rng.choice(options)


FIRST_NAMES = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Farah", "Goran", "Hana", "Ivan", "Jia", "Kofi",
               "Lena", "Marco", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tomas", "Uma", "Yuki"]
GREETINGS = ["Hi", "Hello", "Hey", "Good morning", "Good evening", "Hi there"]
THANKS = ["Thanks!", "Thank you, that helps.", "Great, thanks a lot.", "Perfect, thank you.", "OK, thanks."]
CLOSINGS = ["You're welcome! Is there anything else I can help with?",
            "Happy to help. Have a good day!",
            "Glad I could help. Let me know if anything else comes up.",
            "You're welcome. Take care!"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def a_date(rng: random.Random) -> str:
    """A date in the dated template's format, e.g. '07 Mar 2025'."""
    return f"{rng.randint(1, 28):02d} {rng.choice(MONTHS)} {rng.randint(2024, 2026)}"


def polite_end(rng: random.Random) -> list[dict]:
    """Half the time the user says thanks and the assistant closes."""
    if rng.random() < 0.5:
        return []
    return [{"role": "user", "content": rng.choice(THANKS)}, {"role": "assistant", "content": rng.choice(CLOSINGS)}]


# Online shop support.

SHOPS = ["Lumen Books", "Harbor & Pine", "Kettle Street Kitchenware", "Brightside Bikes", "Pebble Toys",
         "Northwind Outfitters", "Copper Lane Coffee", "Green Thumb Garden Supply"]
PRODUCTS = ["rain jacket", "hiking boots", "coffee grinder", "cast iron pan", "bike helmet", "desk lamp",
            "wool sweater", "travel mug", "chef's knife", "board game", "backpack", "water bottle",
            "bluetooth speaker", "yoga mat", "garden hose", "tea kettle"]
CARRIERS = ["UPS", "DHL", "FedEx", "Royal Mail", "DPD", "USPS"]
REASONS = ["it arrived damaged", "it is the wrong size", "I changed my mind", "it stopped working",
           "the colour is different from the photo"]


def order_id(rng: random.Random) -> str:
    return f"{rng.choice('ABCKMRW')}{rng.randint(10000, 99999)}"


def shop_where_is_order(rng: random.Random) -> list[dict]:
    oid, product, carrier = order_id(rng), rng.choice(PRODUCTS), rng.choice(CARRIERS)
    days = rng.randint(1, 6)
    status = rng.choice(["shipped", "in transit", "out for delivery"])
    user = pick(rng, f"{rng.choice(GREETINGS)}, where is my order {oid}?",
                f"My order {oid} hasn't arrived yet. Can you check on it?",
                f"Can you tell me when order {oid} will be delivered?",
                f"I ordered a {product} last week (order {oid}). Any update?")
    answer = pick(rng, f"Your order {oid} ({product}) is {status} with {carrier}. It should arrive in {days} business day{'s' * (days > 1)}.",
                  f"Good news: order {oid} is {status}. {carrier} expects to deliver your {product} within {days} business day{'s' * (days > 1)}.",
                  f"I checked order {oid}. The {product} is {status} with {carrier}, and the estimated delivery is in {days} day{'s' * (days > 1)}. You will get a tracking email from {carrier} as well.")
    return [{"role": "user", "content": user},
            {"role": "assistant", "content": call("lookup_order", order_id=oid)},
            {"role": "tool", "content": result(order_id=oid, status=status, item=product, carrier=carrier, eta_days=days)},
            {"role": "assistant", "content": answer}, *polite_end(rng)]


def shop_return(rng: random.Random) -> list[dict]:
    oid, product, reason = order_id(rng), rng.choice(PRODUCTS), rng.choice(REASONS)
    days_ago = rng.choice([3, 8, 12, 20, 26, 41, 55])
    user = pick(rng, f"I want to return the {product} from order {oid} because {reason}.",
                f"{rng.choice(GREETINGS)}. Can I send back my {product}? Order {oid}, {reason}.",
                f"How do I return order {oid}? The {product} {reason.replace('it ', '', 1) if reason.startswith('it ') else 'is not right'}.")
    messages = [{"role": "user", "content": user},
                {"role": "assistant", "content": call("lookup_order", order_id=oid)},
                {"role": "tool", "content": result(order_id=oid, status="delivered", item=product, delivered_days_ago=days_ago)}]
    if days_ago > 30:
        messages.append({"role": "assistant", "content": pick(
            rng, f"I'm sorry, but order {oid} was delivered {days_ago} days ago, and returns are accepted within 30 days of delivery. If the {product} is faulty, it may still be covered by the warranty; I can connect you with our warranty team.",
            f"Order {oid} arrived {days_ago} days ago, which is outside our 30-day return window, so I can't start a return. If it is defective, the manufacturer's warranty may help, and I can pass you to a human agent.")})
    else:
        rma = f"R{rng.randint(100000, 999999)}"
        messages += [{"role": "assistant", "content": call("start_return", order_id=oid, reason=reason)},
                     {"role": "tool", "content": result(return_id=rma, label_sent=True, refund_method="original payment")},
                     {"role": "assistant", "content": pick(
                         rng, f"Done. I started return {rma} for your {product}. A prepaid shipping label is on its way to your email. Once we receive the item, the refund goes back to your original payment method within 5 business days.",
                         f"I've opened return {rma}. Print the label we just emailed you, pack the {product}, and drop it at any {rng.choice(CARRIERS)} point. You'll be refunded to your original payment method after we receive it.")}]
    return messages + polite_end(rng)


def shop_stock(rng: random.Random) -> list[dict]:
    product = rng.choice(PRODUCTS)
    sku = f"SKU-{rng.randint(1000, 9999)}"
    count = rng.choice([0, 0, 2, 5, 14, 37])
    user = pick(rng, f"Do you have the {product} ({sku}) in stock?", f"Is {sku}, the {product}, available right now?",
                f"{rng.choice(GREETINGS)}! I'd like to buy a {product}, item {sku}. Is it in stock?")
    if count:
        answer = pick(rng, f"Yes, the {product} ({sku}) is in stock: we have {count} available. Orders placed before 2 pm ship the same day.",
                      f"It is! There are {count} of the {product} left in our warehouse.")
    else:
        answer = pick(rng, f"Sorry, the {product} ({sku}) is out of stock right now. We expect a restock in about {rng.randint(1, 4)} weeks. Would you like me to tell you how to get an email alert?",
                      f"Unfortunately {sku} is sold out at the moment. You can sign up for a restock alert on the product page.")
    return [{"role": "user", "content": user},
            {"role": "assistant", "content": call("check_stock", sku=sku)},
            {"role": "tool", "content": result(sku=sku, item=product, in_stock=count)},
            {"role": "assistant", "content": answer}, *polite_end(rng)]


def shop_policy_question(rng: random.Random) -> list[dict]:
    qa = [("How much is shipping?", "Standard shipping is free on orders over $50; below that it costs $4.95. Express shipping is $12 and arrives in 1-2 business days."),
          ("What is your return policy?", "You can return most items within 30 days of delivery for a full refund. Items must be unused and in their original packaging. Return shipping is free."),
          ("Do you ship internationally?", "Yes, we ship to most countries in Europe and North America. International orders usually arrive in 7 to 14 days, and customs fees may apply."),
          ("Can I change the address on my order?", "If the order has not shipped yet, I can update the address for you. Please send me the order number and the new address."),
          ("Can I pay with PayPal?", "Yes. We accept credit and debit cards, PayPal and gift cards. We do not store your full card number."),
          ("Can you give me a discount?", "I'm not able to create discount codes, but you can sign up for our newsletter to get 10% off your first order.")]
    question, answer = rng.choice(qa)
    return [{"role": "user", "content": f"{rng.choice(GREETINGS)}. {question}"}, {"role": "assistant", "content": answer},
            *polite_end(rng)]


def shop_scenario(rng: random.Random) -> Scenario:
    shop = rng.choice(SHOPS)
    agent = rng.choice(FIRST_NAMES)
    persona = pick(rng, f"You are {agent}, a friendly customer support assistant for {shop}, an online shop.",
                   f"You are the customer support assistant of {shop}. You help customers with orders, returns and product questions.",
                   f"You work in customer support for {shop}, an online store. Be helpful, brief and polite.")
    policies = ["Returns are accepted within 30 days of delivery. Items must be unused.",
                "Never share another customer's order details.",
                "Always look up an order with lookup_order before answering questions about it.",
                "Do not promise delivery dates that the order system does not show.",
                "Refunds go back to the original payment method within 5 business days.",
                "If the customer is upset, apologise once and focus on solving the problem.",
                "Do not offer discounts or coupons.",
                "If you cannot help, offer to hand the conversation to a human agent."]
    tools = [tool_schema("lookup_order", "Look up an order by its id and return its status, items and delivery estimate.",
                         order_id=("string", "The order id, for example A12345.")),
             tool_schema("start_return", "Start a return for a delivered order and email a prepaid label to the customer.",
                         order_id=("string", "The order id."), reason=("string", "Why the customer is returning the item.")),
             tool_schema("check_stock", "Check how many units of a product are in stock.", sku=("string", "The product SKU."))]
    return Scenario(persona, policies, tools, [shop_where_is_order, shop_return, shop_stock, shop_policy_question])


# A Python coding helper: its answers quote the standard library's own docstrings.

CODING_TASKS = [
    ("How do I reverse a list in Python?", "Use slicing or the `reverse` method:\n\n```python\nitems = [1, 2, 3]\nbackwards = items[::-1]  # a new list\nitems.reverse()          # in place\n```"),
    ("How do I read a file line by line?", "Open the file in a `with` block and loop over it:\n\n```python\nwith open(\"notes.txt\", encoding=\"utf-8\") as f:\n    for line in f:\n        print(line.rstrip())\n```\n\nThe file is closed automatically when the block ends."),
    ("How can I count how often each word appears in a text?", "`collections.Counter` does this:\n\n```python\nfrom collections import Counter\n\ncounts = Counter(text.split())\nprint(counts.most_common(3))\n```"),
    ("How do I sort a list of dictionaries by a key?", "Pass a `key` function to `sorted`:\n\n```python\npeople = [{\"name\": \"Ana\", \"age\": 31}, {\"name\": \"Ben\", \"age\": 25}]\nby_age = sorted(people, key=lambda p: p[\"age\"])\n```\n\n`operator.itemgetter(\"age\")` works too and is a little faster."),
    ("How do I parse JSON from a string?", "Use `json.loads`:\n\n```python\nimport json\n\ndata = json.loads('{\"id\": 7, \"tags\": [\"a\", \"b\"]}')\nprint(data[\"tags\"])\n```\n\n`json.load` reads from a file object instead."),
    ("How do I measure how long a function takes?", "For a quick measurement use `time.perf_counter`; for a careful one use `timeit`:\n\n```python\nimport timeit\n\nseconds = timeit.timeit(\"sum(range(1000))\", number=10_000)\nprint(seconds / 10_000)\n```"),
    ("How do I remove duplicates from a list but keep the order?", "A dict keeps insertion order, so:\n\n```python\nunique = list(dict.fromkeys(items))\n```"),
    ("How do I join paths so it works on every operating system?", "Use `pathlib`:\n\n```python\nfrom pathlib import Path\n\nconfig = Path.home() / \".config\" / \"app.toml\"\nprint(config.exists())\n```"),
    ("What is the difference between a list and a tuple?", "A list is mutable: you can append, remove and change items. A tuple is immutable, so it can be used as a dictionary key or a set member. Use a tuple for a fixed group of values, such as a pair of coordinates, and a list for a collection that grows."),
    ("How do I merge two dictionaries?", "Since Python 3.9 you can use the `|` operator:\n\n```python\nmerged = defaults | overrides\n```\n\nKeys in `overrides` win. `defaults.update(overrides)` changes `defaults` in place."),
    ("How do I run a shell command and get its output?", "Use `subprocess.run` with `capture_output=True`:\n\n```python\nimport subprocess\n\nresult = subprocess.run([\"ls\", \"-l\"], capture_output=True, text=True, check=True)\nprint(result.stdout)\n```"),
    ("Why does my default argument list keep growing?", "Default values are evaluated once, when the function is defined, so a mutable default is shared between calls. Use `None` instead:\n\n```python\ndef add(item, items=None):\n    if items is None:\n        items = []\n    items.append(item)\n    return items\n```"),
]


def first_paragraph(doc: str) -> str:
    """The first paragraph of a documentation entry (after its title line)."""
    body = doc.split("\n\n", 1)[-1]
    return body.split("\n\n", 1)[0].replace("\n", " ")


def coding_task(rng: random.Random) -> list[dict]:
    """A how-do-I question with a short answer and a code example."""
    question, answer = rng.choice(CODING_TASKS)
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}, *polite_end(rng)]


def coding_lookup(rng: random.Random, docs: list[tuple[str, str]]) -> list[dict]:
    """The user asks what a standard-library name does; the assistant searches the docs and explains."""
    if not docs:
        return coding_task(rng)
    title, doc = rng.choice(docs)
    name = title.split("(", 1)[0]
    summary = first_paragraph(doc)
    user = pick(rng, f"What does `{name}` do?", f"Can you explain {name}?", f"{rng.choice(GREETINGS)}, what is `{name}` for?",
                f"I found `{name}` in some code. What does it do?")
    intro = pick(rng, f"Here is what the documentation says about `{name}`:", f"`{name}` is documented like this:",
                 f"According to the Python documentation, `{title}`:")
    return [{"role": "user", "content": user},
            {"role": "assistant", "content": call("search_docs", query=name)},
            {"role": "tool", "content": result(title=title, summary=summary)},
            {"role": "assistant", "content": f"{intro} {summary}"}, *polite_end(rng)]


def coding_scenario(rng: random.Random, docs: list[tuple[str, str]]) -> Scenario:
    persona = pick(rng, "You are a helpful Python coding assistant. Answer with short explanations and small, correct code examples.",
                   "You are CodeHelper, an assistant that helps programmers write and understand Python code.",
                   "You are a patient programming tutor. You explain Python clearly to beginners.")
    policies = ["Prefer the standard library over third-party packages.",
                "Use Python 3.10 or newer in examples.",
                "Put code in fenced code blocks marked `python`.",
                "If you are not sure what a function does, call search_docs before answering.",
                "Keep answers short: one idea, one example.",
                "Never run code that deletes files or accesses the network."]
    tools = [tool_schema("search_docs", "Search the Python documentation and return the best matching entry.", query=("string", "A module, class or function name.")),
             tool_schema("run_python", "Run a short Python snippet in a sandbox and return what it prints.", code=("string", "The code to run."))]
    return Scenario(persona, policies, tools, [coding_task, lambda r: coding_lookup(r, docs)])


# A travel assistant.

CITIES = ["Lisbon", "Berlin", "Tokyo", "Montreal", "Nairobi", "Madrid", "Oslo", "Seoul", "Lima", "Vienna",
          "Istanbul", "Sydney", "Chicago", "Athens", "Prague", "Dublin"]
WEATHER = ["sunny", "partly cloudy", "rainy", "windy", "overcast", "snowy"]
AIRLINES = ["SkyBridge", "Atlantic Air", "Polar Wings", "Meridian", "Bluebird Airways"]


def travel_flights(rng: random.Random) -> list[dict]:
    origin, destination = rng.sample(CITIES, 2)
    date = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    flights = [{"airline": rng.choice(AIRLINES), "departs": f"{rng.randint(6, 21):02d}:{rng.choice(['00', '15', '30', '45'])}",
                "stops": rng.choice([0, 0, 1]), "price_eur": rng.randint(60, 900)} for _ in range(2)]
    cheap = min(flights, key=lambda f: f["price_eur"])
    user = pick(rng, f"Find me a flight from {origin} to {destination} on {date}.",
                f"{rng.choice(GREETINGS)}! I need to fly {origin} to {destination} on {date}. What are my options?",
                f"What is the cheapest flight from {origin} to {destination} on {date}?")
    stops = "nonstop" if cheap["stops"] == 0 else "with one stop"
    answer = (f"I found {len(flights)} flights from {origin} to {destination} on {date}. The cheapest is {cheap['airline']}, "
              f"departing at {cheap['departs']} {stops}, for {cheap['price_eur']} EUR. Would you like me to hold a seat?")
    return [{"role": "user", "content": user},
            {"role": "assistant", "content": call("search_flights", origin=origin, destination=destination, date=date)},
            {"role": "tool", "content": json.dumps({"flights": flights})},
            {"role": "assistant", "content": answer}, *polite_end(rng)]


def travel_weather(rng: random.Random) -> list[dict]:
    city, sky, temp = rng.choice(CITIES), rng.choice(WEATHER), rng.randint(-5, 34)
    user = pick(rng, f"What's the weather like in {city} this weekend?", f"Should I pack an umbrella for {city}?",
                f"How warm is it in {city} right now?")
    advice = {"rainy": "Pack an umbrella and waterproof shoes.", "snowy": "Bring a warm coat and boots.",
              "sunny": "Bring sunscreen and sunglasses.", "windy": "A windproof jacket will help."}.get(sky, "A light jacket should be enough.")
    return [{"role": "user", "content": user},
            {"role": "assistant", "content": call("get_weather", city=city)},
            {"role": "tool", "content": result(city=city, forecast=sky, temperature_c=temp)},
            {"role": "assistant", "content": f"The forecast for {city} is {sky}, around {temp} degrees Celsius. {advice}"},
            *polite_end(rng)]


def travel_tips(rng: random.Random) -> list[dict]:
    city = rng.choice(CITIES)
    days = rng.randint(2, 5)
    plan = "\n".join(f"Day {d}: {rng.choice(['walk the old town', 'visit the main museum', 'take a food tour', 'rent bikes along the river', 'see the market in the morning', 'take a day trip to the coast', 'relax in a park', 'go to a concert'])}."
                     for d in range(1, days + 1))
    return [{"role": "user", "content": f"I have {days} days in {city}. Can you suggest a simple plan?"},
            {"role": "assistant", "content": f"Here is a relaxed {days}-day plan for {city}:\n\n{plan}\n\nBook museums a day ahead to skip the queues."},
            *polite_end(rng)]


def travel_scenario(rng: random.Random) -> Scenario:
    persona = pick(rng, "You are Wayfarer, a travel assistant. You help users find flights, check the weather and plan trips.",
                   "You are a travel planning assistant for a booking website.",
                   "You are a concise travel assistant. You help people plan trips and compare flights.")
    policies = ["Prices are in euros unless the user asks otherwise.",
                "Always search before quoting a price; never invent flights.",
                "Do not book anything without the user's explicit confirmation.",
                "Mention visa requirements only if the user asks.",
                "Give weather in degrees Celsius."]
    tools = [tool_schema("search_flights", "Search flights between two cities on a date.", origin=("string", "Departure city."),
                         destination=("string", "Arrival city."), date=("string", "Date as YYYY-MM-DD.")),
             tool_schema("get_weather", "Get the weather forecast for a city.", city=("string", "The city name.")),
             tool_schema("book_hotel", "Book a hotel room.", city=("string", "The city."), nights=("integer", "Number of nights."))]
    return Scenario(persona, policies, tools, [travel_flights, travel_weather, travel_tips])


# An IT helpdesk.

APPS = ["email", "VPN", "laptop", "printer", "calendar", "Wi-Fi", "password manager"]


def it_ticket(rng: random.Random) -> list[dict]:
    app, ticket = rng.choice(APPS), f"INC-{rng.randint(1000, 9999)}"
    problem = pick(rng, f"My {app} is not working.", f"I can't connect to the {app} since this morning.", f"The {app} keeps asking for my password.")
    fix = {"VPN": "Disconnect, quit the VPN app, and sign in again. If it still fails, restart your laptop.",
           "printer": "Check that the printer is on the office network and remove and re-add it in your settings.",
           "Wi-Fi": "Forget the network, reconnect, and sign in with your company account."}.get(app, "Sign out, close the app, and sign in again. Restarting clears most cached credentials.")
    return [{"role": "user", "content": f"{rng.choice(GREETINGS)}. {problem}"},
            {"role": "assistant", "content": f"Sorry about that. First, try this: {fix} Did that help?"},
            {"role": "user", "content": pick(rng, "No, still broken.", "It didn't help.", "Same problem.")},
            {"role": "assistant", "content": call("create_ticket", summary=f"{app} problem", priority=rng.choice(["low", "normal", "high"]))},
            {"role": "tool", "content": result(ticket_id=ticket, queue="service desk", response_hours=rng.choice([2, 4, 8]))},
            {"role": "assistant", "content": f"I've opened ticket {ticket} with the service desk. Someone will contact you soon, and you can reply to the confirmation email to add details."},
            *polite_end(rng)]


def it_password(rng: random.Random) -> list[dict]:
    user = rng.choice(FIRST_NAMES).lower()
    return [{"role": "user", "content": pick(rng, "I forgot my password.", "I'm locked out of my account.", "How do I reset my password?")},
            {"role": "assistant", "content": "I can help with that. What is your username?"},
            {"role": "user", "content": user},
            {"role": "assistant", "content": call("reset_password", username=user)},
            {"role": "tool", "content": result(username=user, reset_link_sent=True, expires_minutes=30)},
            {"role": "assistant", "content": "I've sent a reset link to the email on file for your account. It expires in 30 minutes. Choose a password of at least 12 characters that you do not use anywhere else."},
            *polite_end(rng)]


def it_scenario(rng: random.Random) -> Scenario:
    company = rng.choice(["Acme Corp", "Bluewave Labs", "Orchid Health", "Summit Logistics"])
    persona = f"You are the IT helpdesk assistant for {company}. You help employees fix common problems with their devices and accounts."
    policies = ["Never ask for a user's password.", "Try one simple fix before opening a ticket.",
                "Open a ticket with create_ticket when a problem is not solved.", "Use plain language; avoid jargon."]
    tools = [tool_schema("reset_password", "Send a password reset link to the user's email.", username=("string", "The user's login name.")),
             tool_schema("create_ticket", "Open a ticket for the service desk.", summary=("string", "A short summary."),
                         priority=("string", "low, normal or high."))]
    return Scenario(persona, policies, tools, [it_ticket, it_password])


def system_prompt(rng: random.Random, scenario: Scenario) -> str:
    """Persona, a shuffled subset of the policies, and the tools as JSON schemas."""
    policies = rng.sample(scenario.policies, k=rng.randint(max(2, len(scenario.policies) - 3), len(scenario.policies)))
    lines = [scenario.persona, "", "# Policies", *(f"- {p}" for p in policies), "", "# Tools",
             'To call a tool, reply with only a JSON object: {"tool": <name>, "arguments": <object>}. '
             "The result comes back in a tool message.", "", json.dumps(scenario.tools, indent=2)]
    return "\n".join(lines)


def conversation(rng: random.Random, docs: list[tuple[str, str]]) -> str:
    """One rendered chat: a system prompt, one or two exchanges, sometimes with a date stamp."""
    make = rng.choice([shop_scenario, shop_scenario, lambda r: coding_scenario(r, docs), travel_scenario, it_scenario])
    scenario = make(rng)
    messages = [{"role": "system", "content": system_prompt(rng, scenario)}]
    for _ in range(rng.choice([1, 1, 2])):
        messages += rng.choice(scenario.exchanges)(rng)
    date = a_date(rng) if rng.random() < 0.3 else None
    return render_chat(messages, date=date)


# --- the corpus -----------------------------------------------------------------------------


def doc_entries(docs: dict[str, str]) -> list[tuple[str, str]]:
    """(title, text) of every documented name, for the coding assistant to quote."""
    entries = []
    for key, text in docs.items():
        if key.startswith("module:"):
            for part in re.split(r"\n\n(?=[\w.]+\.\w+\(|[\w.]+\.[A-Z]\w*\b)", text):
                title, _, body = part.partition("\n\n")
                if body and "(" in title and len(title) < 100:
                    entries.append((title, part))
    return entries


def build(seed: int = 0, conversations: int = 12000, doc_repeats: int = 3, heldout_docs_chars: int = 75_000,
          heldout_chats_chars: int = 75_000) -> tuple[str, str]:
    """Train and held-out text, each document starting with <|endoftext|>.

    Python's docs are a few MB at most, so the train split holds each of them `doc_repeats`
    times: that sets how much of training is prose rather than chat.
    """
    rng = random.Random(seed)
    docs = python_docs()
    keys = sorted(docs)
    rng.shuffle(keys)
    heldout_keys, size = [], 0
    for key in keys:  # whole documents go to held-out until it has its share
        if size < heldout_docs_chars and len(docs[key]) < heldout_docs_chars // 3:
            heldout_keys.append(key)
            size += len(docs[key])
    train_docs = [BOS + docs[k] + "\n" for k in keys if k not in heldout_keys]
    heldout_docs = [BOS + docs[k] + "\n" for k in heldout_keys]
    entries = doc_entries({k: docs[k] for k in keys if k not in heldout_keys})
    train_chats = [conversation(rng, entries) for _ in range(conversations)]
    heldout_rng = random.Random(f"heldout-{seed}")  # its own stream, so train size does not change it
    heldout_entries = doc_entries({k: docs[k] for k in heldout_keys})
    heldout_chats, size = [], 0
    while size < heldout_chats_chars:
        heldout_chats.append(conversation(heldout_rng, heldout_entries))
        size += len(heldout_chats[-1])
    # Interleave the two kinds so any window of the stream holds a mix.
    train = train_docs * doc_repeats + train_chats
    rng.shuffle(train)
    heldout = heldout_docs + heldout_chats
    heldout_rng.shuffle(heldout)
    return "".join(train), "".join(heldout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for train.txt and heldout.txt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--conversations", type=int, default=12000, help="generated chats in the train split")
    parser.add_argument("--doc-repeats", type=int, default=3, help="copies of each Python doc in the train split")
    args = parser.parse_args()
    train, heldout = build(args.seed, args.conversations, args.doc_repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train.txt").write_text(train, encoding="utf-8")
    (args.out / "heldout.txt").write_text(heldout, encoding="utf-8")
    print(f"train: {len(train):,} characters, heldout: {len(heldout):,} characters -> {args.out}")


if __name__ == "__main__":
    main()
