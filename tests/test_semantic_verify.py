"""The verification stage (workbook/semantic/verify.py) on hand-written queries, none taken from data/semantic.

Each rule must refuse the near miss it was written for and let typical paraphrases through; each refusal
says which words differ. The rules are run one at a time on `words()` output, and together via `disagreement`.
"""

import pytest

from workbook.semantic import disagreement
from workbook.semantic.verify import (RULES, negation_differs, numbers_differ, opposites, slots_differ, stem, words,
                                      words_swapped)


def rule(fn, incoming, cached):
    return fn(words(incoming), words(cached))


# --- words() ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("Where's My ORDER?!", ["wheres", "my", "order"]),  # lower case, punctuation gone, apostrophe dropped
    ("I can't log in", ["i", "not", "login"]),  # n't -> not, phrasal verb joined
    ("I signed in", ["i", "login"]),  # sign and log are one verb
    ("logged out twice", ["logout", "twice"]),
    ("signing out now", ["logout", "now"]),
    ("please turn it off", ["please", "disable"]),
    ("switching them on", ["enable"]),
    ("two boots and twenty socks", ["2", "boots", "and", "20", "socks"]),  # number words become digits
    ("where do I get one", ["where", "do", "i", "get", "one"]),  # but "one" stays a word
    ("order 1,250 at 3:30", ["order", "1250", "at", "3:30"]),  # a number keeps its separators, not its commas
    ("I can’t log on", ["i", "not", "login"]),  # a typographic apostrophe is an apostrophe; "log on" is "log in"
])
def test_words_normalises_text(text, expected):
    """words() lower-cases, joins phrasal verbs, maps number words (except "one") to digits, turns n't into not,
    and reads 1,250 as 1250."""
    assert words(text) == expected


def test_stem_matches_inflections():
    """The rough stem folds enabled/enabling/enables into enable's stem, and leaves short words alone."""
    assert stem("enabled") == stem("enabling") == stem("enables") == stem("enable")
    assert stem("is") == "is" and stem("bus") == "bus"


# --- numbers -----------------------------------------------------------------------------------------------

def test_numbers_on_both_sides_that_differ_are_refused():
    """Order 1234 is not order 1243; "two" counts as the number 2."""
    reason = rule(numbers_differ, "refund for order 1234", "refund for order 1243")
    assert reason and "1234" in reason and "1243" in reason
    assert rule(numbers_differ, "can I return two jackets", "can I return 3 jackets")


def test_the_same_numbers_or_a_small_number_on_one_side_pass():
    """Same numbers (in any order, or as words) agree; a small number on one side only is a detail, not a swap."""
    assert rule(numbers_differ, "returned it two weeks ago, where is my refund", "where is my refund") is None
    assert rule(numbers_differ, "where is my refund", "still no refund after 10 days") is None
    assert rule(numbers_differ, "move 3 items to order 55", "order 55: move 3 items") is None
    assert rule(numbers_differ, "I need two tents", "I need 2 tents") is None
    assert rule(numbers_differ, "where is order 1234", "status of order 1234") is None


def test_an_identifier_on_one_side_only_is_refused():
    """An order number or code on one side only makes a general question specific; the reason names it."""
    reason = rule(numbers_differ, "where is order 1234", "where is my order")
    assert reason and "1234" in reason and "none" in reason
    reason = rule(numbers_differ, "refund for my order", "refund for order c30561")
    assert reason and "c30561" in reason


# --- negation ----------------------------------------------------------------------------------------------

def test_negation_in_close_wording_is_refused():
    """"items I can return" vs "items I can't return" share their words: the negation changes the question."""
    reason = rule(negation_differs, "which items can I return", "which items can't I return")
    assert reason and "0 vs 1" in reason
    assert rule(negation_differs, "does the jacket have a hood", "the jacket does not have a hood")


def test_negation_in_other_words_passes():
    """A paraphrase in other words may say "can't" where the question did not: not close wording, no objection."""
    assert rule(negation_differs, "I can't get into my account", "how do I reset my password") is None
    assert disagreement("I can't get into my account", "how do I reset my password") is None
    assert rule(negation_differs, "I can't sign in", "I cannot sign in") is None  # both negated once


# --- opposites ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("incoming, cached, a, b", [
    ("how do I enable notifications", "how do I disable notifications", "enable", "disable"),
    ("how can I upload a photo", "how can I download a photo", "upload", "download"),
    ("I can't log in", "I can't log out", "login", "logout"),  # phrasal verbs
    ("how do I turn it on", "how do I turn it off", "enable", "disable"),
    ("lock my account", "unlock my account", "lock", "unlock"),
    ("how do I pack the tent", "how do I unpack the tent", "pack", "unpack"),  # prefix un-, not in the list
    ("I agree to the terms", "I disagree with the terms", "agree", "disagree"),  # prefix dis-
    ("generate an API key", "regenerate an API key", "generate", "regenerate"),  # prefix re-
])
def test_opposites_are_refused_and_named(incoming, cached, a, b):
    """Opposite words (from the list, phrasal, or a negating prefix) are refused; the reason quotes both words."""
    reason = rule(opposites, incoming, cached)
    assert reason == f"opposites: {a!r} vs {b!r}"
    assert rule(opposites, cached, incoming) == f"opposites: {b!r} vs {a!r}"  # either way round
    assert disagreement(incoming, cached) is not None


def test_inflected_opposites_are_still_opposites():
    """"enabled" vs "disabling" are the same opposites after stemming."""
    assert rule(opposites, "notifications enabled", "disabling notifications")


def test_the_same_verb_in_other_forms_is_not_an_opposite():
    """Enable vs enabling, or a word on one side only, is no opposite; nor is a short word like "do" vs "undo"."""
    assert rule(opposites, "how do I enable notifications", "enabling notifications") is None
    assert rule(opposites, "how do I log in", "I want to log in to my account") is None
    assert rule(opposites, "do it", "undo it") is None  # "do" is under the three letters a prefix match needs


# --- slot values -------------------------------------------------------------------------------------------

def test_different_slot_values_are_refused():
    """Canada is not Mexico, PayPal is not Visa: the reason lists both sides' values."""
    reason = rule(slots_differ, "do you ship to Canada", "do you ship to Mexico")
    assert reason and "canada" in reason and "mexico" in reason
    reason = rule(slots_differ, "can I pay with PayPal", "can I pay with Visa")
    assert reason and "paypal" in reason and "visa" in reason


def test_a_slot_value_on_one_side_only_is_refused():
    """"shipping to Canada" is not shipping in general: one side's missing value is reported as none."""
    reason = rule(slots_differ, "how long does shipping to Canada take", "how long does shipping take")
    assert reason and "canada" in reason and "none" in reason


def test_the_same_slot_values_pass():
    """The same values, in any order or case, agree; no values on either side agree."""
    assert rule(slots_differ, "do you take PayPal or Visa", "visa and paypal accepted?") is None
    assert rule(slots_differ, "how long does shipping take", "when will my parcel arrive") is None


# --- words swapped -----------------------------------------------------------------------------------------

def test_a_swapped_content_word_is_refused_and_named():
    """The same sentence with one content word replaced asks about something else; the reason names both."""
    reason = rule(words_swapped, "how do I wash my jacket", "how do I wash my tent")
    assert reason == "words swapped: 'jacket' vs 'tent'"
    reason = rule(words_swapped, "delete my account", "delete a saved address")  # quoted as written, not stemmed
    assert reason == "words swapped: 'account' vs 'saved address'"


def test_a_typo_is_not_a_swap():
    """"retrun" is "return" mistyped (spellings at least 80% alike), so nothing is swapped."""
    assert rule(words_swapped, "how do I retrun this jacket", "how do I return this jacket") is None
    assert disagreement("how do I retrun this jacket", "how do I return this jacket") is None


def test_rewording_in_more_than_one_place_is_not_a_swap():
    """A paraphrase that reorders and adds words changes more than one run of words: no single swap."""
    assert rule(words_swapped, "How do I reset my password?", "I forgot my password, how can I reset it?") is None
    assert rule(words_swapped, "reset password", "completely different question about boots") is None  # nothing kept


def test_a_swap_of_many_words_is_a_rewording():
    """More than three content words replaced on a side is a rephrasing, not a swap."""
    assert rule(words_swapped, "return policy for boots", "return rules about worn muddy hiking boots") is None


# --- disagreement ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("incoming, cached", [
    ("How do I reset my password?", "I forgot my password, how can I reset it?"),
    ("where is order 1234", "status of order 1234"),
    ("Do you ship to Canada?", "can you ship my order to canada"),
    ("Can I return a jacket I've worn?", "can I return a worn jacket"),
    ("how do I retrun this jacket", "how do I return this jacket"),
    ("What are your opening hours?", "when are you open"),
])
def test_typical_paraphrases_pass_every_rule(incoming, cached):
    """Paraphrases raise no objection from any rule, whichever side is the cached one."""
    assert disagreement(incoming, cached) is None
    assert disagreement(cached, incoming) is None


def test_disagreement_reports_the_first_objecting_rule():
    """Rules run in order; with several objections the first one's reason is returned."""
    incoming, cached = "refund order 12 to Visa", "refund order 13 to PayPal"  # numbers and slots both differ
    assert disagreement(incoming, cached).startswith("numbers differ")
    assert disagreement(incoming, cached, rules={"slots": slots_differ}).startswith("slot values differ")
    assert list(RULES) == ["numbers", "negation", "opposites", "slots", "words swapped"]


def test_no_rules_means_no_objection():
    """disagreement(..., rules={}) turns the stage off: even an obvious near miss passes."""
    assert disagreement("refund for order 1234", "refund for order 1243", rules={}) is None
    assert disagreement("how do I enable notifications", "how do I disable notifications", rules={}) is None
    assert disagreement("refund for order 1234", "refund for order 1243") is not None


def test_a_custom_rule_sees_normalised_words():
    """A rule receives words() of the incoming query first, then of the cached one."""
    seen = []
    assert disagreement("I can't Log In", "Two Boots", rules={"spy": lambda a, b: seen.append((a, b))}) is None
    assert seen == [(["i", "not", "login"], ["2", "boots"])]


@pytest.mark.parametrize("incoming, cached", [
    ("which items can’t I return", "which items can I return"),  # the phone keyboard's apostrophe
    ("refund of $1,250", "refund of $1,520"),
])
def test_typographic_apostrophes_and_grouped_numbers_are_read(incoming, cached):
    """A curly apostrophe still negates, and a number written with a thousands comma is one number."""
    assert disagreement(incoming, cached) is not None
    assert disagreement("refund of $1,250", "refund of $1250") is None


@pytest.mark.parametrize("incoming, cached", [
    ("May I return a worn jacket?", "Can I return a worn jacket?"),
    ("How do I check my order status?", "how can I see the status of my order"),
    ("Can you send it to us?", "can you send it to me"),
])
def test_common_words_are_not_slot_values(incoming, cached):
    """"may", "check" and "us" are ordinary English here, not a month, a payment method or a country."""
    assert slots_differ(words(incoming), words(cached)) is None
