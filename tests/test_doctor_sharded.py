"""The doctor sharded by call type on Dask (issue 28, item 8): the same report as one process, byte for byte.

The cluster is `LocalCluster(processes=False)`: its workers are threads of the test process, so it starts in under a
second, yet every task still goes through the distributed scheduler (the graph is serialised, the results gathered)
as on a real cluster. A cluster of processes would add several seconds of start-up per test on a 2-core CI machine.
"""

import json

import pytest

from workbook.doctor import diagnose
from workbook.doctor.__main__ import as_json, main, summary
from workbook.doctor.patterns import PATTERNS_DIR
from workbook.doctor import sharded
from workbook.doctor.diagnosis import Streams
from workbook.doctor.logs import read_log
from workbook.errors import WorkbookError
from workbook.paths import DATA_DIR

distributed = pytest.importorskip("distributed", reason="the scale extra: pip install -e '.[scale]'")

SONNET, GPT = "anthropic/claude-sonnet-4-5", "openai/gpt-5.5"
LOGS = [DATA_DIR / "examples" / "agent_log.jsonl",  # a tool-call reorder, a TTL pause, a model fallback
        PATTERNS_DIR / "langchain_rag.jsonl.xz",  # two call types in one log
        PATTERNS_DIR / "cache_key_per_request.jsonl.xz",  # OpenAI keys
        DATA_DIR / "examples" / "prompts.json"]  # rendered prompts


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            yield client


def printed(report, log) -> str:
    return summary(report, str(log), 3) + json.dumps(as_json(report, str(log), 3), ensure_ascii=False)


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.name)
def test_the_sharded_report_is_the_single_process_one_byte_for_byte(client, log):
    alone = diagnose(log, provider=[SONNET, GPT], workers=1)
    sharded = diagnose(log, provider=[SONNET, GPT], scheduler=client)
    assert printed(sharded, log) == printed(alone, log)
    assert sharded.now.bills == alone.now.bills  # every request's bill, with its reasons, at both providers


def test_the_rag_log_is_sharded_into_its_two_call_types(monkeypatch):
    records = read_log(PATTERNS_DIR / "langchain_rag.jsonl.xz")
    streams = Streams()
    assert sorted({streams.of(r).number for r in records}) == [0, 1]
    sent = []
    diagnose_stream = sharded.diagnose_stream
    monkeypatch.setattr(sharded, "diagnose_stream", lambda stream, items, *rest: sent.append(
        (stream.number, [i for i, _ in items])) or diagnose_stream(stream, items, *rest))
    sharded.Sharded(None, "tiny", "anthropic", None, "synchronous").replay(records, [SONNET])
    assert sorted(n for n, _ in sent) == [0, 1]  # one task per call type, each given its requests in log order
    assert sorted(i for _, items in sent for i in items) == list(range(len(records)))
    assert all(items == sorted(items) for _, items in sent)


@pytest.mark.parametrize("log", LOGS[:2], ids=lambda p: p.name)
def test_a_log_sent_in_small_chunks_carries_each_streams_state_across_them(log, monkeypatch):
    alone = diagnose(log, provider=[SONNET, GPT], workers=1)
    monkeypatch.setattr(sharded, "CHUNK", 7)  # several rounds of tasks, the state of each stream and cache carried
    assert printed(diagnose(log, provider=[SONNET, GPT], scheduler="synchronous"), log) == printed(alone, log)


def test_a_log_read_again_per_pass_gives_the_same_report_sharded(client, monkeypatch):
    import workbook.doctor as doctor

    log = LOGS[0]
    alone = diagnose(log, provider=SONNET, workers=1)
    monkeypatch.setattr(doctor, "IN_MEMORY_CHARS", 10_000)  # too big to hold: streamed from the file
    sharded = diagnose(log, provider=SONNET, scheduler=client)
    assert all(r.parts == () for r in sharded.records)
    assert printed(sharded, log) == printed(alone, log)


def test_the_synchronous_scheduler_gives_the_same_report():
    log = LOGS[0]
    assert printed(diagnose(log, provider=SONNET, scheduler="synchronous"), log) == printed(diagnose(log, provider=SONNET), log)


def test_a_tokenizer_object_is_refused_on_dask_with_the_fix():
    from workbook.tokenizer import load_tokenizer

    with pytest.raises(WorkbookError, match="name the tokenizer"):
        diagnose(LOGS[0], provider=SONNET, scheduler="synchronous", tokenizer=load_tokenizer("tiny"))


def test_the_command_runs_sharded_on_a_local_cluster_of_processes(capsys):
    log = LOGS[1]
    assert main([str(log), "--dask", "local"]) == 0
    sharded = capsys.readouterr().out
    assert main([str(log)]) == 0
    assert sharded == capsys.readouterr().out
