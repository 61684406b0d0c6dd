"""The cache doctor: reading logs, per-request findings, dollars through the simulator, and fixes that are checked."""

import json

import pytest

from workbook.doctor import LogError, diagnose, read_log
from workbook.doctor.fixes import FIXES, pinned_tool_order, sorted_json_keys, stable_seams, static_first, two_breakpoints
from workbook.doctor.logs import Record
from workbook.doctor.parts import Part
from workbook.paths import DATA_DIR

EXAMPLES = DATA_DIR / "examples"
SONNET, GPT = "anthropic/claude-sonnet-4-5", "openai/gpt-5.5"


def write_log(tmp_path, lines, name="log.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


# ----- reading logs ------------------------------------------------------------------------------------

def test_an_anthropic_request_renders_tools_then_system_then_messages_with_its_breakpoints():
    (r,) = read_log([{"system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
                      "tools": [{"name": "a", "input_schema": {}}],
                      "messages": [{"role": "user", "content": "Hi"}],
                      "usage": {"cache_read_input_tokens": 7, "output_tokens": 3}}])
    assert r.shape == "anthropic" and [p.kind for p in r.parts] == ["tools", "system", "message"]
    assert r.parts[0].text == '[{"name": "a", "input_schema": {}}]'  # keys in the order they were logged
    assert r.parts[1].cache_control == "5m" and r.parts[2].cache_control is None
    assert (r.reported_cached, r.output_tokens) == (7, 3)


def test_an_openai_request_and_its_reported_cached_tokens():
    (r,) = read_log([{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
                      "usage": {"prompt_tokens_details": {"cached_tokens": 1024}, "completion_tokens": 9}}])
    assert r.shape == "openai" and [(p.kind, p.text) for p in r.parts] == [("system", "S"), ("message", "Q")]
    assert (r.reported_cached, r.output_tokens) == (1024, 9)


def test_timestamps_become_seconds_after_the_first_request():
    records = read_log([{"prompt": "a", "timestamp": "2026-03-15T09:00:00Z"},
                        {"prompt": "b", "timestamp": "2026-03-15T09:01:30Z"}])
    assert [r.at_s for r in records] == [0.0, 90.0]


def test_the_example_logs_read(tmp_path):
    for name, shape in (("anthropic_log.jsonl", "anthropic"), ("openai_log.jsonl", "openai"), ("prompts.json", "prompt")):
        records = read_log(EXAMPLES / name)
        assert len(records) == 12 and {r.shape for r in records} == {shape}


@pytest.mark.parametrize("lines, message", [
    (['{"prompt": "a"}', '{"prompt": "b"'], "Line 2"),  # malformed JSON names its line
    (['{"messages": []}'], "Line 1.*non-empty"),
    (['{"model": "x"}'], "Line 1.*messages"),
    (['{"prompt": "a", "timestamp": "yesterday"}'], "ISO 8601"),
    (['{"prompt": "a", "timestamp": 10}', '{"prompt": "b", "timestamp": 5}'], "Line 2 is earlier"),
])
def test_bad_logs_get_a_clear_error_naming_the_line(tmp_path, lines, message):
    with pytest.raises(LogError, match=message):
        read_log(write_log(tmp_path, lines))


def test_an_unknown_provider_is_refused_by_name():
    with pytest.raises(ValueError, match="claude"):
        diagnose([{"prompt": "a"}], provider="anthropic/claude-nonexistent")


# ----- fixes rewrite the log ------------------------------------------------------------------------------

def chat(system, question, tools=None, mark=None):
    parts = ([Part("tools", json.dumps(tools))] if tools else []) + [Part("system", system, "system", mark),
                                                                      Part("message", question, "user")]
    return Record(1, "anthropic", tuple(parts))


def test_static_first_moves_lines_that_change_to_the_last_message():
    records = [chat(f"Time: 09:0{i}\nBe brief.", f"Q{i}") for i in range(4)]
    fixed = static_first(records)
    assert [r.parts[0].text for r in fixed] == ["Be brief."] * 4
    assert fixed[2].parts[1].text == "Q2\nTime: 09:02"


def test_tool_fixes_sort_keys_and_names():
    tools = [{"name": "b", "description": "x"}, {"description": "y", "name": "a"}]
    (keys,) = sorted_json_keys([chat("S", "Q", tools)])
    assert json.loads(keys.parts[0].text) == tools and keys.parts[0].text.index('"description"') < keys.parts[0].text.index('"name"')
    (pinned,) = pinned_tool_order([chat("S", "Q", tools)])
    assert [t["name"] for t in json.loads(pinned.parts[0].text)] == ["a", "b"]


def test_stable_seams_moves_trailing_space_into_the_next_part():
    (fixed,) = stable_seams([chat("Date: ", "15 Mar")])
    assert (fixed.parts[0].text, fixed.parts[1].text) == ("Date:", " 15 Mar")


def test_two_breakpoints_mark_the_static_end_and_the_newest_message():
    record = Record(1, "anthropic", (Part("system", "S", "system", "1h"), Part("message", "A", "user"),
                                     Part("message", "B", "assistant"), Part("message", "C", "user")))
    (fixed,) = two_breakpoints([record])
    assert [p.cache_control for p in fixed.parts] == [None, None, "5m", "5m"]


# ----- findings and dollars on a small log, by hand --------------------------------------------------------

POLICY = "\n".join(f"- Rule {i}: answer politely and look the order up before you say anything about it." for i in range(60))


def timestamped_log(n=3):
    """An Anthropic app that puts the time first in its cached system prompt, so no request ever reads the cache."""
    return [{"timestamp": f"2026-03-15T09:0{i}:00Z",
             "system": [{"type": "text", "text": f"Time: 09:0{i}:00\n{POLICY}", "cache_control": {"type": "ephemeral"}}],
             "messages": [{"role": "user", "content": f"Where is order A1000{i}?"}]} for i in range(n)]


@pytest.fixture(scope="module")
def tok():
    import workbook

    return workbook.load_tokenizer("tiny")


def test_a_timestamp_at_the_top_is_found_and_its_fix_is_priced_by_hand(tok):
    report = diagnose(timestamped_log(), provider=SONNET)
    second = report.diagnosis.findings[1]
    assert second.match_line == 1 and second.cause.name == "datetime"
    assert second.char_at == len("Time: 09:0")  # the minute digit is the first character that differs
    system_tokens = len(tok.encode(f"Time: 09:01:00\n{POLICY}"))
    assert second.static_tokens == system_tokens and second.lost_tokens == system_tokens - second.shared_tokens
    # Now: every request writes its whole system prompt at $3.75/M and sends its question as input at $3/M.
    questions = [len(tok.encode(f"Where is order A1000{i}?")) for i in range(3)]
    systems = [len(tok.encode(f"Time: 09:0{i}:00\n{POLICY}")) for i in range(3)]
    now = sum(s * 3.75 + q * 3 for s, q in zip(systems, questions)) / 1e6
    assert report.cost_now_usd[SONNET] == pytest.approx(now)
    # Static first: the time line moves after the question; the policy is written once, then read at $0.30/M.
    policy = len(tok.encode(POLICY))
    tails = [len(tok.encode(f"Where is order A1000{i}?\nTime: 09:0{i}:00")) for i in range(3)]
    fixed = (policy * 3.75 + policy * 0.30 * 2 + sum(tails) * 3) / 1e6
    result = next(f for f in report.fix_results if f.name == "static_first")
    assert result.cost_usd[SONNET] == pytest.approx(fixed) and fixed < now
    assert report.diagnosis.achievable_hit_rate > report.diagnosis.hit_rate
    # Read from cache at the first provider: the policy, twice, of every prompt token sent.
    assert result.cached_share == pytest.approx(policy * 2 / (policy * 3 + sum(tails)))


@pytest.mark.parametrize("path", [EXAMPLES / "anthropic_log.jsonl", EXAMPLES / "openai_log.jsonl"], ids=lambda p: p.name)
def test_each_fixs_numbers_are_the_bill_of_the_log_it_fixed(path):
    report = diagnose(path, provider=[SONNET, GPT], workers=1)
    for fix, result in zip(FIXES, report.fix_results):
        fixed = diagnose(fix.apply(report.records), provider=[SONNET, GPT], workers=1)
        assert result.name == fix.name
        assert result.cost_usd == fixed.cost_now_usd and result.cached_share == fixed.cached_share


def test_a_held_log_is_diagnosed_beside_one_worker_and_a_streamed_one_on_every_core(monkeypatch):
    from workbook.doctor import passes
    from workbook.doctor.logs import Reread

    for cores, held in [(1, 1), (2, 2), (8, 2)]:
        monkeypatch.setattr(passes, "usable_cores", lambda cores=cores: cores)
        assert passes.default_workers(read_log(EXAMPLES / "anthropic_log.jsonl")) == held
        assert passes.default_workers(Reread(EXAMPLES / "anthropic_log.jsonl")) == cores


def test_a_new_question_after_a_shared_prompt_is_a_new_turn_not_a_bug():
    log = [{"system": POLICY, "messages": [{"role": "user", "content": q}]} for q in ("Hi there", "Where is A1?")]
    finding = diagnose(log, provider=GPT).diagnosis.findings[1]
    assert finding.cause.name == "new_turn" and finding.lost_tokens == 0


def test_reported_cached_tokens_sit_beside_the_simulated_ones():
    log = timestamped_log(2)
    log[1]["usage"] = {"cache_read_input_tokens": 0}
    (row,) = diagnose(log, provider=SONNET).reported_vs_simulated()
    assert row == (2, 0, 0)  # the provider read nothing, and neither does the simulator


def test_the_example_anthropic_log_finds_the_habits_it_was_written_with():
    report = diagnose(EXAMPLES / "anthropic_log.jsonl", provider=[SONNET, GPT])
    causes = {f.cause.name for f in report.diagnosis.findings if f.cause}
    assert {"datetime", "user_text", "json_key_order"} <= causes
    assert report.best_fix.cost_usd[SONNET] < report.cost_now_usd[SONNET]


def test_the_example_logs_are_what_their_recipe_writes():
    from workbook.doctor.examples import example_files

    for name, text in example_files().items():
        assert (EXAMPLES / name).read_text(encoding="utf-8") == text, name


def test_a_bare_model_name_bills_like_its_full_key():
    bare = diagnose(EXAMPLES / "anthropic_log.jsonl", provider="claude-sonnet-4-5")
    full = diagnose(EXAMPLES / "anthropic_log.jsonl", provider=SONNET)
    assert bare.cost_now_usd == full.cost_now_usd  # keyed "anthropic/...", so breakpoints are kept


def test_a_log_that_is_not_utf8_gets_a_clear_error(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"prompt": "café"}\n'.encode("latin-1"))
    with pytest.raises(LogError, match="not UTF-8"):
        read_log(path)


def example_logs():
    """Every shipped example log, the pattern logs included."""
    return sorted(p for p in EXAMPLES.rglob("*") if p.name.endswith((".jsonl", ".jsonl.gz", ".jsonl.xz"))
                  or p.name == "prompts.json")


@pytest.mark.parametrize("path", example_logs(), ids=lambda p: p.name)
def test_static_first_never_raises_the_bill_of_an_example_log(path):
    report = diagnose(path, provider=[SONNET, GPT])
    result = next(f for f in report.fix_results if f.name == "static_first")
    for key in (SONNET, GPT):
        assert result.cost_usd[key] <= report.cost_now_usd[key] + 1e-9


def test_static_first_moves_instruction_lines_and_never_the_conversation():
    records = read_log([{"messages": [{"role": "system", "content": f"Time: 09:0{i}\nBe kind."},
                                      {"role": "user", "content": "Hi"}, {"role": "assistant", "content": f"Hello {i}"},
                                      {"role": "user", "content": "Q"}]} for i in range(3)])
    fixed = static_first(records)
    assert [p.text for p in fixed[1].parts] == ["Be kind.", "Hi", "Hello 1", "Q\nTime: 09:01"]


def test_sorting_the_tools_moves_their_cache_control_onto_the_last_tool():
    tools = [{"name": "b", "cache_control": {"type": "ephemeral"}}, {"name": "a"}]
    (fixed,) = pinned_tool_order(read_log([{"tools": tools, "messages": [{"role": "user", "content": "Q"}]}]))
    assert json.loads(fixed.parts[0].text) == [{"name": "a"}, {"name": "b", "cache_control": {"type": "ephemeral"}}]
    flipped = pinned_tool_order(read_log([{"tools": tools[::-1] + [], "messages": [{"role": "user", "content": "Q"}]}]))
    assert flipped[0].parts[0].text == fixed.parts[0].text  # the same bytes whichever order the app sent


def test_breakpoints_leave_a_rendered_prompt_as_it_is():
    record = Record(1, "prompt", (Part("prompt", "Generated at 09:00\nBe brief.\nQ"),))
    assert two_breakpoints([record]) == [record]


def test_counting_with_a_tiktoken_encoding_needs_tiktoken_or_says_how_to_get_it():
    try:
        import tiktoken  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"pip install -e '\.\[doctor\]'"):
            diagnose([{"prompt": "a"}], provider=GPT, tokenizer="o200k_base")
    else:
        pytest.skip("tiktoken is installed: its encodings may need the network on first use, which tests never reach")
