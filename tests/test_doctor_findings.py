"""The doctor's causes outside the prompt text (issue 28): each diagnosed right on a small log built here."""

import pytest

from workbook.doctor import diagnose, read_log
from workbook.doctor.diagnosis import Streams, Tokens, diagnose_records, instruction_lines, same_template
from workbook.providers import TTL_SECONDS

SONNET, GPT = "anthropic/claude-sonnet-4-5", "openai/gpt-5.5"
POLICY = "\n".join(f"- Rule {i}: answer politely and look the order up before you say anything about it." for i in range(60))
MARK = {"type": "ephemeral"}


def anthropic(i, at_s, *, system=POLICY, model="claude-sonnet-4-5", marks=1, ttl=None, question=None):
    """An Anthropic request at `at_s` seconds, its system prompt marked with `marks` breakpoints' worth of blocks."""
    control = dict(MARK, ttl=ttl) if ttl else MARK
    blocks = [{"type": "text", "text": system, "cache_control": control}]
    blocks += [{"type": "text", "text": f"Extra note {k}.", "cache_control": MARK} for k in range(marks - 1)]
    return {"timestamp": at_s, "model": model, "system": blocks,
            "messages": [{"role": "user", "content": question or f"Where is order A1000{i}?"}]}


def openai(i, at_s, *, key=None, model="gpt-5.5", system=POLICY):
    request = {"timestamp": at_s, "model": model, "messages": [{"role": "system", "content": system},
                                                               {"role": "user", "content": f"Where is order A1000{i}?"}]}
    if key:
        request["prompt_cache_key"] = key
    return request


def causes(report):
    return [f.cause.name if f.cause else None for f in report.diagnosis.findings]


# ----- TTL expiry, from timestamps ------------------------------------------------------------------------

def test_a_pause_past_the_5_minute_ttl_is_ttl_expiry_with_the_shared_tokens_lost():
    gap = TTL_SECONDS["5m"] + 60  # one minute past Anthropic's 5-minute lifetime
    report = diagnose([anthropic(0, 0), anthropic(1, 60), anthropic(2, 60 + gap)], provider=SONNET)
    second, third = report.diagnosis.findings[1:]
    assert second.cause.name == "new_turn" and second.lost_tokens == 0
    assert third.cause.name == "ttl_expiry" and third.shared_tokens == 0
    assert third.lost_tokens >= third.static_tokens  # the whole cached system prompt, and more
    # the second request sent the prefix last (and refreshed it), 6 minutes before the third
    assert f"idle 6m00s since the prefix line {third.match_line} shares was last sent, past its 5m00s lifetime" \
        in third.cause.detail


def test_reads_refresh_the_lifetime_so_a_busy_prompt_never_expires():
    times = [0, 240, 480, 720, 960]  # 4 minutes apart: each read renews the 5-minute lifetime
    report = diagnose([anthropic(i, t) for i, t in enumerate(times)], provider=SONNET)
    assert "ttl_expiry" not in causes(report)


def test_a_1_hour_breakpoint_keeps_the_prefix_through_the_same_pause():
    gap = TTL_SECONDS["5m"] + 60
    report = diagnose([anthropic(0, 0, ttl="1h"), anthropic(1, gap, ttl="1h")], provider=SONNET)
    assert causes(report)[1] == "new_turn"


def test_a_log_without_timestamps_has_no_ttl_findings():
    log = [{k: v for k, v in anthropic(i, 0).items() if k != "timestamp"} for i in range(3)]
    assert "ttl_expiry" not in causes(diagnose(log, provider=SONNET))


def test_openai_in_memory_retention_expires_and_the_24h_default_does_not():
    gap = 10 * 60
    log = [openai(0, 0, model="gpt-5.4-mini"), openai(1, gap, model="gpt-5.4-mini")]  # in memory only
    assert causes(diagnose(log, provider="openai/gpt-5.4-mini"))[1] == "ttl_expiry"
    log = [openai(0, 0), openai(1, gap)]  # gpt-5.5 keeps prefixes 24 hours
    assert causes(diagnose(log, provider=GPT))[1] == "new_turn"


# ----- prompt_cache_key and model switches ------------------------------------------------------------------

def test_a_fresh_prompt_cache_key_per_request_is_cache_key_churn():
    report = diagnose([openai(i, 10 * i, key=f"uuid-{i}") for i in range(3)], provider=GPT)
    assert causes(report)[1:] == ["cache_key", "cache_key"]
    finding = report.diagnosis.findings[2]
    assert finding.shared_tokens == 0 and finding.lost_tokens > 0
    assert "became 'uuid-2'" in finding.cause.detail and finding.part == "prompt_cache_key"
    stable = diagnose([openai(i, 10 * i, key="user-7") for i in range(3)], provider=GPT)
    assert "cache_key" not in causes(stable)


def test_a_router_fallback_to_another_model_is_a_model_switch_in_the_same_stream():
    models = ["claude-sonnet-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-sonnet-4-5"]
    report = diagnose([anthropic(i, 10 * i, model=m) for i, m in enumerate(models)], provider=SONNET)
    findings = report.diagnosis.findings
    assert causes(report) == [None, "new_turn", "model_switch", "new_turn"]
    assert "'claude-sonnet-4-5' became 'claude-haiku-4-5'" in findings[2].cause.detail
    assert findings[3].match_line == 2  # back on Sonnet, it reads Sonnet's cache again
    assert {f.stream for f in findings} == {0}


def test_the_simulator_keeps_a_cache_per_model():
    models = ["claude-sonnet-4-5", "claude-haiku-4-5"]
    report = diagnose([anthropic(i, 10 * i, model=m) for i, m in enumerate(models)], provider=SONNET)
    assert report.now.bills[SONNET][1].usage.cache_read_tokens == 0  # Haiku's cache is empty
    same = diagnose([anthropic(i, 10 * i) for i in range(2)], provider=SONNET)
    assert same.now.bills[SONNET][1].usage.cache_read_tokens > 0


# ----- breakpoint problems: findings that name the request, never an abort -------------------------------------

def test_five_breakpoints_are_a_finding_on_that_request_and_it_bills_nothing():
    log = [anthropic(0, 0), anthropic(1, 10, marks=5), anthropic(2, 20)]
    report = diagnose(log, provider=SONNET)
    problems = [[p.name for p in f.problems] for f in report.diagnosis.findings]
    assert problems == [[], ["too_many_breakpoints"], []]
    assert "5 breakpoints" in report.diagnosis.findings[1].problems[0].detail
    bill = report.now.bills[SONNET][1]  # refused, and billed as sent again without breakpoints: nothing cached
    assert "refused" in bill.why and bill.usage.cache_read_tokens == bill.usage.cache_write_tokens == 0


def test_a_1_hour_breakpoint_after_a_5_minute_one_is_a_finding():
    request = anthropic(0, 0, marks=2)
    request["system"][1]["cache_control"] = dict(MARK, ttl="1h")
    (finding,) = diagnose([request], provider=SONNET).diagnosis.findings
    assert [p.name for p in finding.problems] == ["ttl_order"]


def test_a_breakpoint_on_a_system_prompt_that_changes_every_turn_is_volatile():
    log = [anthropic(i, 10 * i, system=f"Time: 09:0{i}:00\n{POLICY}") for i in range(3)]
    findings = diagnose(log, provider=SONNET).diagnosis.findings
    assert [f.cause.name for f in findings[1:]] == ["datetime", "datetime"]
    assert all([p.name for p in f.problems] == ["volatile_breakpoint"] for f in findings[1:])


# ----- call types ----------------------------------------------------------------------------------------

REPHRASE = "\n".join(["Rephrase the follow-up question as a standalone question.", "Keep names and numbers.",
                      "Answer with the question only."])
ANSWER = "Answer the question from the context below.\nContext:\n{context}"


def test_a_chains_two_templates_are_two_streams_each_diagnosed_on_its_own():
    log = []
    for i in range(3):
        context = "\n".join(f"Doc {i}.{k}: the shop opens at {8 + k} on weekdays." for k in range(3))
        log += [openai(2 * i, 20 * i, system=REPHRASE), openai(2 * i + 1, 20 * i + 5, system=ANSWER.format(context=context))]
    findings = diagnose(log, provider=GPT).diagnosis.findings
    assert [f.stream for f in findings] == [0, 1] * 3
    assert [f.match_line for f in findings] == [None, None, 1, 2, 3, 4]  # each matches its own call type
    assert [f.cause.name for f in findings[2::2]] == ["new_turn", "new_turn"]  # the rephrase call is healthy


def test_a_changed_clock_line_keeps_its_call_type():
    a = read_log([openai(0, 0, system=f"Time: 09:00\n{POLICY}")])[0]
    b = read_log([openai(0, 0, system=f"Time: 09:05\n{POLICY}")])[0]
    c = read_log([openai(0, 0, system=REPHRASE)])[0]
    assert same_template(instruction_lines(a), instruction_lines(b))
    assert not same_template(instruction_lines(a), instruction_lines(c))


def tools_request(i, order):
    tools = [{"name": n, "description": f"Tool {n}.", "input_schema": {"type": "object"}} for n in order]
    return {"timestamp": 30 * i, "model": "claude-sonnet-4-5", "tools": tools,
            "system": [{"type": "text", "text": POLICY, "cache_control": MARK}],
            "messages": [{"role": "user", "content": f"Question {i}?"}]}


def test_a_recurring_tool_order_flip_is_counted_every_time_it_costs_tokens():
    orders = [["a", "b"], ["b", "a"]]
    # 30 s apart, both orders stay cached: only the first flip writes a new prefix; later ones read their order's
    fast = [tools_request(i, orders[i % 2]) for i in range(6)]
    assert causes(diagnose(fast, provider=SONNET))[1:] == ["tool_list"] + ["new_turn"] * 4
    # 4 minutes apart in pairs, an order's entry expires while the other order is sent: every flip costs again, and
    # the flip is the cause to fix (had the order stayed, the live prefix would have been read)
    slow = [dict(tools_request(i, orders[(i // 2) % 2]), timestamp=240 * i) for i in range(6)]
    assert causes(diagnose(slow, provider=SONNET))[1:] == ["new_turn", "tool_list", "new_turn", "tool_list", "new_turn"]


def test_diagnosis_reads_records_one_at_a_time_and_keeps_bounded_state(tok):
    records = read_log([openai(i, 10 * i) for i in range(40)])
    seen = []

    def stream():
        for r in records:
            seen.append(r.line)
            yield r

    diagnosis = diagnose_records(stream(), Tokens(tok), "tiny", provider="openai")
    assert seen == list(range(1, 41)) and len(diagnosis.findings) == 40
    streams = Streams()
    for r in records:
        s = streams.of(r)
        s.remember(None, [r.line], r.at_s)
    assert len(s.recent) == 16  # RECENT: the stream keeps only its newest requests


@pytest.fixture(scope="module")
def tok():
    import workbook

    return workbook.load_tokenizer("tiny")


def test_history_rewritten_on_a_log_loses_tokens_and_a_new_turn_does_not():
    turns = ["Hi, I need help with order A1.", "Sure, what is wrong?", "It arrived late.", "Sorry! Refund?", "Yes."]
    log = [{"timestamp": 30 * n, "model": "gpt-5.5",
            "messages": [{"role": "system", "content": POLICY}]
            + [{"role": "user" if k % 2 == 0 else "assistant", "content": t} for k, t in enumerate(turns[:n])]}
           for n in (1, 3, 5)]
    log[2]["messages"][2]["content"] = "(summary) The user asked about order A1."  # the app summarised turn 2
    findings = diagnose(log, provider=GPT).diagnosis.findings
    assert findings[1].cause.name == "new_turn" and findings[1].lost_tokens == 0
    assert findings[2].cause.name == "history_rewritten" and findings[2].lost_tokens > 0
    assert findings[2].part == "message 2 (assistant)"


# ----- fixes for these causes, simulated on the whole log ----------------------------------------------------

def fix(report, name):
    return next(f for f in report.fix_results if f.name == name)


@pytest.mark.parametrize("name, log, provider", [
    ("stable_cache_key", [openai(i, 10 * i, key=f"uuid-{i}") for i in range(4)], GPT),
    ("one_hour_ttl", [anthropic(i, 420 * i) for i in range(4)], SONNET),  # 7-minute pauses
    ("pinned_model", [anthropic(i, 10 * i, model=m) for i, m in enumerate(
        ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-sonnet-4-5"])], SONNET),
    ("breakpoint_limits", [anthropic(i, 10 * i, marks=5) for i in range(3)], SONNET),
])
def test_each_new_fix_lowers_the_bill_of_the_log_with_its_cause(name, log, provider):
    report = diagnose(log, provider=provider)
    assert fix(report, name).cost_usd[provider] < report.cost_now_usd[provider]
    assert report.helps(fix(report, name))


def test_the_doctor_combines_the_fixes_that_lower_the_bill_together():
    # A clock line at the top and 7-minute pauses: neither moving the clock (the prefix expires anyway) nor the 1-hour
    # TTL (the prefix changes anyway) saves much alone; together they do.
    report = diagnose([anthropic(i, 420 * i, system=f"Time: 09:{i:02d}\n{POLICY}") for i in range(4)], provider=SONNET)
    combined = fix(report, "all")
    assert combined.does.endswith("static_first, one_hour_ttl")
    assert not report.helps(fix(report, "one_hour_ttl"))  # alone it raises the bill: never recommended alone
    assert combined.cost_usd[SONNET] < 0.6 * report.cost_now_usd[SONNET] and report.best_fix is combined
    assert report.achievable_hit_rate > report.achieved_hit_rate


def test_reported_usage_is_the_achieved_hit_rate():
    log = [openai(i, 10 * i) for i in range(2)]
    log[0]["usage"] = {"prompt_tokens": 1000, "prompt_tokens_details": {"cached_tokens": 0}}
    log[1]["usage"] = {"prompt_tokens": 1000, "prompt_tokens_details": {"cached_tokens": 500}}
    report = diagnose(log, provider=GPT)
    assert report.reported and report.achieved_hit_rate == 0.25


# ----- token counts against the provider's --------------------------------------------------------------------

def test_reported_prompt_tokens_calibrate_the_counts(capsys):
    from workbook.doctor.__main__ import causes_table
    from workbook.doctor.report_html import tokenizer_note

    log = [openai(i, 10 * i, system=f"Request {i}\n{POLICY}") for i in range(3)]
    counted = diagnose(log, provider=GPT)
    for request, f in zip(log, counted.diagnosis.findings):  # the provider counts 1.25 tokens for each of ours
        request["usage"] = {"prompt_tokens": round(f.tokens * 1.25), "prompt_tokens_details": {"cached_tokens": 0}}
    report = diagnose(log, provider=GPT)
    assert report.calibration == pytest.approx(1.25, abs=1e-3)
    assert "the provider counts 1.25 tokens for each of ours (ours run 20% low)" in tokenizer_note(report)
    lost = report.diagnosis.lost_by_cause()["number"]
    row = next(line for line in causes_table(report).splitlines() if line.startswith("number"))
    assert f"{lost:,}" in row and f"{round(lost * report.calibration):,}" in row
    assert counted.calibration is None and "close estimates" in tokenizer_note(counted)


def test_the_agent_example_log_shows_an_expiry_a_reordered_tool_call_and_a_fallback():
    from workbook.doctor.examples import AGENT_FALLBACK, AGENT_PAUSE_BEFORE
    from workbook.paths import DATA_DIR

    report = diagnose(DATA_DIR / "examples" / "agent_log.jsonl", provider=SONNET)
    by_line = {f.line: f for f in report.diagnosis.findings}
    assert by_line[AGENT_PAUSE_BEFORE + 1].cause.name == "ttl_expiry"
    assert by_line[AGENT_FALLBACK + 1].cause.name == "model_switch"
    reordered = [f for f in report.diagnosis.findings if f.cause and f.cause.name == "json_key_order"]
    assert reordered and all(f.part.startswith("tool call") for f in reordered)
    assert report.helps(fix(report, "pinned_model")) and not report.helps(fix(report, "one_hour_ttl"))
    assert report.helps(fix(report, "sorted_tool_arguments"))
    fixed = diagnose(fix_named("sorted_tool_arguments").apply(report.records), provider=SONNET)
    assert "json_key_order" not in fixed.diagnosis.causes


def fix_named(name):
    from workbook.doctor.fixes import FIXES

    return next(f for f in FIXES if f.name == name)
