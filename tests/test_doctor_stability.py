"""assert_prefix_stable: a template with the clock on top fails, naming the key; the static-first one passes."""

import pytest

from workbook.doctor.stability import PrefixDivergence, assert_prefix_stable, prefix_divergence
from workbook.errors import WorkbookError
from workbook.tokenizer import first_divergence, load_tokenizer

POLICY = "You are the support assistant of Harbor & Pine.\nReturns are accepted within 30 days.\n"
TIMES = ["2026-03-15 09:00:00", "2026-03-15 17:45:12"]
USERS = ["Ana", "Ben", "Farah"]


def clock_on_top(now: str, user: str) -> str:
    return f"Current time: {now}\n{POLICY}{user} asks: where is my order?\n"


def static_first(now: str, user: str) -> str:
    return f"{POLICY}Current time: {now}. {user} asks: where is my order?\n"


def test_a_clock_above_the_static_text_fails_and_the_message_names_the_key_and_where():
    with pytest.raises(AssertionError) as failure:
        assert_prefix_stable(clock_on_top, {"now": TIMES, "user": USERS})
    message = str(failure.value)
    assert "'now'" in message and "'user'" not in message.split("\n")[0]
    baseline, varied = clock_on_top(TIMES[0], USERS[0]), clock_on_top(TIMES[1], USERS[0])
    tokenizer = load_tokenizer("tiny")  # the doctor's default
    token = first_divergence(tokenizer.encode(baseline), tokenizer.encode(varied))
    assert f"first different character {len('Current time: 2026-03-15 ')}, token {token}." in message
    assert "everything before the last line" in message
    assert "09:00:00" in message and "17:45:12" in message  # both snippets


def test_the_static_first_template_passes():
    assert_prefix_stable(static_first, {"now": TIMES, "user": USERS})


def test_the_key_named_is_the_one_that_moved_the_prefix():
    def name_in_policy(now: str, user: str) -> str:
        return f"You are helping {user}.\n{POLICY}Current time: {now}. Where is my order?\n"

    divergence = prefix_divergence(name_in_policy, {"now": TIMES, "user": USERS})
    assert isinstance(divergence, PrefixDivergence)
    assert (divergence.key, divergence.baseline_value, divergence.value) == ("user", "Ana", "Ben")
    assert divergence.char_at == len("You are helping ") and divergence.token_at < divergence.static_tokens


def test_keys_are_varied_one_at_a_time_from_the_first_values():
    calls = []

    def render(now: str, user: str) -> str:
        calls.append((now, user))
        return static_first(now, user)

    assert prefix_divergence(render, {"now": TIMES, "user": USERS}) is None
    assert calls == [(TIMES[0], "Ana"), (TIMES[1], "Ana"), (TIMES[0], "Ben"), (TIMES[0], "Farah")]


def test_chat_messages_are_rendered_and_everything_before_the_last_message_is_static(small_tokenizer):
    def stamped(now: str) -> list[dict]:
        return [{"role": "system", "content": f"Current time: {now}\n{POLICY}"},
                {"role": "user", "content": "Where is my order?"}]

    def stamped_last(now: str) -> list[dict]:
        return [{"role": "system", "content": POLICY}, {"role": "user", "content": f"({now}) Where is my order?"}]

    with pytest.raises(AssertionError, match="everything before the last message.*'now'"):
        assert_prefix_stable(stamped, {"now": TIMES}, tokenizer=small_tokenizer)
    assert_prefix_stable(stamped_last, {"now": TIMES}, tokenizer=small_tokenizer)


def test_a_marker_or_a_callable_sets_where_the_static_prefix_ends():
    def render(now: str) -> str:
        return f"{POLICY}### Context\nCurrent time: {now}\n### Question\nWhere is my order?"

    assert_prefix_stable(render, {"now": TIMES}, static_end="### Context")
    with pytest.raises(AssertionError, match="everything before '### Question'"):
        assert_prefix_stable(render, {"now": TIMES}, static_end="### Question")
    with pytest.raises(AssertionError, match=r"static_end\(text\)"):
        assert_prefix_stable(render, {"now": TIMES}, static_end=lambda text: text.index("Where"))


def test_a_value_that_merges_with_the_last_static_word_fails_as_a_seam():
    """'refunds' is tokenized ' ref' + 'unds', 'refund today' as ' refund' + ...: the static ' ref' token is lost."""
    static = "You are helpful.\nNote: refund"

    def render(tail: str) -> str:
        return static + tail

    with pytest.raises(AssertionError, match="the seam") as failure:
        assert_prefix_stable(render, {"tail": ["s today", " today"]}, static_end=lambda text: len(static))
    assert "'tail'" in str(failure.value)


@pytest.mark.parametrize("vary, static_end, message", [
    ({}, None, "vary maps each render argument"),
    ({"now": ["09:00"]}, None, "at least two values"),
    ({"now": "09:00"}, None, "at least two values"),
    ({"now": TIMES}, "### Missing", "not in the baseline render"),
    ({"now": TIMES}, lambda text: -1, "returned -1"),
])
def test_bad_arguments_get_a_clear_error(vary, static_end, message):
    with pytest.raises(WorkbookError, match=message):
        assert_prefix_stable(lambda now: f"{POLICY}{now}\nHi", vary, static_end=static_end)


def test_a_prompt_with_no_static_prefix_under_the_default_rule_is_refused_not_passed():
    with pytest.raises(WorkbookError, match="nothing to check"):
        assert_prefix_stable(lambda now: f"Current time: {now}. Where is my order?", {"now": TIMES})


def test_a_render_that_returns_neither_text_nor_messages_is_refused():
    with pytest.raises(WorkbookError, match="string or a non-empty list of chat messages"):
        assert_prefix_stable(lambda now: 42, {"now": TIMES})
