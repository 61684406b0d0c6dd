"""The verification stage: after the threshold, what two queries must agree on before one's answer serves the other.

An embedding model places "refund for order 1234" right beside "refund for order 1243", and "enable
notifications" beside "disable notifications": the sentences share almost every word, so their vectors
point the same way. A cosine threshold cannot tell them apart without also refusing most paraphrases.
These rules look at the words that differ instead. Each returns the reason two queries ask different
things, or None when it finds none; `disagreement` runs them all.

The word lists are general English and shop vocabulary, written before the workbook's labelled pairs
were: lesson 8 measures how well they carry over to pairs nobody tuned them on.
"""

from __future__ import annotations

import difflib
import re
from typing import Callable

Rule = Callable[[list[str], list[str]], "str | None"]

WORD = re.compile(r"\d+(?:[.,:/]\d+)*|[a-z0-9]+(?:'[a-z]+)?")  # a number keeps its separators: 1,250 or 10:30
NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
IDENTIFIER = re.compile(r"^(?=.*\d)[a-z0-9]{4,}$")  # an order number, a code: "c30561", "48213"
NUMBER_WORDS = {w: str(i) for i, w in enumerate(  # not "one": "where do I get one" counts nothing
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split()) if w != "one"} | {"thirty": "30", "fifty": "50", "hundred": "100"}
NEGATIONS = {"not", "no", "never", "without", "cannot", "none", "nothing", "nor", "neither", "dont", "doesnt", "didnt",
             "cant", "isnt", "wasnt", "arent", "werent", "wont", "havent", "hasnt", "shouldnt", "couldnt", "wouldnt"}
# Phrasal verbs joined into one word first, so "log in" and "log out" become a pair of opposites.
PHRASES = [(re.compile(rf"\b(?:log|sign)(?:ged|ging|ed|ing|s)? ?-?{part}\b"), word) for part, word in (
    ("in", "login"), ("on", "login"), ("out", "logout"), ("off", "logout"), ("up", "subscribe"))] + [
    (re.compile(rf"\b(?:turn|switch)(?:ed|ing|s|es)?(?: (?:it|them|this|that))? {part}\b"), verb)
    for part, verb in (("on", "enable"), ("off", "disable"))] + [
    (re.compile(r"\bopt(?:ed|ing|s)? ?-?in\b"), "subscribe"),
    (re.compile(r"\b(?:opt(?:ed|ing|s)? ?-?out|(?:get|take) (?:me )?off)\b"), "unsubscribe")]
OPPOSITES = [tuple(pair.split("/")) for pair in (
    "enable/disable activate/deactivate on/off add/remove add/delete upgrade/downgrade increase/decrease "
    "increase/reduce raise/lower higher/lower more/less more/fewer max/min maximum/minimum import/export "
    "upload/download before/after start/stop start/end begin/end open/close show/hide allow/block allow/deny "
    "accept/reject accept/decline approve/reject include/exclude buy/sell login/logout send/receive sent/received "
    "incoming/outgoing inbound/outbound encrypt/decrypt pause/resume push/pull join/leave credit/debit "
    "deposit/withdraw expand/collapse ascending/descending first/last earliest/latest oldest/newest old/new "
    "public/private true/false success/failure attach/detach save/discard lock/unlock subscribe/unsubscribe "
    "follow/unfollow connect/disconnect mute/unmute pin/unpin archive/unarchive block/unblock merge/split "
    "install/uninstall cheapest/expensive fast/slow faster/slower heavy/light heaviest/lightest long/short "
    "longer/shorter big/small bigger/smaller larger/smaller weekday/weekend day/night morning/evening "
    "domestic/international inside/outside above/below over/under up/down").split()]
NEGATING_PREFIXES = ("un", "dis", "de", "in", "non", "re")  # "re": generate a key vs regenerate it
# Slot values: a query about one of them is not answered by an answer about another of the same kind.
SLOT_WORDS = set((
    # countries and regions
    "usa america canada mexico uk britain england ireland france germany spain italy portugal netherlands "
    "belgium switzerland austria sweden norway denmark finland poland japan china korea india australia zealand "
    "brazil argentina chile colombia peru europe asia africa alaska hawaii puerto rico "
    # payment methods and card brands
    "visa mastercard amex paypal venmo klarna afterpay affirm apple google bitcoin crypto cash cheque invoice "
    # carriers, browsers, platforms, languages, tools
    "ups fedex usps dhl chrome firefox safari edge windows macos mac linux ios android iphone ipad python "
    "javascript typescript node java kotlin swift ruby rust php golang csharp c# cpp sql graphql rest grpc json xml "
    "yaml csv pdf excel docker kubernetes git github gitlab npm pip conda react vue angular django flask "
    "postgres mysql sqlite redis aws azure gcp "
    # sizes, colours, days, months, currencies
    "xs xl xxl xxxl small medium large petite tall wide narrow red orange yellow green blue navy purple pink black "
    "white grey gray brown tan olive khaki silver gold monday tuesday wednesday thursday friday saturday sunday "
    "january february march april june july august september october november december usd eur euro euros "
    "dollar dollars pound pounds gbp cad peso pesos yen").split())
CLOSE_WORDING = 0.5  # negation_differs: the share of content words two queries must share to count as close
MAX_SWAPPED = 3  # words_swapped: the most content words a swap may replace on either side
TYPO = 0.8  # words_swapped: spellings at least this alike (difflib's ratio) are one word mistyped, not a swap
STOPWORDS = set((
    "a an the i me my mine we our you your it its this that these those is are was were be been am do does did "
    "to of in on at for from with by about as into can could would should will shall may might must how what "
    "when where why which who whom there here please hi hello hey thanks thank just so and or but if any some "
    "get got have has had need want like help know tell me us via through using"
    ).split())


def words(text: str) -> list[str]:
    """Lower-case words, phrasal verbs joined ("log in" -> "login"), number words and numbers as plain digits
    ("two" -> "2", "1,250" -> "1250"), apostrophes dropped (typographic ones too: "can’t" is "can't")."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    for pattern, joined in PHRASES:
        text = pattern.sub(joined, text)
    out = []
    for word in WORD.findall(text):
        word = NUMBER_WORDS.get(word, word.replace(",", "") if word[0].isdigit() else word)
        out.append("not" if word.endswith("n't") else word.replace("'", ""))
    return out


def stem(word: str) -> str:
    """A rough stem, enough to match "enabled" and "enabling" with "enable"."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


OPPOSITE_STEMS = [(stem(x), stem(y)) for x, y in OPPOSITES]


def numbers_differ(a: list[str], b: list[str]) -> str | None:
    """Order 1234 is not order 1243; 2 items are not 3 items. A small number on one side only is a detail
    ("two weeks ago"); an identifier on one side only (an order number) makes a general question specific."""
    na = sorted(n for w in a for n in NUMBER.findall(w))
    nb = sorted(n for w in b for n in NUMBER.findall(w))
    if na and nb and na != nb:
        return f"numbers differ: {', '.join(na)} vs {', '.join(nb)}"
    ia, ib = {w for w in a if IDENTIFIER.match(w)}, {w for w in b if IDENTIFIER.match(w)}
    if ia != ib:
        return f"identifiers differ: {', '.join(sorted(ia)) or 'none'} vs {', '.join(sorted(ib)) or 'none'}"
    return None


def overlap(a: list[str], b: list[str]) -> float:
    """The share of the shorter query's content words (stemmed) that the other one uses too."""
    ca, cb = {stem(w) for w in a if w not in STOPWORDS}, {stem(w) for w in b if w not in STOPWORDS}
    return len(ca & cb) / max(min(len(ca), len(cb)), 1)


def negation_differs(a: list[str], b: list[str]) -> str | None:
    """"Items I can return" is not "items I can't return". Only in close wording: a paraphrase in other words
    may well say "can't log in" where the question said "reset my password"."""
    na, nb = sum(w in NEGATIONS for w in a), sum(w in NEGATIONS for w in b)
    if na != nb and overlap(a, b) >= CLOSE_WORDING:
        return f"negations differ: {na} vs {nb} in close wording"
    return None


def opposites(a: list[str], b: list[str]) -> str | None:
    """Enable is not disable, upload is not download, lock is not unlock."""
    sa, sb = {stem(w): w for w in a}, {stem(w): w for w in b}
    only_a, only_b = sa.keys() - sb.keys(), sb.keys() - sa.keys()
    pairs = [(x, y) for x, y in OPPOSITE_STEMS if x in only_a and y in only_b]
    pairs += [(y, x) for x, y in OPPOSITE_STEMS if y in only_a and x in only_b]
    pairs += [(x, y) for x in only_a for y in only_b if len(min(x, y, key=len)) >= 3 and any(
        max(x, y, key=len) == prefix + min(x, y, key=len) for prefix in NEGATING_PREFIXES)]
    return f"opposites: {sa[pairs[0][0]]!r} vs {sb[pairs[0][1]]!r}" if pairs else None


def slots_differ(a: list[str], b: list[str]) -> str | None:
    """Canada is not Mexico, PayPal is not Visa; and "shipping to Canada" is not shipping in general."""
    ea, eb = SLOT_WORDS & set(a), SLOT_WORDS & set(b)
    return None if ea == eb else f"slot values differ: {', '.join(sorted(ea)) or 'none'} vs {', '.join(sorted(eb)) or 'none'}"


def words_swapped(a: list[str], b: list[str]) -> str | None:
    """The same sentence with one or a few content words swapped for others: "delete my account" vs
    "delete a saved address", "a stove for backpacking" vs "a stove for car camping". A typo is not a swap."""
    wa, wb = [w for w in a if w not in STOPWORDS], [w for w in b if w not in STOPWORDS]
    ca, cb = [stem(w) for w in wa], [stem(w) for w in wb]
    ops = difflib.SequenceMatcher(a=ca, b=cb, autojunk=False).get_opcodes()
    changed = [op for op in ops if op[0] != "equal"]
    kept = sum(i2 - i1 for tag, i1, i2, _, _ in ops if tag == "equal")
    if len(changed) != 1 or changed[0][0] != "replace" or kept == 0:
        return None
    _, i1, i2, j1, j2 = changed[0]
    x, y = " ".join(wa[i1:i2]), " ".join(wb[j1:j2])
    if max(i2 - i1, j2 - j1) > MAX_SWAPPED or difflib.SequenceMatcher(a=x, b=y).ratio() >= TYPO:
        return None
    return f"words swapped: {x!r} vs {y!r}"


RULES: dict[str, Rule] = {
    "numbers": numbers_differ, "negation": negation_differs, "opposites": opposites, "slots": slots_differ,
    "words swapped": words_swapped,
}


def disagreement(incoming: str, cached: str, rules: dict[str, Rule] | None = None) -> str | None:
    """Why `incoming` asks something other than `cached` (the first rule that objects), or None."""
    a, b = words(incoming), words(cached)
    for rule in (RULES if rules is None else rules).values():
        reason = rule(a, b)
        if reason:
            return reason
    return None
