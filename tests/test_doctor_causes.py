"""The cache doctor's causes: each crafted pair gets the cause an engineer would name, and not the tempting one."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from workbook.doctor.causes import (ALL_CAUSES, CAUSES, CHECKS, HEALTHY, Cause, classify, find_divergence, span_around,
                                   tool_names)
from workbook.doctor.parts import Part
from workbook.errors import WorkbookError

SYSTEM = ("You are the support assistant of Cobble & Chain, a bicycle rental shop in Ghent. "
          "Answer briefly and politely.\n{extra}\nFollow the rental terms below.")
QUESTION = "Hi! Can I still cancel booking B-2291 for Saturday?"
TOOLS = [
    {"name": "check_booking", "description": "Look up a booking by its id.",
     "input_schema": {"type": "object", "properties": {"booking_id": {"type": "string"}}}},
    {"name": "extend_rental", "description": "Add days to a running rental.",
     "input_schema": {"type": "object", "properties": {"days": {"type": "integer"}}}},
]
CANCEL = {"name": "cancel_booking", "description": "Cancel a booking.", "input_schema": {"type": "object"}}


def request(extra="", *messages, tools=TOOLS, marks=(), sort_keys=True):
    """A rendered request: tool JSON, a system prompt with `extra` in it, then user/assistant messages in turn;
    `marks` are the indices of parts that carry a cache_control breakpoint."""
    parts = [Part("tools", json.dumps(tools, sort_keys=sort_keys, indent=1)),
             Part("system", SYSTEM.format(extra=extra))]
    parts += [Part("message", text, role="user" if i % 2 == 0 else "assistant") for i, text in enumerate(messages)]
    return [Part(p.kind, p.text, p.role, "ephemeral") if i in marks else p for i, p in enumerate(parts)]


# ----- each cause, on a realistic pair ------------------------------------------------------------------------------

@pytest.mark.parametrize("old, new", [
    ("Today is 14 Mar 2026.", "Today is 15 Mar 2026."),
    ("Today is Saturday, 14 March 2026.", "Today is Sunday, 15 March 2026."),
    ("Now: 2026-03-14T09:00:00Z.", "Now: 2026-03-15T09:00:47Z."),
    ("It is March 14, 2026.", "It is March 15, 2026."),
    ("Date 14/03/2026, be kind.", "Date 15/03/2026, be kind."),
    ("Local time 09:00:47 in Ghent.", "Local time 09:01:02 in Ghent."),
    ("Current time: 1773480047", "Current time: 1773480112"),  # a labelled line: the clock's, though all digits
])
def test_a_changed_date_or_time_is_datetime(old, new):
    cause = classify(request(old, QUESTION), request(new, QUESTION))
    assert cause.name == "datetime"
    assert cause.detail.startswith("the system prompt: ")


def test_datetime_detail_quotes_the_whole_dates():
    cause = classify(request("Today is 14 Mar 2026.", QUESTION), request("Today is 15 Mar 2026.", QUESTION))
    assert cause.detail == "the system prompt: '14 Mar 2026' became '15 Mar 2026'"


@pytest.mark.parametrize("old, new, quoted", [
    ("Request id: req-8812.", "Request id: req-8813.", "'req-8812' became 'req-8813'"),
    ("Step 9 of 12.", "Step 10 of 12.", "'9' became '10'"),
    ("Step 19 of 30.", "Step 1 of 30.", "'19' became '1'"),
    ("Day pass: $4.99 today.", "Day pass: $5.49 today.", "'$4.99' became '$5.49'"),
    ("Trace a3f9c2e1 attached.", "Trace b7e1d0f4 attached.", "'a3f9c2e1' became 'b7e1d0f4'"),
])
def test_a_per_request_number_is_number(old, new, quoted):
    cause = classify(request(old, QUESTION), request(new, QUESTION))
    assert cause.name == "number"
    assert cause.detail == f"the system prompt: {quoted}"


def test_tool_json_with_keys_reordered_is_json_key_order():
    cause = classify(request("", QUESTION), request("", QUESTION, sort_keys=False))
    assert cause.name == "json_key_order"
    assert "keys in another order" in cause.detail
    assert "sort_keys=True" in cause.rule


def test_tool_json_with_other_spacing_is_json_key_order():
    before = request("", QUESTION)
    after = [Part("tools", json.dumps(TOOLS, sort_keys=True))] + before[1:]
    cause = classify(before, after)
    assert cause.name == "json_key_order"
    assert "whitespace" in cause.detail


def test_json_embedded_in_the_system_prompt_with_keys_reordered_is_json_key_order():
    cause = classify(request('Customer: {"tier": "gold", "since": 2021}', QUESTION),
                     request('Customer: {"since": 2021, "tier": "gold"}', QUESTION))
    assert cause.name == "json_key_order"
    assert cause.detail == ("""the system prompt: 'Customer: {"tier": "gold", "sinc' became """
                            """'Customer: {"since": 2021, "tier"' (same JSON value, keys in another order)""")


def test_json_spacing_right_after_the_opening_brace_is_json_key_order():
    cause = classify(request('Customer: {"tier":"gold"}', QUESTION), request('Customer: { "tier": "gold" }', QUESTION))
    assert cause.name == "json_key_order"


def test_a_tool_added_is_tool_list():
    cause = classify(request("", QUESTION), request("", QUESTION, tools=TOOLS + [CANCEL]))
    assert cause.name == "tool_list"
    assert cause.detail.endswith("added 'cancel_booking'")


def test_tools_reordered_is_tool_list():
    cause = classify(request("", QUESTION), request("", QUESTION, tools=TOOLS[::-1]))
    assert cause.name == "tool_list"
    assert cause.detail == ("tools ['check_booking', 'extend_rental'] became ['extend_rental', 'check_booking']: "
                            "same tools, another order")


def test_openai_shaped_tools_removed_is_tool_list():
    openai = [{"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}} for t in TOOLS]
    cause = classify(request("", QUESTION, tools=openai), request("", QUESTION, tools=openai[:1]))
    assert cause.name == "tool_list"
    assert cause.detail.endswith("removed 'extend_rental'")


def test_a_trailing_space_on_the_system_prompt_is_whitespace():
    before = request("", QUESTION)
    after = before[:1] + [Part("system", before[1].text + " ")] + before[2:]
    cause = classify(before, after)
    assert cause.name == "whitespace"
    assert cause.detail.startswith("the system prompt: ")
    assert "terms below.' became " in cause.detail and "terms below. '" in cause.detail


def test_a_doubled_newline_is_whitespace():
    cause = classify(request("Be kind.\nBe brief.", QUESTION), request("Be kind.\n\nBe brief.", QUESTION))
    assert cause.name == "whitespace"


def test_a_name_in_the_system_prompt_is_user_text():
    cause = classify(request("You are talking to Ana.", "Hi, I'm Ana. " + QUESTION),
                     request("You are talking to Ben.", "Hi, I'm Ben. My front tyre is flat."))
    assert cause.name == "user_text"
    assert cause.detail == "the system prompt: 'Ana' became 'Ben'"
    assert "'Ben', which the user's message also contains" in cause.rule


def test_a_capitalised_name_alone_is_user_text():
    cause = classify(request("You are talking to Ana Silva.", QUESTION),
                     request("You are talking to Ben Ode.", QUESTION))
    assert cause.name == "user_text"
    assert cause.detail == "the system prompt: 'Ana Silva' became 'Ben Ode'"


def test_a_lowercase_preference_the_user_wrote_is_user_text():
    cause = classify(request("Reply in english.", "Please answer in english."),
                     request("Reply in french.", "Please answer in french."))
    assert cause.name == "user_text"


def test_a_moved_breakpoint_is_breakpoint_moved():
    cause = classify(request("", QUESTION, marks=(1, 2)), request("", QUESTION, marks=(0, 2)))
    assert cause.name == "breakpoint_moved"
    assert cause.detail == ("breakpoints on the system prompt, message 1 (user) "
                            "became the tool list, message 1 (user)")


def test_a_changed_breakpoint_setting_is_spelled_out():
    before = request("", QUESTION, marks=(1,))
    after = before[:1] + [Part("system", before[1].text, cache_control="1h")] + before[2:]
    cause = classify(before, after)
    assert cause.name == "breakpoint_moved"
    assert cause.detail == "breakpoints on the system prompt (ephemeral) became the system prompt (1h)"


def test_a_changing_date_outranks_the_seam_it_cuts():
    before, after = request("Today is 14 Mar 2026.", QUESTION), request("Today is 15 Mar 2026.", QUESTION)
    assert classify(before, after, seam=True).name == "datetime"  # the date is what to fix
    assert classify(before, after).name == "datetime"


def test_seam_names_a_cut_when_no_value_changed():
    before, after = request("Answer briefly and politely.", QUESTION), request("Answer briefly and kindly.", QUESTION)
    cause = classify(before, after, seam=True)
    assert cause.name == "seam"
    assert "'Answer briefly and ' became" not in cause.detail  # the quoted text starts at the differing character
    assert "'politely." in cause.detail and "'kindly." in cause.detail
    assert classify(before, after).name == "content"  # without the cut, it is an edit


def test_a_new_last_user_message_is_a_new_turn_and_not_a_bug():
    cause = classify(request("", QUESTION), request("", "My front tyre is flat. What should I do?"))
    assert cause.name == "new_turn"
    assert "Not a cache bug" in cause.rule
    assert "'Hi! Can I still canc' became 'My front tyre is fla'" in cause.detail


def test_a_growing_conversation_with_a_sliding_breakpoint_is_a_new_turn():
    before = request("", QUESTION, marks=(1, 2))
    after = request("", QUESTION, "Yes, until Friday 12:00.", "Great, please cancel it.", marks=(1, 4))
    cause = classify(before, after)
    assert cause.name == "new_turn"
    assert "continues where the earlier one ended" in cause.rule
    assert "message 2 (assistant) goes on with 'Yes, until Friday" in cause.detail


def test_a_later_request_inside_the_earlier_one_broke_nothing():
    cause = classify(request("", QUESTION, "Yes, until Friday."), request("", QUESTION))
    assert cause.name == "new_turn"
    assert "nothing broke" in cause.rule


def test_an_edited_system_prompt_is_content_that_says_so():
    cause = classify(request("Answer briefly.", QUESTION), request("Answer in detail, with examples.", QUESTION))
    assert cause.name == "content"
    assert "the system prompt was edited" in cause.rule
    assert cause.detail == ("the system prompt: 'politely.\\nAnswer briefly.\\nFollow the ' "
                            "became 'politely.\\nAnswer in detail, with exam'")


# ----- the tempting cause that must not be named --------------------------------------------------------------------

def test_a_number_in_a_new_user_question_is_a_new_turn_not_number():
    cause = classify(request("", "Where is order 8812?"), request("", "Where is order 8813?"))
    assert cause.name == "new_turn"


def test_a_date_in_a_new_user_question_is_a_new_turn_not_datetime():
    cause = classify(request("", "Is the shop open on 14 Mar 2026?"), request("", "Is the shop open on 15 Mar 2026?"))
    assert cause.name == "new_turn"


def test_a_year_in_an_edited_sentence_is_content_not_a_date_or_number():
    cause = classify(request("We have rented bikes since 2019 in Ghent.", QUESTION),
                     request("We have rented bikes since 2026 after the merger.", QUESTION))
    assert cause.name == "content"


def test_an_edited_tool_description_is_content_not_json_key_order():
    edited = [dict(TOOLS[0], description="Find a booking by its id or the customer's email."), TOOLS[1]]
    cause = classify(request("", QUESTION), request("", QUESTION, tools=edited))
    assert cause.name == "content"
    assert "the tool list was edited" in cause.rule


def test_a_date_inside_json_whose_values_differ_is_datetime_not_json_key_order():
    cause = classify(request('Context: {"now": "2026-03-14T09:00:00Z", "shop": "Ghent"}', QUESTION),
                     request('Context: {"now": "2026-03-15T09:00:00Z", "shop": "Ghent"}', QUESTION))
    assert cause.name == "datetime"


def test_true_is_not_the_same_json_as_one():
    cause = classify(request('Flags: {"strict": 1}', QUESTION), request('Flags: {"strict": true}', QUESTION))
    assert cause.name != "json_key_order"


def test_a_lowercase_word_edit_the_user_did_not_write_is_not_user_text():
    cause = classify(request("Be very polite.", QUESTION), request("Be rather polite.", QUESTION))
    assert cause.name == "content"


def test_whitespace_followed_by_other_words_is_not_whitespace():
    cause = classify(request("Be kind. Always.", QUESTION), request("Be kind.\nNever.", QUESTION))
    assert cause.name == "content"


def test_a_name_in_a_user_message_is_not_user_text():
    cause = classify(request("", "I'm Ana.", "Hello Ana!", "Cancel it."),
                     request("", "I'm Ben.", "Hello Ben!", "Cancel it."))
    assert cause.name == "new_turn"  # another conversation: message 1 is the user's own text, not a static part
    assert "Another conversation" in cause.rule


def test_text_changes_win_over_a_breakpoint_move():
    cause = classify(request("Today is 14 Mar 2026.", QUESTION, marks=(1,)),
                     request("Today is 15 Mar 2026.", QUESTION, marks=(0,)))
    assert cause.name == "datetime"


# ----- history rewritten, and names that are code ---------------------------------------------------------------

def test_an_earlier_turn_edited_while_the_conversation_goes_on_is_history_rewritten():
    before = request("", QUESTION, "Yes, until Friday noon.", "Great, cancel it.")
    after = request("", QUESTION, "Yes, you can (summary).", "Great, cancel it.", "Done?")
    cause = classify(before, after)
    assert cause.name == "history_rewritten"
    assert "message 2 (assistant)" in cause.detail


def test_oldest_turns_dropped_is_history_rewritten():
    before = request("", "First question?", "First answer.", QUESTION, "Yes.")
    after = request("", QUESTION, "Yes.", "Please cancel.")  # a sliding window dropped the first exchange
    assert classify(before, after).name == "history_rewritten"


@pytest.mark.parametrize("old, new", [
    ("Context: `UserService` validates logins.", "Context: `OrderService` validates logins."),
    ("Context: class Invoice validates logins.", "Context: class Payment validates logins."),
    ("Context: Invoice.total() validates logins.", "Context: Payment.total() validates logins."),
    ("Context: from Flask validates logins.", "Context: from Django validates logins."),
    ("Context: HttpClient validates logins.", "Context: OrderRepository validates logins."),
])
def test_a_class_or_module_name_is_not_a_persons_name(old, new):
    assert classify(request(old, QUESTION), request(new, QUESTION)).name == "content"


def test_a_persons_name_beside_code_is_still_user_text():
    cause = classify(request("You help Ana Silva with `git`.", QUESTION), request("You help Ben Okafor with `git`.", QUESTION))
    assert cause.name == "user_text" and "'Ana Silva' became 'Ben Okafor'" in cause.detail


# ----- the machinery ------------------------------------------------------------------------------------------------

def test_identical_requests_are_refused():
    with pytest.raises(WorkbookError, match="identical"):
        classify(request("", QUESTION, marks=(1,)), request("", QUESTION, marks=(1,)))


def test_checks_run_in_the_documented_order_and_name_only_known_causes():
    names = [name for name, _ in CHECKS]
    assert names[1] == "new_turn"  # expected differences (a new question) are set aside before the text checks
    assert names[:1] + names[2:] == list(CAUSES) and set(HEALTHY) == {"new_turn"}


def test_a_boundary_on_one_side_belongs_to_the_part_that_ends_there():
    before = request("", QUESTION)
    after = before[:1] + [Part("system", before[1].text + " ")] + before[2:]
    div = find_divergence(before, after)
    assert (div.part_before, div.offset_before) == (1, len(before[1].text))
    assert (div.part_after, div.offset_after) == (1, len(before[1].text))


def test_span_around_and_tool_names():
    assert span_around("0123456789", 5, width=2) == "3456"
    assert span_around("0123456789", 1, width=3) == "0123"
    assert span_around("polite. Customer: Ana", 18, width=12) == "Customer: Ana"  # not 'ite. Customer: Ana'
    assert span_around("be polite. Customer: Ana", 21, width=18) == "polite. Customer: Ana"  # a whole first word stays
    assert tool_names(json.dumps(TOOLS)) == ["check_booking", "extend_rental"]
    assert tool_names('{"name": "x"}') is None and tool_names("not json") is None


@settings(max_examples=200, deadline=None)
@given(st.text("ab 1\n{}:\"", max_size=30), st.text("ab 1\n{}:\"", max_size=30))
def test_any_differing_pair_gets_a_known_cause(a, b):
    before, after = [Part("system", "Be kind. " + a)], [Part("system", "Be kind. " + b)]
    if a == b:
        with pytest.raises(WorkbookError):
            classify(before, after)
    else:
        cause = classify(before, after)
        assert isinstance(cause, Cause) and cause.name in ALL_CAUSES and cause.rule and cause.detail
