"""A log of any size (issue 28, item 8): read from its file once per pass instead of held, fixed logs rewritten as
they are read, the fixes replayed in worker processes; the report stays the same."""

import json

import pytest

import workbook.doctor as doctor
from workbook.doctor import diagnose, read_log
from workbook.doctor.__main__ import as_json, summary
from workbook.doctor.fixes import FIXES, Fixed, static_first
from workbook.doctor.logs import Reread
from workbook.doctor.patterns import PATTERNS_DIR
from workbook.paths import DATA_DIR

SONNET, GPT = "anthropic/claude-sonnet-4-5", "openai/gpt-5.5"
AGENT = DATA_DIR / "examples" / "agent_log.jsonl"
CLOCK = DATA_DIR / "examples" / "anthropic_log.jsonl"


def printed(report, log) -> str:
    return summary(report, str(log), 3) + json.dumps(as_json(report, str(log), 3), ensure_ascii=False)


@pytest.mark.parametrize("log", [AGENT, CLOCK, PATTERNS_DIR / "ttl_pauses_openai.jsonl.xz"], ids=lambda p: p.name)
def test_a_log_too_big_to_hold_is_read_per_pass_and_reported_the_same(log, monkeypatch):
    held = diagnose(log, provider=[SONNET, GPT], workers=1)
    monkeypatch.setattr(doctor, "IN_MEMORY_CHARS", 1_000)
    streamed = diagnose(log, provider=[SONNET, GPT], workers=1)
    assert printed(streamed, log) == printed(held, log)
    assert [r.line for r in streamed.records] == [r.line for r in held.records]
    assert all(r.parts == () and r.extra == () for r in streamed.records)  # kept without their text


def test_a_small_log_is_held_whole():
    assert doctor.held(str(AGENT)) == read_log(AGENT)


@pytest.mark.parametrize("log", [AGENT, PATTERNS_DIR / "router_fallback.jsonl.xz"], ids=lambda p: p.name)
def test_worker_processes_give_the_same_report(log):
    assert printed(diagnose(log, provider=[SONNET, GPT], workers=2), log) == \
        printed(diagnose(log, provider=[SONNET, GPT], workers=1), log)


def test_a_reread_log_is_read_afresh_each_time_from_its_spool_after_the_first():
    log = Reread(AGENT)
    next(iter(log))  # a reading stopped early writes no spool
    assert log.spool is None
    first = list(log)
    spool = log.spool
    assert spool.is_file()
    second = list(log)  # loaded from the spool, not parsed again
    assert first == second == read_log(AGENT) and first[0] is not second[0]
    log.close()
    assert not spool.exists() and log.spool is None
    assert list(log) == first  # parsed again, and spooled again
    log.close()


def test_the_spool_is_deleted_when_the_report_is_done(monkeypatch, tmp_path):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(doctor, "IN_MEMORY_CHARS", 1_000)
    diagnose(AGENT, provider=SONNET, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_a_fixed_file_is_rewritten_as_it_is_read_and_a_fixed_list_once():
    records = read_log(CLOCK)
    streamed = Fixed(Reread(CLOCK), [FIXES[0]])  # static_first: reads the log once to find the lines that vary
    assert list(streamed) == static_first(records) and not streamed.in_memory
    held = Fixed(records, [FIXES[0]])
    assert held.in_memory and next(iter(held)) is next(iter(held))
    chained = Fixed(Fixed(records, FIXES[:1]), FIXES[1:2])
    assert list(chained) == FIXES[1].apply(static_first(records))


def test_digests_tell_fixed_logs_apart_without_holding_them():
    log = Reread(CLOCK)
    base, moved, again = doctor.log_digests(log, [[], [FIXES[0]], [FIXES[0]]])
    assert moved == again and moved != base  # static_first moves the clock line
    assert doctor.log_digests(Fixed(log, [FIXES[0]]), [[]]) == [moved]
    one_more = [*read_log(CLOCK)[:-1], read_log(CLOCK)[0]]
    assert doctor.log_digests(one_more, [[]]) != [base]


def test_a_field_that_cannot_be_hashed_still_gets_a_digest():
    records = read_log([{"prompt": "hello there", "prompt_cache_key": {"user": 1}}])
    assert isinstance(doctor.log_digests(records, [[]])[0], int)


def test_an_error_while_the_workers_replay_stops_them():
    import gc

    from workbook.doctor import passes

    def failing():
        raise RuntimeError("the log as it is could not be replayed")

    replayer = passes.Forked(*doctor._tokens(None), "anthropic", workers=2)
    with pytest.raises(RuntimeError, match="could not be replayed"):
        doctor.fix_results(read_log(CLOCK), replayer, [SONNET], failing)
    assert passes._FORKED is None and gc.get_freeze_count() == 0  # the pool is shut down, nothing left frozen


@pytest.mark.parametrize("log", [AGENT, CLOCK, PATTERNS_DIR / "ttl_pauses_openai.jsonl.xz"], ids=lambda p: p.name)
@pytest.mark.parametrize("model_key", [SONNET, GPT, "google/gemini-2.5-pro"])
def test_the_doctor_bills_its_text_as_the_simulator_bills_the_same_token_ids(log, model_key):
    """The biller sends each part's text with the doctor's `Tokens` as the simulator's tokenizer (its ids unchecked, as
    a tokenizer's are); the same requests given as checked token ids bill the same, request by request."""
    from workbook.doctor.diagnosis import DEFAULT_GAP_S, Tokens, bills, provider_request
    from workbook.providers import Block, ProviderCache, Request
    from workbook.tokenizer import load_tokenizer

    records, tokens = read_log(log), Tokens(load_tokenizer("tiny"))
    caches, by_ids = {}, []
    for i, record in enumerate(records):
        at_s = i * DEFAULT_GAP_S if record.at_s is None else record.at_s
        request = provider_request(record, model_key.split("/")[0], at_s)
        ids = Request([Block(list(tokens.encode(b.content)), b.cache_control, b.part, b.type) for b in request.blocks],
                      request.at_s, request.output_tokens, request.options)
        cache = caches.setdefault(record.model, ProviderCache(model_key))
        by_ids.append(cache.send(ids))
    assert bills(records, tokens, model_key) == by_ids and len(by_ids) == len(records)
